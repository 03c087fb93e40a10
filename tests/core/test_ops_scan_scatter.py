"""Parity with torch for cummax/cummin/logcumsumexp, cumprod's shapes and zero
gradients, scatter_reduce in every mode, and einsum with ellipses (first and second
order gradients)."""

import numpy as np
import pytest
import torch

import ember
from tests.helpers import check_op


@pytest.mark.parametrize("name", ["cummax", "cummin"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin(name, dim):
    rng = np.random.default_rng(0)
    ties = rng.integers(0, 3, (4, 5)).astype(np.float64)
    check_op(None, lambda x: tuple(getattr(x, name)(dim)), inputs=[ties], gradcheck_fd=False)
    check_op(
        [(4, 5)],
        lambda x: tuple(getattr(ember if isinstance(x, ember.Tensor) else torch, name)(x, dim)),
    )
    ints = rng.integers(-5, 5, (3, 4))
    check_op(None, lambda x: tuple(getattr(x, name)(dim)), inputs=[ints], grad=False)


def test_cummax_nan_and_scalar():
    x = np.array([[1.0, np.nan, 3.0, np.nan, 0.0]])
    for name in ("cummax", "cummin"):
        e, t = getattr(ember.tensor(x), name)(1), getattr(torch.tensor(x), name)(1)
        np.testing.assert_array_equal(e.values.numpy(), t.values.numpy())
        np.testing.assert_array_equal(e.indices.numpy(), t.indices.numpy())
    out = ember.tensor(2.0).cummax(0)
    assert out.values.shape == () and out.indices.item() == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logcumsumexp(dtype):
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == "float32" else {}
    check_op([(3, 5)], lambda x: x.logcumsumexp(1), dtype=dtype, **tol)
    check_op(
        [(4, 2)],
        lambda x: (ember if isinstance(x, ember.Tensor) else torch).logcumsumexp(x, 0),
        dtype=dtype,
        **tol,
    )
    wide = np.array([[-1000.0, 0.0, 800.0, -5.0]])
    check_op(None, lambda x: x.logcumsumexp(1), inputs=[wide], gradcheck_fd=False)
    with pytest.raises(RuntimeError, match="not implemented"):
        ember.tensor([1, 2]).logcumsumexp(0)


def test_cumprod_shapes_and_zeros():
    check_op([()], lambda x: x.cumprod(0))
    check_op([(3, 4)], lambda x: x.cumprod(-1))
    check_op([(2, 0, 3)], lambda x: x.cumsum(1))
    zeros = np.array([[1.5, 0.0, 2.0, 3.0], [0.0, 0.0, 1.0, 2.0], [2.0, -1.0, 0.5, 0.0]])
    check_op(None, lambda x: x.cumprod(1), inputs=[zeros], gradcheck_fd=False)
    check_op(None, lambda x: x.cumprod(0), inputs=[zeros], gradcheck_fd=False)
    assert ember.tensor(3.0).cumsum(0).shape == ()


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
def test_scatter_reduce(reduce, include_self):
    rng = np.random.default_rng(0)
    index = rng.integers(0, 4, (3, 4))
    for x, src in (
        (rng.standard_normal((4, 5)), rng.standard_normal((3, 4))),
        (
            rng.integers(-2, 3, (4, 5)).astype(np.float64),
            rng.integers(-2, 3, (3, 4)).astype(np.float64),
        ),
    ):
        check_op(
            None,
            lambda a, s: a.scatter_reduce(
                0,
                (ember if isinstance(a, ember.Tensor) else torch).tensor(index),
                s,
                reduce,
                include_self=include_self,
            ),
            inputs=[x, src],
            gradcheck_fd=False,
        )
    smooth = [rng.uniform(0.5, 2.0, (4, 5)), rng.uniform(0.5, 2.0, (3, 4))]
    check_op(
        None,
        lambda a, s: (ember if isinstance(a, ember.Tensor) else torch).scatter_reduce(
            a,
            1,
            (ember if isinstance(a, ember.Tensor) else torch).tensor(index),
            s,
            reduce,
            include_self=include_self,
        ),
        inputs=smooth,
    )


def test_scatter_reduce_integer_inplace_and_errors():
    idx = [0, 0, 2]
    e = ember.tensor([1, 2, 3]).scatter_reduce(
        0, ember.tensor(idx), ember.tensor([5, 6, 8]), "mean"
    )
    t = torch.tensor([1, 2, 3]).scatter_reduce(
        0, torch.tensor(idx), torch.tensor([5, 6, 8]), "mean"
    )
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    x = ember.zeros(3)
    x.scatter_reduce_(
        0, ember.tensor(idx), ember.tensor([5.0, 6.0, 7.0]), "amax", include_self=False
    )
    assert x.tolist() == [6.0, 0.0, 7.0]
    with pytest.raises(RuntimeError, match="reduce argument must be"):
        ember.zeros(3).scatter_reduce(0, ember.tensor(idx), ember.zeros(3), "max")
    with pytest.raises(RuntimeError, match="self.dtype to be equal"):
        ember.zeros(3).scatter_reduce(
            0, ember.tensor(idx), ember.zeros(3, dtype=ember.float64), "sum"
        )


EINSUMS = [
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (3, 5, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 4, 5), (3, 5, 2)]),
    ("bi...,bj...->bij...", [(2, 3, 4), (2, 5, 4)]),
    ("...i,...i", [(3, 4), (4,)]),
    ("i...->...", [(3, 4, 2)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("ij...,jk", [(2, 3, 4), (3, 5)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUMS)
def test_einsum_ellipsis_backward(equation, shapes):
    check_op(
        shapes,
        lambda *xs: (ember if isinstance(xs[0], ember.Tensor) else torch).einsum(equation, *xs),
    )
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    results = []
    for lib in (ember, torch):
        xs = [lib.tensor(a, requires_grad=True) for a in arrays]
        out = lib.einsum(equation, *xs)
        grads = lib.autograd.grad((out * out).sum(), xs, create_graph=True)
        penalty = sum((g * g * g).sum() for g in grads)
        results.append([g.detach().numpy() for g in lib.autograd.grad(penalty, xs)])
    for e, t in zip(*results):
        np.testing.assert_allclose(e, t, rtol=1e-7)
