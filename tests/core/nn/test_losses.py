"""Losses (functional and modules) against torch, every reduction and option."""

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
import ember.nn.functional as F
from tests.helpers import check_op

tf = torch.nn.functional
REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(0)


def both(name, **kwargs):
    """(ember_fn, torch_fn) calling functional ``name`` with ``kwargs``; tensor-valued
    kwargs are given as NumPy arrays and converted for each library."""

    def conv(lib):
        return {k: lib.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}

    e_kw, t_kw = conv(ember), conv(torch)
    return (lambda *a: getattr(F, name)(*a, **e_kw)), (lambda *a: getattr(tf, name)(*a, **t_kw))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("mse_loss", {}),
        ("l1_loss", {}),
        ("smooth_l1_loss", {"beta": 0.5}),
        ("smooth_l1_loss", {"beta": 0.0}),
        ("huber_loss", {"delta": 0.7}),
    ],
)
def test_regression_losses(name, kwargs, reduction):
    e, t = both(name, reduction=reduction, **kwargs)
    check_op([(4, 5), (4, 5)], e, t)


def test_regression_loss_modules_and_broadcast_warning():
    for e_cls, t_cls, kw in [
        (nn.MSELoss, torch.nn.MSELoss, {}),
        (nn.L1Loss, torch.nn.L1Loss, {"reduction": "sum"}),
        (nn.SmoothL1Loss, torch.nn.SmoothL1Loss, {"beta": 2.0}),
        (nn.HuberLoss, torch.nn.HuberLoss, {"delta": 0.3}),
    ]:
        assert repr(e_cls(**kw)) == repr(t_cls(**kw))
        check_op([(3, 4), (3, 4)], e_cls(**kw), t_cls(**kw))
    with pytest.warns(UserWarning, match="different to the input size"):
        check_op([(3, 4), (4,)], F.mse_loss, tf.mse_loss)
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.mse_loss(ember.zeros(2), ember.zeros(2), reduction="foo")
    with (
        pytest.warns(UserWarning),
        pytest.raises(RuntimeError, match=r"\[3\] must match the size of target \[4\]"),
    ):
        F.l1_loss(ember.zeros(3), ember.zeros(4))


def _class_inputs(shape_in, n_classes, ignore=None, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape_in)
    t_shape = (shape_in[0],) + shape_in[2:] if len(shape_in) > 1 else ()
    t = r.integers(0, n_classes, size=t_shape).astype(np.int64)
    if ignore is not None and t.ndim:
        t.reshape(-1)[::3] = ignore
    return x, t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (4,), (3, 4, 2, 2)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore", [None, 1])
def test_cross_entropy_class_indices(reduction, shape, weighted, smoothing, ignore):
    x, t = _class_inputs(shape, 4, ignore)
    kwargs = {"reduction": reduction, "label_smoothing": smoothing}
    if weighted:
        kwargs["weight"] = np.array([0.5, 2.0, 1.0, 0.3])
    if ignore is not None:
        kwargs["ignore_index"] = ignore
    e, tt = both("cross_entropy", **kwargs)
    check_op(None, e, tt, inputs=[x, t])
    e, tt = both("nll_loss", **{k: v for k, v in kwargs.items() if k != "label_smoothing"})
    check_op(None, e, tt, inputs=[x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_class_probabilities(reduction, smoothing):
    x = rng.standard_normal((5, 3, 2))
    p = rng.uniform(0.1, 1, size=(5, 3, 2))
    p /= p.sum(1, keepdims=True)
    for weight in (None, np.array([1.0, 0.2, 3.0])):
        kwargs = {"reduction": reduction, "label_smoothing": smoothing}
        if weight is not None:
            kwargs["weight"] = weight
        e, t = both("cross_entropy", **kwargs)
        check_op(None, e, t, inputs=[x, p])


def test_cross_entropy_float32_module_and_large_logits():
    x = (rng.standard_normal((8, 10)) * 100).astype(np.float32)
    t = rng.integers(0, 10, 8).astype(np.int64)
    crit_e, crit_t = (
        nn.CrossEntropyLoss(label_smoothing=0.1),
        torch.nn.CrossEntropyLoss(label_smoothing=0.1),
    )
    check_op(None, crit_e, crit_t, inputs=[x, t], dtype="float32", atol=1e-4, rtol=1e-4)
    w = np.ones(10, np.float32)
    e_mod = nn.CrossEntropyLoss(weight=ember.tensor(w), ignore_index=3)
    t_mod = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=3)
    assert list(e_mod.state_dict()) == list(t_mod.state_dict()) == ["weight"]
    check_op(None, e_mod, t_mod, inputs=[x, t], dtype="float32", atol=1e-4, rtol=1e-4)
    check_op(None, nn.NLLLoss(), torch.nn.NLLLoss(), inputs=[x, t], dtype="float32", atol=1e-5)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    x = ember.randn(3, 4)
    t = ember.tensor([-100, -100, -100])
    assert np.isnan(F.cross_entropy(x, t).item())
    assert F.cross_entropy(x, t, reduction="sum").item() == 0


def test_cross_entropy_errors():
    x = ember.randn(3, 4)
    with pytest.raises(IndexError, match="Target 5 is out of bounds."):
        F.cross_entropy(x, ember.tensor([0, 1, 5]))
    with pytest.raises(IndexError, match="Target -2 is out of bounds."):
        F.nll_loss(x, ember.tensor([0, -2, 1]))
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got Int"):
        F.cross_entropy(x, ember.tensor([0, 1, 2], dtype=ember.int32))
    with pytest.raises(
        RuntimeError, match="expected target dtype to be Long or Byte, but got Float"
    ):
        F.cross_entropy(x, ember.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(
        ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"
    ):
        F.cross_entropy(x, ember.tensor([0, 1]))
    with pytest.raises(
        RuntimeError, match="weight tensor should be defined either for all 4 classes"
    ):
        F.cross_entropy(x, ember.tensor([0, 1, 2]), weight=ember.ones(3))
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(x, ember.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="class-probability target must have the input's shape"):
        F.cross_entropy(x, ember.randn(3, 5))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction):
    x = rng.uniform(0.05, 0.95, size=(4, 3))
    y = rng.uniform(0, 1, size=(4, 3))
    e, t = both("binary_cross_entropy", reduction=reduction)
    check_op(None, e, t, inputs=[x, y])
    e, t = both("binary_cross_entropy", reduction=reduction, weight=rng.uniform(0.5, 2, size=(3,)))
    check_op(None, e, t, inputs=[x, y])


def test_binary_cross_entropy_edges_and_errors():
    x = ember.tensor([0.0, 1.0, 0.5])
    y = ember.tensor([1.0, 0.0, 1.0])
    ref = tf.binary_cross_entropy(
        torch.tensor([0.0, 1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0]), reduction="none"
    )
    np.testing.assert_allclose(
        F.binary_cross_entropy(x, y, reduction="none").numpy(), ref.numpy(), rtol=1e-6
    )
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(ember.tensor([1.5]), ember.tensor([1.0]))
    with pytest.raises(ValueError, match="that is different to the input size"):
        F.binary_cross_entropy(ember.rand(3), ember.rand(4))
    m_e, m_t = nn.BCELoss(weight=ember.ones(3)), torch.nn.BCELoss(weight=torch.ones(3))
    assert list(m_e.state_dict()) == list(m_t.state_dict())
    check_op(None, m_e, m_t, inputs=[rng.uniform(0.1, 0.9, (2, 3)), rng.uniform(0, 1, (2, 3))])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(reduction):
    x = rng.standard_normal((4, 3)) * 3
    y = rng.uniform(0, 1, size=(4, 3))
    e, t = both("binary_cross_entropy_with_logits", reduction=reduction)
    check_op(None, e, t, inputs=[x, y])
    e, t = both(
        "binary_cross_entropy_with_logits",
        reduction=reduction,
        weight=rng.uniform(0.5, 2, size=(4, 1)),
        pos_weight=rng.uniform(0.5, 3, size=(3,)),
    )
    check_op(None, e, t, inputs=[x, y])


def test_bce_with_logits_stable_module_and_errors():
    x = ember.tensor([-200.0, 200.0, 0.0])
    y = ember.tensor([1.0, 0.0, 0.5])
    out = F.binary_cross_entropy_with_logits(x, y, reduction="none").numpy()
    np.testing.assert_allclose(out, [200.0, 200.0, np.log(2)], rtol=1e-6)
    pw = ember.tensor([2.0, 1.0])
    e_mod, t_mod = (
        nn.BCEWithLogitsLoss(pos_weight=pw),
        torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0])),
    )
    assert list(e_mod.state_dict()) == list(t_mod.state_dict()) == ["pos_weight"]
    check_op([(5, 2), (5, 2)], e_mod, t_mod, dtype="float32", atol=1e-5)
    with pytest.raises(
        ValueError, match=r"Target size \(ember.Size\(\[4\]\)\) must be the same as input size"
    ):
        F.binary_cross_entropy_with_logits(ember.zeros(3), ember.zeros(4))


@pytest.mark.parametrize("reduction", ["none", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    x = np.log(rng.uniform(0.1, 1, size=(4, 3)))
    y = rng.uniform(0.1, 1, size=(4, 3))
    if log_target:
        y = np.log(y)
    e, t = both("kl_div", reduction=reduction, log_target=log_target)
    check_op(None, e, t, inputs=[x, y], gradcheck_fd=log_target)
    e_mod = nn.KLDivLoss(reduction=reduction, log_target=log_target)
    t_mod = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)
    check_op(None, e_mod, t_mod, inputs=[x, y], gradcheck_fd=False)


def test_kl_div_zero_target_contributes_zero():
    x = np.log(rng.uniform(0.1, 1, size=(2, 3)))
    y = rng.uniform(0.1, 1, size=(2, 3))
    y[0, 0] = 0.0  # torch's xlogy: 0 * log 0 = 0
    e, t = both("kl_div", reduction="none")
    # torch's gradient w.r.t. a zero target is nan; ember's is 0, so compare values and input grads
    check_op(
        None,
        lambda a, b, e=e: e(a, b.detach()),
        lambda a, b, t=t: t(a, b.detach()),
        inputs=[x, y],
        gradcheck_fd=False,
    )


def test_kl_div_mean_warns():
    with pytest.warns(UserWarning, match="batchmean"):
        e, t = both("kl_div")
        check_op([(2, 3), (2, 3)], e, t, low=0.1, high=1.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_loss(reduction):
    a = rng.standard_normal((6, 4))
    b = rng.standard_normal((6, 4))
    y = np.array([1, -1, 1, -1, -1, 1], dtype=np.int64)
    e, t = both("cosine_embedding_loss", margin=0.1, reduction=reduction)
    check_op(None, e, t, inputs=[a, b, y])
    check_op(
        None, nn.CosineEmbeddingLoss(-0.2), torch.nn.CosineEmbeddingLoss(-0.2), inputs=[a, b, y]
    )


def test_loss_modules_reprs():
    assert repr(nn.CrossEntropyLoss()) == repr(torch.nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.BCEWithLogitsLoss()) == "BCEWithLogitsLoss()"
    with pytest.raises(ValueError, match="deprecated"):
        nn.MSELoss(size_average=True)


def _signs(n, seed=5):
    return np.where(np.random.default_rng(seed).random(n) < 0.5, -1.0, 1.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_and_ranking_losses(reduction):
    a, b = rng.standard_normal((2, 8))
    y = _signs(8)
    e, t = both("margin_ranking_loss", margin=0.3, reduction=reduction)
    check_op(
        None,
        lambda x1, x2: e(x1, x2, ember.tensor(y)),
        lambda x1, x2: t(x1, x2, torch.tensor(y)),
        inputs=[a, b],
    )
    e, t = both("hinge_embedding_loss", margin=0.8, reduction=reduction)
    check_op(None, lambda x: e(x, ember.tensor(y)), lambda x: t(x, torch.tensor(y)), inputs=[a])
    e, t = both("soft_margin_loss", reduction=reduction)
    check_op(None, lambda x: e(x, ember.tensor(y)), lambda x: t(x, torch.tensor(y)), inputs=[a])
    x = rng.standard_normal((4, 5))
    labels = (rng.random((4, 5)) < 0.5).astype(np.float64)
    for kwargs in ({}, {"weight": rng.uniform(0.5, 2, 5)}):
        e, t = both("multilabel_soft_margin_loss", reduction=reduction, **kwargs)
        check_op(None, e, t, inputs=[x, labels])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("swap,p", [(False, 2.0), (True, 1.0)])
def test_triplet_margin_loss(reduction, swap, p):
    e, t = both("triplet_margin_loss", margin=0.5, p=p, swap=swap, reduction=reduction)
    check_op([(5, 4), (5, 4), (5, 4)], e, t)
    e_mod = nn.TripletMarginLoss(margin=2.0, reduction=reduction)
    t_mod = torch.nn.TripletMarginLoss(margin=2.0, reduction=reduction)
    check_op([(3, 4), (3, 4), (3, 4)], e_mod, t_mod)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_poisson_and_gaussian_nll(reduction):
    x = rng.standard_normal((4, 3))
    counts = rng.integers(0, 5, size=(4, 3)).astype(np.float64)
    for kwargs in ({}, {"full": True}, {"log_input": False}):
        inputs = [np.abs(x) + 0.1 if kwargs.get("log_input") is False else x, counts]
        e, t = both("poisson_nll_loss", reduction=reduction, **kwargs)
        # counts are data: torch's gradient w.r.t. them is nan where full=True meets 0
        check_op(
            None,
            lambda a, b, e=e: e(a, b.detach()),
            lambda a, b, t=t: t(a, b.detach()),
            inputs=inputs,
            gradcheck_fd=False,
        )
        check_op(
            None,
            lambda a, e=e: e(a, ember.tensor(counts)),
            lambda a, t=t: t(a, torch.tensor(counts)),
            inputs=inputs[:1],
        )
    target = rng.standard_normal((4, 3))
    for var_shape, full in (((4, 3), False), ((4, 1), True), ((4,), False)):
        var = rng.uniform(0.1, 2, var_shape)
        e, t = both("gaussian_nll_loss", full=full, reduction=reduction)
        check_op(None, e, t, inputs=[x, target, var])
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(ember.zeros(2, 2), ember.zeros(2, 2), -ember.ones(2, 2))
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(ember.zeros(2, 2), ember.zeros(2, 2), ember.ones(3))


def test_distances():
    check_op([(4, 5), (4, 5)], F.pairwise_distance, tf.pairwise_distance)
    check_op(
        [(4, 5), (4, 5)],
        lambda a, b: F.pairwise_distance(a, b, p=1.0, keepdim=True),
        lambda a, b: tf.pairwise_distance(a, b, p=1.0, keepdim=True),
    )
    check_op([(4, 5), (1, 5)], F.cosine_similarity, tf.cosine_similarity)
    check_op(
        [(3, 4, 2), (3, 4, 2)],
        lambda a, b: F.cosine_similarity(a, b, dim=-1),
        lambda a, b: tf.cosine_similarity(a, b, dim=-1),
    )


def test_extra_loss_modules_repr_and_parity():
    pairs = [
        (nn.MarginRankingLoss(0.1), torch.nn.MarginRankingLoss(0.1)),
        (nn.HingeEmbeddingLoss(), torch.nn.HingeEmbeddingLoss()),
        (nn.SoftMarginLoss(), torch.nn.SoftMarginLoss()),
        (nn.MultiLabelSoftMarginLoss(), torch.nn.MultiLabelSoftMarginLoss()),
        (nn.PoissonNLLLoss(), torch.nn.PoissonNLLLoss()),
        (nn.GaussianNLLLoss(), torch.nn.GaussianNLLLoss()),
    ]
    for e, t in pairs:
        assert repr(e) == repr(t)
    y = _signs(6)
    check_op(
        None,
        lambda a, b: pairs[0][0](a, b, ember.tensor(y)),
        lambda a, b: pairs[0][1](a, b, torch.tensor(y)),
        inputs=[rng.standard_normal(6), rng.standard_normal(6)],
    )
    check_op([(2, 3), (2, 3), (2, 3)], pairs[5][0], pairs[5][1], low=0.1, high=2.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_losses_compute_in_float32(dtype):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    t = rng.integers(0, 5, 6).astype(np.int64)
    y = rng.standard_normal((6, 5)).astype(np.float32)
    for fn in (
        lambda a: F.cross_entropy(a, ember.tensor(t), label_smoothing=0.1),
        lambda a: F.mse_loss(a, ember.tensor(y).to(a.dtype)),
        lambda a: F.binary_cross_entropy_with_logits(a, ember.tensor(y).sigmoid().to(a.dtype)),
    ):
        low = ember.tensor(x).to(getattr(ember, dtype)).requires_grad_()
        ref = ember.tensor(low.detach().float().numpy(), requires_grad=True)
        out_low, out_ref = fn(low), fn(ref)
        out_low.backward()
        out_ref.backward()
        assert out_low.dtype == low.dtype and low.grad.dtype == low.dtype
        np.testing.assert_allclose(out_low.float().item(), out_ref.item(), rtol=2e-2)
        np.testing.assert_allclose(low.grad.float().numpy(), ref.grad.numpy(), rtol=5e-2, atol=1e-2)
