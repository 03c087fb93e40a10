"""Parity with torch for PyTorch's NumPy-style keyword aliases, lists inside index
tuples, norms with negative p, and cropping (negative) pads in every mode."""

import math

import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as F
from tests.helpers import check_op


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib, x: lib.sum(x, axis=1),
        lambda lib, x: x.sum(axis=(0, 2), keepdims=True),
        lambda lib, x: lib.mean(x, axis=-1),
        lambda lib, x: x.prod(axis=0),
        lambda lib, x: x.std(axis=1),
        lambda lib, x: lib.var(x, axis=2, keepdim=True),
        lambda lib, x: x.amax(axis=1),
        lambda lib, x: lib.amin(x, axis=(1, 2)),
        lambda lib, x: x.max(axis=1)[0],
        lambda lib, x: lib.min(x, axis=0).values,
        lambda lib, x: x.logsumexp(axis=1),
        lambda lib, x: x.norm(dim=1),
        lambda lib, x: lib.norm(x, p=3, dim=1),
        lambda lib, x: x.nansum(axis=0),
        lambda lib, x: x.median(axis=2).values,
        lambda lib, x: lib.cumsum(x, axis=1),
        lambda lib, x: x.cumprod(axis=0),
        lambda lib, x: x.cummax(axis=2).values,
        lambda lib, x: lib.logcumsumexp(x, axis=1),
        lambda lib, x: lib.softmax(x, axis=1),
        lambda lib, x: x.log_softmax(axis=-1),
        lambda lib, x: x.sort(axis=1).values,
    ],
)
def test_axis_alias(fn):
    check_op([(3, 4, 5)], lambda x: fn(ember, x), lambda x: fn(torch, x))


def test_axis_alias_non_differentiable_and_conflict():
    x = np.random.default_rng(0).standard_normal((3, 4))
    for name in ("argmax", "argmin", "all", "any", "count_nonzero"):
        e = getattr(ember.tensor(x), name)(axis=1)
        t = getattr(torch.tensor(x), name)(axis=1)
        np.testing.assert_array_equal(e.numpy(), t.numpy())
    with pytest.raises(TypeError, match="alias 'axis'"):
        ember.sum(ember.tensor(x), dim=0, axis=1)


@pytest.mark.parametrize(
    "key",
    [
        ([0, 2], 1),
        (slice(None), [1, 0]),
        ([0, 2], [3, 1]),
        (Ellipsis, [1, 3]),
        ([0, 1], slice(None), [0, 3]),
        (1, [0, 2], slice(1, 3)),
        (None, [2, 0]),
        ([[0, 1], [2, 2]], 1),
        ((0, 2), 1),
        (slice(None), (3, 0)),
        (1, (0, 2), slice(1, 3)),
    ],
)
def test_lists_inside_index_tuples(key):
    check_op([(3, 4, 5)], lambda x: x[key])

    def assign(lib, x):
        y = x * 1
        y[key] = -1.0
        return y

    check_op([(3, 4, 5)], lambda x: assign(ember, x), lambda x: assign(torch, x))


def test_short_list_of_lists_is_a_tuple_of_indices():
    a = np.arange(24.0).reshape(2, 3, 4)
    with pytest.warns(UserWarning):
        expected = torch.tensor(a)[[[0, 1], [1, 2]]].numpy()
    np.testing.assert_array_equal(ember.tensor(a)[[[0, 1], [1, 2]]].numpy(), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("p", [-1, -2, -0.5, -math.inf, 3, 0.5])
def test_norm_any_p(p, dtype):
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == "float32" else {}
    check_op([(3, 4)], lambda x: x.norm(p=p), dtype=dtype, low=0.5, high=2.0, **tol)
    check_op(
        [(3, 4)],
        lambda x: ember.linalg.vector_norm(x, ord=p, dim=1),
        lambda x: torch.linalg.vector_norm(x, ord=p, dim=1),
        dtype=dtype,
        low=-2.0,
        high=-0.5,
        **tol,
    )


def test_norm_double_backward():
    def grad_of_grad(lib, x0):
        x = lib.tensor(x0, requires_grad=True)
        (g,) = lib.autograd.grad(x.norm(p=3), x, create_graph=True)
        (gg,) = lib.autograd.grad((g * g).sum(), x)
        return gg.detach().numpy()

    x0 = np.array([[0.5, -1.0], [2.0, 1.5]])
    np.testing.assert_allclose(grad_of_grad(ember, x0), grad_of_grad(torch, x0), rtol=1e-6)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", [(-1, 2), (2, -1), (-1, -2), (1, -2, -1, 3)])
def test_pad_negative_crops(mode, pad):
    shape = (2, 3, 6) if len(pad) == 2 else (2, 3, 6, 5)
    check_op(
        [shape],
        lambda x: F.pad(x, pad, mode=mode),
        lambda x: torch.nn.functional.pad(x, pad, mode=mode),
    )


def test_pad_errors():
    with pytest.raises(RuntimeError, match="negative output size"):
        F.pad(ember.ones(2, 3), (-2, -2))
    with pytest.raises(NotImplementedError, match="not supported for 4D"):
        F.pad(ember.ones(1, 2, 3, 4), (1, 1), mode="reflect")


@pytest.mark.parametrize(
    "mode,pad",
    [
        ("constant", (1, -1, 2, 0)),
        ("reflect", (2, 1, 1, 2)),
        ("replicate", (-1, 2, 1, 1)),
        ("circular", (2, -1, 1, 2)),
    ],
)
def test_pad_double_backward(mode, pad):
    x0 = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    results = []
    for lib, functional in ((ember, F), (torch, torch.nn.functional)):
        x = lib.tensor(x0, requires_grad=True)
        y = functional.pad(x, pad, mode=mode)
        (g,) = lib.autograd.grad((y * y * y).sum(), x, create_graph=True)
        (gg,) = lib.autograd.grad((g * g).sum(), x)
        results.append(gg.detach().numpy())
    np.testing.assert_allclose(*results, rtol=1e-10)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda nn: nn.ZeroPad1d((1, -1)), (2, 3, 5)),
        (lambda nn: nn.ZeroPad2d(1), (2, 3, 4, 5)),
        (lambda nn: nn.ZeroPad3d((1, 0, 0, 2, 1, 1)), (1, 2, 3, 4, 3)),
        (lambda nn: nn.ConstantPad1d(2, 3.5), (2, 3, 5)),
        (lambda nn: nn.ConstantPad2d((1, 0, -1, 2), -1.0), (2, 3, 4, 5)),
        (lambda nn: nn.ConstantPad3d(1, 0.5), (2, 3, 3, 4)),
        (lambda nn: nn.ReflectionPad1d(2), (2, 3, 5)),
        (lambda nn: nn.ReflectionPad2d((1, 0, 2, 1)), (2, 3, 4, 5)),
        (lambda nn: nn.ReflectionPad3d(1), (1, 2, 3, 4, 3)),
        (lambda nn: nn.ReplicationPad1d((3, -1)), (2, 3, 5)),
        (lambda nn: nn.ReplicationPad2d(2), (3, 4, 5)),
        (lambda nn: nn.ReplicationPad3d((1, 2, 0, 1, 1, 0)), (1, 2, 3, 4, 3)),
        (lambda nn: nn.CircularPad1d(2), (2, 3, 5)),
        (lambda nn: nn.CircularPad2d((1, 2, 2, 1)), (2, 3, 4, 5)),
        (lambda nn: nn.CircularPad3d(1), (1, 2, 3, 4, 3)),
    ],
)
def test_padding_modules(make, shape):
    check_op([shape], lambda x: make(ember.nn if isinstance(x, ember.Tensor) else torch.nn)(x))
    assert repr(make(ember.nn)) == repr(make(torch.nn))


def test_padding_module_errors():
    with pytest.raises(ValueError, match="tuple of 4 ints"):
        ember.nn.ReflectionPad2d((1, 2))
