"""Reductions, scans, the softmax family and sorting: parity with PyTorch in value and
gradient, float64 finite differences, double backward and error messages."""

import gc
import math
import weakref

import numpy as np
import pytest
import torch

import ember
from tests.helpers import check_op, to_numpy


def both(name):
    """The same call on ember and torch: ``lambda x: ember.<name>(x, ...)``."""
    return lambda *args, **kw: (
        lambda *ts: getattr(ember, name)(*ts, *args, **kw),
        lambda *ts: getattr(torch, name)(*ts, *args, **kw),
    )


SUM_CASES = [
    ((3, 4), {}),
    ((3, 4), {"dim": 1}),
    ((3, 4), {"dim": -1, "keepdim": True}),
    ((2, 3, 4), {"dim": (0, 2)}),
    ((2, 3, 4), {"dim": [2, 0], "keepdim": True}),
    ((2, 1, 4), {"dim": 1}),
    ((0, 3), {"dim": 0}),
    ((), {}),
]


@pytest.mark.parametrize("shape,kw", SUM_CASES)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_mean(name, shape, kw):
    if name == "mean" and 0 in shape:
        return check_op([shape], *both(name)(**kw), gradcheck_fd=False)
    check_op([shape], *both(name)(**kw))


def test_sum_mean_methods_and_noncontiguous():
    check_op([(3, 4)], lambda x: x.transpose(0, 1).sum(0) + x.mean(dim=1, keepdim=True).sum(1))
    check_op([(3, 4)], lambda x: x.transpose(0, 1).mean(-1))


def test_sum_dtypes():
    x = ember.tensor([[1, 2], [3, 4]], dtype=ember.int32)
    assert x.sum().dtype == ember.int64 and x.sum().item() == 10
    assert ember.tensor([True, True, False]).sum().dtype == ember.int64
    assert x.sum(dtype=ember.float64).dtype == ember.float64
    f = ember.ones(3, requires_grad=True)
    out = f.sum(dtype=ember.float64)
    out.backward()
    assert out.dtype == ember.float64 and f.grad.dtype == ember.float32
    assert ember.tensor([1.0, 2.0]).mean(dtype=ember.float64).dtype == ember.float64


def test_mean_of_integers_raises():
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype.*Long"):
        ember.tensor([1, 2, 3]).mean()


def test_bad_dim_raises():
    with pytest.raises(IndexError, match="Dimension out of range"):
        ember.ones(2, 3).sum(2)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        ember.ones(2, 3).sum((0, 0))


@pytest.mark.parametrize(
    "shape,kw", [((5,), {}), ((3, 4), {"dim": 1}), ((3, 4), {"dim": 0, "keepdim": True})]
)
def test_prod(shape, kw):
    check_op([shape], *both("prod")(**kw), low=0.5, high=1.5)


def test_prod_with_zeros():
    x = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    check_op(None, *both("prod")(dim=1), inputs=[x])
    check_op(None, *both("prod")(), inputs=[x[0]])
    assert ember.tensor([2, 3]).prod().dtype == ember.int64


VAR_CASES = [
    ((6,), {}),
    ((3, 4), {"dim": 1}),
    ((3, 4), {"dim": 0, "keepdim": True, "correction": 0}),
    ((2, 3, 4), {"dim": (0, 2), "unbiased": False}),
    ((3, 4), {"dim": 1, "correction": 2}),
]


@pytest.mark.parametrize("shape,kw", VAR_CASES)
@pytest.mark.parametrize("name", ["var", "std", "var_mean", "std_mean"])
def test_var_std(name, shape, kw):
    check_op([shape], *both(name)(**kw))


def test_var_positional_unbiased():
    check_op([(3, 4)], lambda x: x.var(1, False), lambda x: x.var(1, False))
    check_op([(5,)], lambda x: ember.std(x, False), lambda x: torch.std(x, False))


def test_var_single_element_warns_and_is_nan():
    with pytest.warns(UserWarning, match="degrees of freedom"):
        assert math.isnan(ember.ones(1).std().item())


@pytest.mark.parametrize("name", ["amax", "amin"])
@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": (0, 2), "keepdim": True}])
def test_amax_amin(name, kw):
    check_op([(2, 3, 4)], *both(name)(**kw))


@pytest.mark.parametrize("name", ["amax", "amin", "max", "min"])
def test_max_ties_split_gradient_like_torch(name):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    kw = {"dim": 1} if name in ("amax", "amin") else {}
    check_op(None, *both(name)(**kw), inputs=[x], gradcheck_fd=False)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("kw", [{"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": -1}])
def test_max_min_with_dim(name, kw):
    check_op([(3, 4)], *both(name)(**kw))
    out = getattr(ember, name)(ember.randn(3, 4), **kw)
    assert out.indices.dtype == ember.int64 and out.values is out[0]


def test_max_min_full_and_binary():
    check_op([(3, 4)], *both("max")())
    check_op([(3, 4)], *both("min")())
    check_op([(3, 4), (4,)], lambda a, b: ember.max(a, b), lambda a, b: torch.max(a, b))
    check_op([(3, 4), (3, 4)], lambda a, b: a.min(b), lambda a, b: a.min(b))


def test_max_of_empty_raises():
    with pytest.raises(RuntimeError, match="Expected reduction dim to be specified"):
        ember.ones(0).max()
    with pytest.raises(IndexError, match="Expected reduction dim 0 to have non-zero size"):
        ember.amax(ember.ones(0, 3), 0)
    assert ember.amax(ember.ones(0, 3), 1).shape == (0,)


@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}])
@pytest.mark.parametrize("shape", [(3, 4), (3, 5)])
def test_median(shape, kw):
    check_op([shape], *both("median")(**kw))


@pytest.mark.parametrize("name", ["nansum", "nanmean"])
@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}])
def test_nansum_nanmean(name, kw):
    data = np.array([[1.0, np.nan, 2.0], [0.5, -1.0, np.nan]])
    check_op(None, *both(name)(**kw), inputs=[data], gradcheck_fd=False)
    check_op([(2, 3)], *both(name)(**kw))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"keepdim": True}])
def test_argmax_argmin(name, kw):
    check_op([(3, 4)], *both(name)(**kw), grad=False)


@pytest.mark.parametrize("kw", [{"dim": 1}, {"dim": (0, 2), "keepdim": True}, {"dim": -1}])
def test_logsumexp(kw):
    check_op([(2, 3, 4)], *both("logsumexp")(**kw))
    big = np.array([[1000.0, 1000.0], [-1000.0, -1001.0]])
    check_op(None, *both("logsumexp")(dim=1), inputs=[big], gradcheck_fd=False)


def test_logsumexp_all_minus_inf():
    x = ember.tensor([-math.inf, -math.inf])
    assert ember.logsumexp(x, 0).item() == -math.inf


NORM_CASES = [
    {},
    {"p": 2, "dim": 1},
    {"p": "fro", "dim": (0, 1)},
    {"p": 1, "dim": 0, "keepdim": True},
    {"p": 3.0},
    {"p": 1.5, "dim": 1},
    {"p": math.inf},
    {"p": -math.inf, "dim": 1},
]


@pytest.mark.parametrize("kw", NORM_CASES)
def test_norm(kw):
    check_op([(3, 4)], lambda x: x.norm(**kw), lambda x: x.norm(**kw))


def test_norm_zero_and_p0():
    check_op(
        None,
        lambda x: x.norm(dim=1),
        lambda x: x.norm(dim=1),
        inputs=[np.zeros((2, 3))],
        gradcheck_fd=False,
    )
    x = ember.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(x.norm(p=0, dim=1).numpy(), [2.0, 1.0])


@pytest.mark.parametrize("name", ["all", "any"])
@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}])
def test_all_any(name, kw):
    data = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 0.5]])
    check_op(None, *both(name)(**kw), inputs=[data], grad=False)
    check_op(None, *both(name)(**kw), inputs=[data > 0.7], grad=False)


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": (0, 1)}])
def test_count_nonzero(kw):
    check_op(
        None, *both("count_nonzero")(**kw), inputs=[np.array([[0, 1, 2], [3, 0, 0]])], grad=False
    )


# -- scans --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_scans(name, dim):
    check_op([(3, 4)], *both(name)(dim), low=0.5, high=1.5)


def test_cumprod_with_zeros():
    x = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 2.0, 0.0, 1.0], [1.0, 2.0, 3.0, 0.0]])
    check_op(None, *both("cumprod")(1), inputs=[x])
    check_op(None, *both("cumprod")(0), inputs=[x])


def test_scan_dtypes():
    x = ember.tensor([1, 2, 3], dtype=ember.int32)
    assert x.cumsum(0).dtype == ember.int64
    assert x.cumprod(0, dtype=ember.float32).dtype == ember.float32


# -- softmax family ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize(
    "shape,dim", [((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -1), ((4,), 0), ((2, 0), 1)]
)
def test_softmax_family(name, shape, dim):
    check_op(
        [shape], lambda x: getattr(ember, name)(x, dim), lambda x: getattr(torch, name)(x, dim)
    )


def test_softmax_stable_and_functional():
    import ember.nn.functional as F

    big = np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]])
    check_op(
        None,
        lambda x: F.softmax(x, dim=1),
        lambda x: torch.softmax(x, 1),
        inputs=[big],
        gradcheck_fd=False,
    )
    check_op(
        None,
        lambda x: F.log_softmax(x, 1),
        lambda x: torch.log_softmax(x, 1),
        inputs=[big],
        gradcheck_fd=False,
    )
    check_op(
        [(3, 4)], lambda x: x.transpose(0, 1).softmax(-1), lambda x: x.transpose(0, 1).softmax(-1)
    )


def test_softmax_dtype_argument():
    x = ember.tensor([1.0, 2.0])
    assert ember.softmax(x, 0, dtype=ember.float64).dtype == ember.float64
    with pytest.raises(RuntimeError, match="softmax"):
        ember.softmax(ember.tensor([1, 2]), 0)


def test_softmax_double_backward():
    def penalty(mod, x):
        y = (mod.softmax(x, 1) * mod.arange(4.0, dtype=x.dtype)).sum() + mod.log_softmax(x, 1)[
            :, 0
        ].sum()
        (g,) = mod.autograd.grad(y, x, create_graph=True)
        (g * g).sum().backward()
        return x.grad

    data = np.random.default_rng(1).standard_normal((3, 4))
    ge = penalty(ember, ember.tensor(data, requires_grad=True))
    gt = penalty(torch, torch.tensor(data, requires_grad=True))
    np.testing.assert_allclose(to_numpy(ge), to_numpy(gt), rtol=1e-6, atol=1e-9)


# -- sorting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [{}, {"dim": 0}, {"descending": True}, {"dim": 0, "descending": True}]
)
def test_sort(kw):
    check_op([(4, 5)], *both("sort")(**kw))
    check_op([(4, 5)], *both("argsort")(**kw), grad=False)


def test_sort_is_stable_both_ways():
    data = np.array([[2.0, 1.0, 2.0, 1.0, 3.0, 2.0]])
    for desc in (False, True):
        check_op(
            None,
            *both("sort")(dim=1, descending=desc, stable=True),
            inputs=[data],
            gradcheck_fd=False,
        )


@pytest.mark.parametrize("kw", [{"k": 2}, {"k": 3, "dim": 0}, {"k": 1, "largest": False}, {"k": 0}])
def test_topk(kw):
    check_op([(4, 5)], *both("topk")(**kw))


def test_topk_bad_k_raises():
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        ember.ones(3).topk(4)


def test_sum_mean_double_backward():
    def penalty(mod, x):
        y = (x * x * x).sum(1).mean() + (x.sin().mean(0, keepdim=True) ** 2).sum()
        (g,) = mod.autograd.grad(y, x, create_graph=True)
        (g**2).sum().backward()
        return x.grad

    data = np.random.default_rng(0).standard_normal((3, 4))
    ge = penalty(ember, ember.tensor(data, requires_grad=True))
    gt = penalty(torch, torch.tensor(data, requires_grad=True))
    np.testing.assert_allclose(to_numpy(ge), to_numpy(gt), rtol=1e-6, atol=1e-9)


def test_logsumexp_double_backward():
    def penalty(mod, x):
        (g,) = mod.autograd.grad((mod.logsumexp(x * x, 1) ** 2).sum(), x, create_graph=True)
        (g**2).sum().backward()
        return x.grad

    data = np.random.default_rng(3).standard_normal((3, 4))
    ge = penalty(ember, ember.tensor(data, requires_grad=True))
    gt = penalty(torch, torch.tensor(data, requires_grad=True))
    np.testing.assert_allclose(to_numpy(ge), to_numpy(gt), rtol=1e-6, atol=1e-9)


def test_cumsum_double_backward():
    def penalty(mod, x):
        (g,) = mod.autograd.grad((mod.cumsum(x, 1) ** 3).sum(), x, create_graph=True)
        (g**2).sum().backward()
        return x.grad

    data = np.random.default_rng(4).standard_normal((3, 4))
    ge = penalty(ember, ember.tensor(data, requires_grad=True))
    gt = penalty(torch, torch.tensor(data, requires_grad=True))
    np.testing.assert_allclose(to_numpy(ge), to_numpy(gt), rtol=1e-6, atol=1e-9)


def test_var_double_backward():
    def penalty(mod, x):
        (g,) = mod.autograd.grad(
            (x.var(1) * mod.arange(3.0, dtype=x.dtype)).sum(), x, create_graph=True
        )
        (g**2).sum().backward()
        return x.grad

    data = np.random.default_rng(2).standard_normal((3, 4))
    ge = penalty(ember, ember.tensor(data, requires_grad=True))
    gt = penalty(torch, torch.tensor(data, requires_grad=True))
    np.testing.assert_allclose(to_numpy(ge), to_numpy(gt), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("run_backward", [False, True])
def test_output_saved_for_backward_is_freed_by_refcount(run_backward):
    # regression: ctx used to hold its saved output Tensor, a cycle through grad_fn that
    # kept the output's memory alive until the cyclic garbage collector ran
    x = ember.randn(4, 5, requires_grad=True)
    gc.disable()
    try:
        y = ember.softmax(x, 1)
        ref = weakref.ref(y)
        if run_backward:
            (y * y).sum().backward()
        del y
        assert ref() is None
    finally:
        gc.enable()
