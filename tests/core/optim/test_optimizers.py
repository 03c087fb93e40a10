"""ember.optim optimizers against torch.optim: 100 steps on the same parameters and
pseudo-random gradients, per option combination; param groups; state_dict round trips
and validation; zero_grad; hooks and closures."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ember
import ember.optim as optim
from ember.core.backend import is_cuda_available

SHAPES = [(3, 4), (5,), (2, 3, 2)]

CONFIGS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    (
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1, "maximize": True},
    ),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    (
        "Adam",
        {
            "lr": 0.02,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.1,
            "amsgrad": True,
            "maximize": True,
        },
    ),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "maximize": True, "betas": (0.5, 0.9)}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.001, "centered": True}),
    ("RMSprop", {"lr": 0.001, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.001, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.01}),
    (
        "RMSprop",
        {"lr": 0.001, "centered": True, "momentum": 0.5, "weight_decay": 0.1, "maximize": True},
    ),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("Adagrad", {"lr": 0.1, "maximize": True, "eps": 1e-8}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1, "maximize": True}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.01, "betas": (0.8, 0.9), "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "betas": (0.8, 0.95)}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
]

TOL = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}


def _arrays(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _pair(arrays):
    e = [ember.tensor(a, requires_grad=True) for a in arrays]
    t = [torch.tensor(a, requires_grad=True) for a in arrays]
    return e, t


def _set_grads(e_params, t_params, rng, skip=None):
    """Same pseudo-random gradients on both sides (ember or torch); the parameter at
    index ``skip`` gets none."""
    for i, (e, t) in enumerate(zip(e_params, t_params)):
        if i == skip:
            e.grad, t.grad = None, None
            continue
        g = rng.standard_normal(tuple(e.shape)).astype(e._array.dtype)
        e.grad = ember.tensor(g)
        t.grad = torch.tensor(g) if isinstance(t, torch.Tensor) else ember.tensor(g)


def _run(e_opt, t_opt, e_params, t_params, steps, seed=1):
    rng = np.random.default_rng(seed)
    for k in range(steps):
        _set_grads(e_params, t_params, rng, skip=k % 7 if k % 3 == 0 else None)
        e_opt.step()
        t_opt.step()


def _assert_params_close(e_params, t_params, dtype):
    for e, t in zip(e_params, t_params):
        np.testing.assert_allclose(e._array, t.detach().numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_matches_torch_100_steps(name, kwargs, dtype):
    e_params, t_params = _pair(_arrays(dtype))
    e_opt = getattr(optim, name)(e_params, **kwargs)
    t_opt = getattr(torch.optim, name)(t_params, **kwargs)
    _run(e_opt, t_opt, e_params, t_params, steps=100)
    _assert_params_close(e_params, t_params, dtype)
    # the per-parameter state has torch's keys and values
    e_sd, t_sd = e_opt.state_dict(), t_opt.state_dict()
    assert e_sd["state"].keys() == t_sd["state"].keys()
    for i, t_state in t_sd["state"].items():
        assert e_sd["state"][i].keys() == t_state.keys()
        for key, t_val in t_state.items():
            np.testing.assert_allclose(
                np.asarray(e_sd["state"][i][key]._array), t_val.numpy(), rtol=1e-4, atol=1e-5
            )
    for e_group, t_group in zip(e_sd["param_groups"], t_sd["param_groups"]):
        assert e_group.keys() <= t_group.keys()
        for key in e_group:
            assert e_group[key] == t_group[key], key


@pytest.mark.parametrize(
    ("name", "groups", "kwargs"),
    [
        ("SGD", [{"lr": 0.1, "momentum": 0.9}, {"nesterov": True, "momentum": 0.5}], {"lr": 0.01}),
        ("Adam", [{"betas": (0.5, 0.9)}, {"amsgrad": True, "weight_decay": 0.1}], {"lr": 0.01}),
        ("AdamW", [{"weight_decay": 0.5}, {"lr": 0.1}], {"lr": 0.01}),
        ("RMSprop", [{"centered": True}, {"momentum": 0.9, "alpha": 0.5}], {"lr": 0.01}),
        ("Adagrad", [{"lr_decay": 0.1}, {"initial_accumulator_value": 1.0}], {"lr": 0.1}),
    ],
)
def test_param_groups_with_per_group_options(name, groups, kwargs):
    e_params, t_params = _pair(_arrays("float32"))
    e_groups = [dict(groups[0], params=e_params[:1]), dict(groups[1], params=e_params[1:])]
    t_groups = [dict(groups[0], params=t_params[:1]), dict(groups[1], params=t_params[1:])]
    e_opt = getattr(optim, name)(e_groups, **kwargs)
    t_opt = getattr(torch.optim, name)(t_groups, **kwargs)
    for key, value in groups[1].items():
        assert e_opt.param_groups[1][key] == value
    assert e_opt.param_groups[0]["lr"] == groups[0].get("lr", kwargs["lr"])
    _run(e_opt, t_opt, e_params, t_params, steps=50)
    _assert_params_close(e_params, t_params, "float32")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
        ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {"lr": 0.01}),
        ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9}),
        ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ],
)
def test_state_dict_round_trip_continues_exactly(name, kwargs):
    arrays = _arrays("float32")
    cls = getattr(optim, name)
    straight = [ember.tensor(a, requires_grad=True) for a in arrays]
    first = [ember.tensor(a, requires_grad=True) for a in arrays]
    opt_straight, opt_first = cls(straight, **kwargs), cls(first, **kwargs)
    rng = np.random.default_rng(5)
    for _ in range(10):
        _set_grads(straight, first, rng)
        opt_straight.step()
        opt_first.step()
    saved = opt_first.state_dict()
    snapshot = {i: {k: v._array.copy() for k, v in st.items()} for i, st in saved["state"].items()}
    resumed = [ember.tensor(p._array, requires_grad=True) for p in first]
    opt_resumed = cls(resumed, lr=123.0)  # the loaded groups bring back the options
    opt_resumed.load_state_dict(saved)
    assert opt_resumed.param_groups[0]["lr"] == kwargs["lr"]
    assert opt_resumed.param_groups[0]["params"][0] is resumed[0]
    for _ in range(10):
        _set_grads(straight, resumed, rng)
        opt_straight.step()
        opt_resumed.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a._array, b._array)
    # loading copied the state: the saved optimizer's state did not move on
    for i, st in opt_first.state_dict()["state"].items():
        for k, v in st.items():
            np.testing.assert_array_equal(v._array, snapshot[i][k])


def test_state_dict_format_and_torch_state_loads():
    e_params, t_params = _pair(_arrays("float32"))
    e_opt = optim.Adam(e_params, lr=0.01, amsgrad=True)
    t_opt = torch.optim.Adam(t_params, lr=0.01, amsgrad=True)
    _run(e_opt, t_opt, e_params, t_params, steps=5)
    sd = e_opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    assert isinstance(sd["state"][0]["step"], ember.Tensor)
    assert sd["state"][0]["step"].dtype == ember.float32
    assert float(sd["state"][0]["step"]._array) == float(t_opt.state_dict()["state"][0]["step"])
    # a torch state dict converted to ember tensors loads and continues like torch
    t_sd = t_opt.state_dict()
    converted = {
        "state": {
            i: {k: ember.tensor(v.numpy()) for k, v in s.items()} for i, s in t_sd["state"].items()
        },
        "param_groups": copy.deepcopy(t_sd["param_groups"]),
    }
    e2 = [ember.tensor(t.detach().numpy(), requires_grad=True) for t in t_params]
    e_opt2 = optim.Adam(e2)
    e_opt2.load_state_dict(converted)
    _run(e_opt2, t_opt, e2, t_params, steps=5, seed=9)
    _assert_params_close(e2, t_params, "float32")


def test_step_saved_as_a_number_still_loads():
    arrays = _arrays("float64")
    a = [ember.tensor(x, requires_grad=True) for x in arrays]
    b = [ember.tensor(x, requires_grad=True) for x in arrays]
    opt_a, opt_b = optim.Adam(a, lr=0.01), optim.Adam(b, lr=0.01)
    rng = np.random.default_rng(2)
    for _ in range(3):
        _set_grads(a, b, rng)
        opt_a.step()
        opt_b.step()
    sd = opt_b.state_dict()
    for state in sd["state"].values():
        state["step"] = float(state["step"].item())
    resumed = [ember.tensor(p._array, requires_grad=True) for p in b]
    opt_c = optim.Adam(resumed, lr=0.01)
    opt_c.load_state_dict(sd)
    _set_grads(a, resumed, rng)
    opt_a.step()
    opt_c.step()
    for x, y in zip(a, resumed):
        np.testing.assert_array_equal(x._array, y._array)
    assert isinstance(opt_c.state[resumed[0]]["step"], ember.Tensor)


def test_load_state_dict_casts_state_to_param_dtype():
    src = [ember.tensor(a, requires_grad=True) for a in _arrays("float64")]
    opt = optim.SGD(src, lr=0.1, momentum=0.9)
    for p in src:
        p.grad = ember.ones_like(p)
    opt.step()
    dst = [ember.tensor(a, requires_grad=True) for a in _arrays("float32")]
    opt32 = optim.SGD(dst, lr=0.1, momentum=0.9)
    opt32.load_state_dict(opt.state_dict())
    for p in dst:
        buf = opt32.state[p]["momentum_buffer"]
        assert buf.dtype == ember.float32
        np.testing.assert_array_equal(buf._array, np.ones(tuple(p.shape), np.float32))


def test_load_state_dict_validation_errors():
    params = [ember.tensor(a, requires_grad=True) for a in _arrays("float32")]
    opt = optim.Adam(params)
    for p in params:
        p.grad = ember.ones_like(p)
    opt.step()
    sd = opt.state_dict()

    two_groups = optim.Adam([{"params": params[:1]}, {"params": params[1:]}])
    with pytest.raises(ValueError, match="different number of parameter groups: 1 in the state"):
        two_groups.load_state_dict(sd)
    fewer = optim.Adam(params[:2])
    with pytest.raises(ValueError, match="group 0 has 3 parameters in the state dict, 2 in"):
        fewer.load_state_dict(sd)
    reshaped = [ember.tensor(np.zeros((4, 3), np.float32), requires_grad=True)] + params[1:]
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(3, 4\)"):
        optim.Adam(reshaped).load_state_dict(sd)
    with pytest.raises(ValueError, match="keys 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: optim.SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: optim.SGD(p, momentum=-1), "Invalid momentum value: -1"),
        (lambda p: optim.SGD(p, weight_decay=-1), "Invalid weight_decay value: -1"),
        (lambda p: optim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum"),
        (lambda p: optim.Adam(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
        (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda p: optim.RMSprop(p, alpha=-0.5), "Invalid alpha value: -0.5"),
        (lambda p: optim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value: -1"),
        (
            lambda p: optim.Adagrad(p, initial_accumulator_value=-1),
            "Invalid initial_accumulator_value value: -1",
        ),
        (lambda p: optim.Adadelta(p, rho=1.5), "Invalid rho value: 1.5"),
        (lambda p: optim.NAdam(p, momentum_decay=-1), "Invalid momentum_decay value: -1"),
        (lambda p: optim.RAdam(p, betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
        (lambda p: optim.Adamax(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: optim.SGD([]), "empty parameter list"),
        (lambda p: optim.SGD([{"params": p}, {"params": p[:1]}]), "more than one parameter group"),
    ],
)
def test_invalid_arguments(call, message):
    params = [ember.tensor(a, requires_grad=True) for a in _arrays("float32")]
    with pytest.raises(ValueError, match=message):
        call(params)


def test_invalid_parameter_types():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got Tensor"):
        optim.SGD(w)
    with pytest.raises(TypeError, match="can only optimize Tensors, but one of the params is list"):
        optim.SGD([w, [1.0]])
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {w}}])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2])
    with pytest.raises(TypeError, match="param_group must be a dict"):
        optim.SGD([w]).add_param_group([w])
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([w, w])


def test_add_param_group_takes_defaults_and_steps():
    a, b = (ember.tensor(x, requires_grad=True) for x in _arrays("float32")[:2])
    ta, tb = (torch.tensor(x, requires_grad=True) for x in _arrays("float32")[:2])
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([ta], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b, "lr": 0.01})
    topt.add_param_group({"params": tb, "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    _run(opt, topt, [a, b], [ta, tb], steps=10)
    _assert_params_close([a, b], [ta, tb], "float32")


def test_named_parameters_are_kept_in_state_dict():
    a, b = (ember.tensor(x, requires_grad=True) for x in _arrays("float32")[:2])
    opt = optim.Adam([("layer.weight", a), ("layer.bias", b)])
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["layer.weight", "layer.bias"]
    with pytest.raises(ValueError, match="Some param names are missing"):
        optim.Adam([("w", a), b])


def test_zero_grad_set_to_none_semantics():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad = ember.tensor([3.0, 4.0])
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad
    np.testing.assert_array_equal(w.grad._array, [0.0, 0.0])
    opt.zero_grad()
    assert w.grad is None
    opt.step()  # params without a gradient are skipped
    np.testing.assert_array_equal(w._array, [1.0, 2.0])
    assert not opt.state


def test_step_bumps_version_and_skips_autograd():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([w])
    w.grad = ember.tensor([1.0, 1.0])
    before = w._version
    opt.step()
    assert w._version == before + 1
    assert w.grad_fn is None and w.requires_grad


def test_closure_runs_with_grad_and_returns_loss():
    w = ember.tensor([1.0, -2.0], requires_grad=True)
    tw = torch.tensor([1.0, -2.0], requires_grad=True)
    opt, topt = optim.SGD([w], lr=0.1), torch.optim.SGD([tw], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = (tw * tw).sum()
        loss.backward()
        return loss

    for _ in range(3):
        loss = opt.step(closure)
        tloss = topt.step(tclosure)
        assert float(loss.item()) == pytest.approx(float(tloss.item()))
    np.testing.assert_allclose(w._array, tw.detach().numpy(), rtol=1e-6)


def test_user_subclass_steps_without_grad_and_closure_with_grad():
    class SignSGD(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):
            loss = self._eval_closure(closure)
            seen.append(("step", ember.is_grad_enabled()))
            for group in self.param_groups:
                for p in group["params"]:
                    p._array -= group["lr"] * np.sign(p.grad._array)
            return loss

    seen = []
    w = ember.tensor([1.0, -2.0], requires_grad=True)
    opt = SignSGD([w], lr=0.5)

    def closure():
        seen.append(("closure", ember.is_grad_enabled()))
        loss = (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert seen == [("closure", True), ("step", False)]
    np.testing.assert_array_equal(w._array, [0.5, -1.5])
    with pytest.raises(NotImplementedError):
        optim.Optimizer([w], {}).step()


def test_step_hooks_run_in_order_and_can_be_removed():
    w = ember.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    calls = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o is opt)))
    post = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o is opt)))
    opt.step()
    assert calls == [("pre", True), ("post", True)]
    pre.remove()
    post.remove()
    opt.step()
    assert len(calls) == 2
    bad = opt.register_step_pre_hook(lambda o, args, kwargs: 1)
    with pytest.raises(RuntimeError, match="must return None or a tuple"):
        opt.step()
    bad.remove()


def test_global_and_state_dict_hooks():
    from ember.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    w = ember.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    calls = []
    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: calls.append("global pre")),
        register_optimizer_step_post_hook(lambda o, a, k: calls.append("global post")),
        opt.register_step_pre_hook(lambda o, a, k: calls.append("pre")),
        opt.register_step_post_hook(lambda o, a, k: calls.append("post")),
    ]
    try:
        w.grad = ember.tensor([1.0, 1.0])
        opt.step()
    finally:
        for h in handles:
            h.remove()
    assert calls == ["global pre", "pre", "post", "global post"]

    opt.register_state_dict_pre_hook(lambda o: calls.append("sd pre"))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1})
    sd = opt.state_dict()
    assert sd["extra"] == 1 and calls[-1] == "sd pre"

    def drop_extra(o, state_dict):
        state_dict.pop("extra")
        state_dict["param_groups"][0]["lr"] = 0.5

    fresh = optim.SGD([ember.tensor([1.0, 2.0], requires_grad=True)], lr=0.1, momentum=0.9)
    fresh.register_load_state_dict_pre_hook(drop_extra)
    fresh.register_load_state_dict_post_hook(lambda o: calls.append("loaded"))
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 0.5 and calls[-1] == "loaded"
    assert "extra" in sd  # the hook saw a shallow copy


def test_repr_lists_groups():
    w = ember.tensor([1.0], requires_grad=True)
    text = repr(optim.SGD([w], lr=0.1))
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "lr: 0.1" in text


@pytest.mark.gpu
@pytest.mark.skipif(not is_cuda_available(), reason="needs a CUDA device and CuPy")
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS[::3], ids=[n for n, _ in CONFIGS[::3]])
def test_cuda_matches_cpu(name, kwargs):
    arrays = _arrays("float32")
    cpu = [ember.tensor(a, requires_grad=True) for a in arrays]
    gpu = [ember.tensor(a, device="cuda", requires_grad=True) for a in arrays]
    opt_cpu, opt_gpu = getattr(optim, name)(cpu, **kwargs), getattr(optim, name)(gpu, **kwargs)
    rng = np.random.default_rng(3)
    for _ in range(20):
        for c, g in zip(cpu, gpu):
            grad = rng.standard_normal(tuple(c.shape)).astype(np.float32)
            c.grad, g.grad = ember.tensor(grad), ember.tensor(grad, device="cuda")
        opt_cpu.step()
        opt_gpu.step()
    for c, g in zip(cpu, gpu):
        assert g.device.type == "cuda"
        np.testing.assert_allclose(g._array.get(), c._array, rtol=1e-5, atol=1e-6)
    sd = opt_gpu.state_dict()
    for state in sd["state"].values():
        for key, value in state.items():
            assert value.device.type == ("cpu" if key == "step" else "cuda")


def test_pytorch_implementation_flags_are_accepted_or_refused_clearly():
    params = [ember.zeros(3, requires_grad=True)]
    for cls in (ember.optim.Adam, ember.optim.AdamW, ember.optim.SGD):
        opt = cls(params, lr=0.1, foreach=True, fused=False)
        params[0].grad = ember.ones(3)
        opt.step()
    assert params[0].tolist() != [0.0, 0.0, 0.0]
    with pytest.raises(NotImplementedError, match="capturable"):
        ember.optim.AdamW(params, capturable=True)
    with pytest.raises(NotImplementedError, match="differentiable"):
        ember.optim.SGD(params, lr=0.1, differentiable=True)
