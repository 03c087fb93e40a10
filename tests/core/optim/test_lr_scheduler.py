"""ember.optim.lr_scheduler against torch.optim.lr_scheduler: the learning-rate (and
momentum) sequences over 30+ steps, state_dict round trips and argument errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.optim.lr_scheduler as tsched

import ember
import ember.optim as optim
import ember.optim.lr_scheduler as esched

LRS = (0.1, 0.05)


def _optimizers(name="SGD", **kwargs):
    """An ember and a torch optimizer with two parameter groups (lrs 0.1 and 0.05)."""
    kwargs = {"momentum": 0.9, **kwargs} if name == "SGD" else kwargs
    e = [ember.tensor([1.0, 2.0], requires_grad=True) for _ in LRS]
    t = [torch.tensor([1.0, 2.0], requires_grad=True) for _ in LRS]
    e_opt = getattr(optim, name)([{"params": [p], "lr": lr} for p, lr in zip(e, LRS)], **kwargs)
    t_opt = getattr(torch.optim, name)(
        [{"params": [p], "lr": lr} for p, lr in zip(t, LRS)], **kwargs
    )
    return e_opt, t_opt


def _momenta(opt):
    return [
        g["betas"][0] if "betas" in g else g["momentum"]
        for g in opt.param_groups
        if "betas" in g or "momentum" in g
    ]


def _compare(e_opt, t_opt, e_sched, t_sched, steps=30, metrics=None):
    assert e_sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12, abs=0)
    for k in range(steps):
        e_opt.step()
        t_opt.step()
        if metrics is None:
            e_sched.step()
            t_sched.step()
        else:
            e_sched.step(metrics[k])
            t_sched.step(metrics[k])
        e_lrs = [g["lr"] for g in e_opt.param_groups]
        t_lrs = [g["lr"] for g in t_opt.param_groups]
        assert e_lrs == pytest.approx(t_lrs, rel=1e-12, abs=1e-15), f"step {k}"
        assert e_sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12, abs=1e-15)
        assert _momenta(e_opt) == pytest.approx(_momenta(t_opt), rel=1e-12), f"step {k}"


def _lambda_half(epoch):
    return 0.5 ** (epoch // 4)


SCHEDULERS = [
    ("StepLR", {"step_size": 7, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [5, 12, 12, 20], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 10}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
    ("LambdaLR", {"lr_lambda": lambda e: 1.0 / (e + 1)}),
    ("LambdaLR", {"lr_lambda": [_lambda_half, lambda e: 0.9**e]}),
    ("MultiplicativeLR", {"lr_lambda": lambda e: 0.95}),
    ("LinearLR", {"start_factor": 0.25, "total_iters": 8}),
    ("LinearLR", {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 12}),
    ("ConstantLR", {"factor": 0.5, "total_iters": 6}),
    ("PolynomialLR", {"total_iters": 10, "power": 2.0}),
]


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULERS, ids=[n for n, _ in SCHEDULERS])
def test_sequence_matches_torch(name, kwargs):
    e_opt, t_opt = _optimizers()
    e_sched = getattr(esched, name)(e_opt, **kwargs)
    t_sched = getattr(tsched, name)(t_opt, **kwargs)
    assert [g["initial_lr"] for g in e_opt.param_groups] == list(LRS)
    assert e_sched.base_lrs == t_sched.base_lrs
    _compare(e_opt, t_opt, e_sched, t_sched, steps=30)
    assert e_sched.last_epoch == t_sched.last_epoch == 30


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [s for s in SCHEDULERS if s[0] not in ("LambdaLR", "MultiplicativeLR")],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_step_with_epoch_uses_closed_form_like_torch(name, kwargs):
    e_opt, t_opt = _optimizers()
    e_sched = getattr(esched, name)(e_opt, **kwargs)
    t_sched = getattr(tsched, name)(t_opt, **kwargs)
    e_opt.step()
    t_opt.step()
    for epoch in (3, 9, 14):
        with pytest.warns(UserWarning, match="deprecated"):
            e_sched.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_sched.step(epoch)
        assert e_sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_one_cycle_lr_and_momentum_match_torch(anneal_strategy, three_phase, opt_name):
    e_opt, t_opt = _optimizers(opt_name)
    kwargs = {
        "max_lr": [1.0, 0.5],
        "total_steps": 31,
        "anneal_strategy": anneal_strategy,
        "three_phase": three_phase,
        "pct_start": 0.25,
    }
    e_sched = esched.OneCycleLR(e_opt, **kwargs)
    t_sched = tsched.OneCycleLR(t_opt, **kwargs)
    assert _momenta(e_opt) == pytest.approx(_momenta(t_opt))
    _compare(e_opt, t_opt, e_sched, t_sched, steps=30)
    with pytest.raises(ValueError, match="Tried to step 32 times"):
        e_sched.step()
        e_sched.step()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "triangular"},
        {"mode": "triangular2", "step_size_down": 3},
        {"mode": "exp_range", "gamma": 0.9},
        {"scale_fn": lambda x: 1.0 / x, "scale_mode": "cycle"},
        {"base_momentum": [0.7, 0.75], "max_momentum": 0.95},
    ],
)
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_cyclic_lr_matches_torch(kwargs, opt_name):
    e_opt, t_opt = _optimizers(opt_name)
    args = {"base_lr": [0.01, 0.02], "max_lr": 0.1, "step_size_up": 5, **kwargs}
    e_sched = esched.CyclicLR(e_opt, **args)
    t_sched = tsched.CyclicLR(t_opt, **args)
    _compare(e_opt, t_opt, e_sched, t_sched, steps=30)


@pytest.mark.parametrize("kwargs", [{"T_0": 5}, {"T_0": 3, "T_mult": 2, "eta_min": 0.01}])
def test_cosine_warm_restarts_matches_torch(kwargs):
    e_opt, t_opt = _optimizers()
    e_sched = esched.CosineAnnealingWarmRestarts(e_opt, **kwargs)
    t_sched = tsched.CosineAnnealingWarmRestarts(t_opt, **kwargs)
    _compare(e_opt, t_opt, e_sched, t_sched, steps=30)
    for epoch in (0.5, 4.25, 11.0, 2.0):  # fractional epochs, as within an epoch loop
        e_sched.step(epoch)
        t_sched.step(epoch)
        assert e_sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12)
    with pytest.raises(ValueError, match="non-negative epoch"):
        e_sched.step(-1)


def test_one_cycle_from_epochs_without_momentum_cycling():
    e_opt, t_opt = _optimizers("Adagrad")
    e_sched = esched.OneCycleLR(
        e_opt, max_lr=0.3, epochs=3, steps_per_epoch=10, cycle_momentum=False
    )
    t_sched = tsched.OneCycleLR(
        t_opt, max_lr=0.3, epochs=3, steps_per_epoch=10, cycle_momentum=False
    )
    _compare(e_opt, t_opt, e_sched, t_sched, steps=29)


def test_sequential_lr_matches_torch():
    e_opt, t_opt = _optimizers()
    e_parts = [
        esched.LinearLR(e_opt, start_factor=0.1, total_iters=5),
        esched.ExponentialLR(e_opt, gamma=0.9),
        esched.StepLR(e_opt, step_size=3, gamma=0.5),
    ]
    t_parts = [
        tsched.LinearLR(t_opt, start_factor=0.1, total_iters=5),
        tsched.ExponentialLR(t_opt, gamma=0.9),
        tsched.StepLR(t_opt, step_size=3, gamma=0.5),
    ]
    e_sched = esched.SequentialLR(e_opt, e_parts, milestones=[5, 15])
    t_sched = tsched.SequentialLR(t_opt, t_parts, milestones=[5, 15])
    _compare(e_opt, t_opt, e_sched, t_sched, steps=30)


def test_chained_scheduler_matches_torch():
    e_opt, t_opt = _optimizers()
    e_sched = esched.ChainedScheduler(
        [esched.ConstantLR(e_opt, factor=0.1, total_iters=4), esched.ExponentialLR(e_opt, 0.9)]
    )
    t_sched = tsched.ChainedScheduler(
        [tsched.ConstantLR(t_opt, factor=0.1, total_iters=4), tsched.ExponentialLR(t_opt, 0.9)]
    )
    _compare(e_opt, t_opt, e_sched, t_sched, steps=30)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "max", "patience": 2, "factor": 0.5},
        {"threshold_mode": "abs", "threshold": 0.05, "patience": 1, "cooldown": 2},
        {"mode": "max", "threshold_mode": "abs", "patience": 0, "min_lr": [0.02, 0.001]},
        {"patience": 1, "factor": 0.5, "min_lr": 0.01, "eps": 0.02},
    ],
)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    rng = np.random.default_rng(0)
    metrics = list(np.round(1.0 + 0.02 * rng.standard_normal(40) - np.linspace(0, 0.1, 40), 3))
    e_opt, t_opt = _optimizers()
    e_sched = esched.ReduceLROnPlateau(e_opt, **kwargs)
    t_sched = tsched.ReduceLROnPlateau(t_opt, **kwargs)
    _compare(e_opt, t_opt, e_sched, t_sched, steps=40, metrics=metrics)
    assert e_sched.num_bad_epochs == t_sched.num_bad_epochs
    assert e_sched.best == t_sched.best


def _build(kind, opt):
    if kind == "cosine":
        return esched.CosineAnnealingLR(opt, T_max=6, eta_min=0.01)
    if kind == "onecycle":
        return esched.OneCycleLR(opt, max_lr=0.5, total_steps=30)
    if kind == "sequential":
        parts = [esched.ConstantLR(opt, 0.5, 3), esched.MultiStepLR(opt, [4, 9], 0.5)]
        return esched.SequentialLR(opt, parts, milestones=[3])
    if kind == "plateau":
        return esched.ReduceLROnPlateau(opt, patience=1)
    if kind == "cyclic":
        return esched.CyclicLR(opt, 0.01, 0.1, step_size_up=3, mode="triangular2")
    if kind == "warm":
        return esched.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2)
    return esched.LambdaLR(opt, _lambda_half)


@pytest.mark.parametrize(
    "kind", ["cosine", "onecycle", "sequential", "plateau", "lambda", "cyclic", "warm"]
)
def test_state_dict_round_trip(kind):
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8] * 4

    def advance(opt, sched, steps):
        for k in range(steps):
            opt.step()
            sched.step(metrics[k]) if kind == "plateau" else sched.step()

    straight_opt, _ = _optimizers()
    straight = _build(kind, straight_opt)
    first_opt, _ = _optimizers()
    first = _build(kind, first_opt)
    advance(straight_opt, straight, 10)
    advance(first_opt, first, 10)
    opt_state, sched_state = first_opt.state_dict(), first.state_dict()
    assert "optimizer" not in sched_state

    resumed_opt, _ = _optimizers()
    resumed = _build(kind, resumed_opt)
    resumed.load_state_dict(sched_state)
    resumed_opt.load_state_dict(opt_state)
    assert resumed.get_last_lr() == straight.get_last_lr()
    rest = metrics[10:]
    for k in range(10):
        for opt, sched in ((straight_opt, straight), (resumed_opt, resumed)):
            opt.step()
            sched.step(rest[k]) if kind == "plateau" else sched.step()
        assert resumed.get_last_lr() == straight.get_last_lr()
        assert [g["lr"] for g in resumed_opt.param_groups] == straight.get_last_lr()


def test_state_dict_keys_match_torch():
    e_opt, t_opt = _optimizers()
    e_sched = esched.StepLR(e_opt, step_size=3)
    t_sched = tsched.StepLR(t_opt, step_size=3)
    for key in ("step_size", "gamma", "base_lrs", "last_epoch", "_step_count", "_last_lr"):
        assert e_sched.state_dict()[key] == t_sched.state_dict()[key]


def test_one_cycle_state_dict_matches_torch():
    e_opt, t_opt = _optimizers()
    e_sd = esched.OneCycleLR(e_opt, max_lr=0.5, total_steps=20, three_phase=True).state_dict()
    t_sd = tsched.OneCycleLR(t_opt, max_lr=0.5, total_steps=20, three_phase=True).state_dict()
    assert e_sd["_schedule_phases"] == t_sd["_schedule_phases"]
    for key in ("total_steps", "base_lrs", "last_epoch", "_last_lr", "use_beta1"):
        assert e_sd[key] == t_sd[key]


def test_resume_with_last_epoch_uses_initial_lr():
    e_opt, t_opt = _optimizers()
    e_opt.param_groups[0]["initial_lr"] = 0.2
    e_opt.param_groups[1]["initial_lr"] = 0.1
    t_opt.param_groups[0]["initial_lr"] = 0.2
    t_opt.param_groups[1]["initial_lr"] = 0.1
    e_sched = esched.StepLR(e_opt, step_size=3, last_epoch=4)
    t_sched = tsched.StepLR(t_opt, step_size=3, last_epoch=4)
    assert e_sched.base_lrs == [0.2, 0.1]
    _compare(e_opt, t_opt, e_sched, t_sched, steps=10)
    fresh, _ = _optimizers()
    with pytest.raises(KeyError, match=r"'initial_lr' is not specified in param_groups\[0\]"):
        esched.StepLR(fresh, step_size=3, last_epoch=4)


def test_warns_when_scheduler_steps_before_optimizer():
    e_opt, _ = _optimizers()
    sched = esched.ExponentialLR(e_opt, gamma=0.5)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda o: esched.StepLR(object(), 3), TypeError, "object is not an Optimizer"),
        (lambda o: esched.ConstantLR(o, factor=1.5), ValueError, "between 0 and 1, got 1.5"),
        (lambda o: esched.LinearLR(o, start_factor=0), ValueError, "greater than 0"),
        (lambda o: esched.LinearLR(o, end_factor=2.0), ValueError, "got 2.0"),
        (lambda o: esched.LambdaLR(o, [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas"),
        (lambda o: esched.MultiplicativeLR(o, 0.9), TypeError, "should be a function"),
        (lambda o: esched.OneCycleLR(o, max_lr=0.1), ValueError, "total_steps OR"),
        (lambda o: esched.OneCycleLR(o, 0.1, total_steps=0), ValueError, "got 0"),
        (lambda o: esched.OneCycleLR(o, 0.1, 10, pct_start=1.5), ValueError, "pct_start"),
        (lambda o: esched.OneCycleLR(o, 0.1, 10, anneal_strategy="x"), ValueError, "'cos'"),
        (lambda o: esched.OneCycleLR(o, [0.1], 10), ValueError, "max_lr has 1 values"),
        (lambda o: esched.CyclicLR(o, 0.1, 1.0, mode="x"), ValueError, "mode 'x' is invalid"),
        (lambda o: esched.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "T_0, but got 0"),
        (lambda o: esched.CosineAnnealingWarmRestarts(o, 2, T_mult=0), ValueError, "T_mult >= 1"),
        (lambda o: esched.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0"),
        (lambda o: esched.ReduceLROnPlateau(o, mode="avg"), ValueError, "mode 'avg' is unknown"),
        (
            lambda o: esched.ReduceLROnPlateau(o, threshold_mode="x"),
            ValueError,
            "threshold mode 'x'",
        ),
        (lambda o: esched.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 min_lrs"),
        (
            lambda o: esched.SequentialLR(o, [esched.StepLR(o, 2)], milestones=[3]),
            ValueError,
            "number of schedulers 1 and the number of milestones to be equal to 1",
        ),
        (lambda o: esched.SequentialLR(o, [], milestones=[]), ValueError, "at least one"),
        (
            lambda o: esched.ChainedScheduler([esched.ReduceLROnPlateau(o)]),
            ValueError,
            "does not support `ReduceLROnPlateau`",
        ),
    ],
)
def test_invalid_arguments(build, error, message):
    e_opt, _ = _optimizers()
    with pytest.raises(error, match=message):
        build(e_opt)


def test_one_cycle_needs_momentum_and_chained_needs_one_optimizer():
    rms, _ = _optimizers("Adagrad")
    with pytest.raises(ValueError, match="must support momentum or beta1"):
        esched.OneCycleLR(rms, max_lr=0.1, total_steps=10)
    a, _ = _optimizers()
    b, _ = _optimizers()
    with pytest.raises(ValueError, match="same optimizer"):
        esched.ChainedScheduler([esched.StepLR(a, 2), esched.StepLR(b, 2)])
