"""Parity with torch for the trigonometric, hyperbolic, error-function and binary math
ops, the bitwise ops and shifts, and the gradient corner cases of pow and sign."""

import numpy as np
import pytest
import torch

import ember
from tests.helpers import check_op, to_numpy

UNARY = [  # name, low, high (inside the domain)
    ("tan", -1.2, 1.2),
    ("asin", -0.9, 0.9),
    ("arcsin", -0.9, 0.9),
    ("acos", -0.9, 0.9),
    ("arccos", -0.9, 0.9),
    ("atan", -3.0, 3.0),
    ("arctan", -3.0, 3.0),
    ("sinh", -2.0, 2.0),
    ("cosh", -2.0, 2.0),
    ("asinh", -3.0, 3.0),
    ("acosh", 1.2, 4.0),
    ("atanh", -0.9, 0.9),
    ("erf", -3.0, 3.0),
    ("erfc", -3.0, 3.0),
    ("erfinv", -0.95, 0.95),
    ("exp2", -3.0, 3.0),
    ("log2", 0.2, 4.0),
    ("log10", 0.2, 4.0),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,low,high", UNARY)
def test_unary(name, low, high, dtype):
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == "float32" else {}
    check_op([(3, 4)], lambda x: getattr(x, name)(), dtype=dtype, low=low, high=high, **tol)
    check_op(
        [(5,)],
        lambda x: getattr(ember, name)(x),
        lambda x: getattr(torch, name)(x),
        dtype=dtype,
        low=low,
        high=high,
        **tol,
    )


def test_unary_inplace_and_int_input():
    x = ember.tensor([0.1, 0.2])
    x.atanh_()
    np.testing.assert_allclose(x.numpy(), np.arctanh([0.1, 0.2]), rtol=1e-6)
    out = ember.erf(ember.tensor([0, 1, 2]))
    assert out.dtype == ember.float32
    np.testing.assert_allclose(out.numpy(), torch.erf(torch.tensor([0, 1, 2])).numpy(), rtol=1e-6)


def test_erf_family_precision_and_edges():
    x = np.concatenate([np.linspace(-8, 8, 4001), [np.inf, -np.inf, np.nan, 0.0]])
    for name in ("erf", "erfc"):
        e = getattr(ember, name)(ember.tensor(x)).numpy()
        t = getattr(torch, name)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(e, t, rtol=1e-13, atol=1e-15)
    y = np.array([-1.0, -0.999999, -0.5, 0.0, 1e-8, 0.7, 0.999999999, 1.0, 1.5, np.nan])
    np.testing.assert_allclose(
        ember.erfinv(ember.tensor(y)).numpy(), torch.erfinv(torch.tensor(y)).numpy(), rtol=1e-12
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["atan2", "arctan2", "logaddexp", "logaddexp2", "copysign"])
def test_binary(name, dtype):
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == "float32" else {}
    check_op(
        [(3, 4), (4,)],
        lambda a, b: getattr(ember, name)(a, b),
        lambda a, b: getattr(torch, name)(a, b),
        dtype=dtype,
        **tol,
    )
    check_op([(2, 3), (2, 3)], lambda a, b: getattr(a, name)(b), dtype=dtype, **tol)


def test_binary_with_numbers_and_infinities():
    a = torch.tensor([-np.inf, -np.inf, 1.0, 3.0])
    b = torch.tensor([-np.inf, 2.0, np.inf, -1.0])
    for name in ("logaddexp", "logaddexp2", "atan2", "copysign"):
        e = getattr(ember, name)(ember.tensor(a.numpy()), ember.tensor(b.numpy()))
        np.testing.assert_allclose(e.numpy(), getattr(torch, name)(a, b).numpy())
    check_op([(4,)], lambda a: ember.copysign(a, -1.0), lambda a: torch.copysign(a, -1.0))
    check_op(
        [(4,)],
        lambda a: ember.atan2(a, ember.tensor(0.5, dtype=ember.float64)),
        lambda a: torch.atan2(a, torch.tensor(0.5, dtype=torch.float64)),
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lerp(dtype):
    check_op(
        [(3, 4), (3, 4)],
        lambda a, b: ember.lerp(a, b, 0.3),
        lambda a, b: torch.lerp(a, b, 0.3),
        dtype=dtype,
    )
    check_op([(3, 4), (4,), (3, 1)], lambda a, b, w: a.lerp(b.expand(3, 4), w), dtype=dtype)
    x = ember.zeros(3)
    x.lerp_(ember.ones(3), 0.25)
    np.testing.assert_allclose(x.numpy(), 0.25)
    with pytest.raises(RuntimeError, match="same dtype"):
        ember.lerp(ember.zeros(2), ember.zeros(2, dtype=ember.float64), 0.5)


def test_double_backward_of_unary_math():
    def second(lib, name, x0):
        x = lib.tensor(x0, requires_grad=True, dtype=lib.float64)
        (g,) = lib.autograd.grad(getattr(lib, name)(x).sum(), x, create_graph=True)
        (gg,) = lib.autograd.grad(g.sum(), x)
        return to_numpy(gg)

    x0 = [0.3, -0.6, 0.8]
    for name in (
        "tan",
        "asin",
        "acos",
        "atan",
        "sinh",
        "cosh",
        "asinh",
        "atanh",
        "erf",
        "erfc",
        "erfinv",
        "exp2",
    ):
        np.testing.assert_allclose(
            second(ember, name, x0), second(torch, name, x0), rtol=1e-6, err_msg=name
        )


def test_sign_is_differentiable_with_zero_gradient():
    check_op([(3, 4)], lambda x: x.sign() * x)
    x = ember.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    (g,) = ember.autograd.grad(x.abs().sum(), x, create_graph=True)
    assert g.requires_grad
    (gg,) = ember.autograd.grad(g.sum(), x)
    np.testing.assert_array_equal(gg.numpy(), 0)
    assert ember.sign(ember.tensor([True, False])).dtype == ember.bool


@pytest.mark.parametrize("exponent", [0, 0.0, 2, 3, 0.5, -1.0])
def test_pow_zero_base_constant_exponent(exponent):
    x0 = np.array([0.0, 1.5, 2.0])
    e = ember.tensor(x0, requires_grad=True)
    t = torch.tensor(x0, requires_grad=True)
    (e**exponent).sum().backward()
    (t**exponent).sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy())


def test_pow_tensor_exponent_zero():
    a0, b0 = np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.0])
    e = [ember.tensor(v, requires_grad=True) for v in (a0, b0)]
    t = [torch.tensor(v, requires_grad=True) for v in (a0, b0)]
    (e[0] ** e[1]).sum().backward()
    (t[0] ** t[1]).sum().backward()
    for ei, ti in zip(e, t):
        np.testing.assert_allclose(ei.grad.numpy(), ti.grad.numpy())


INTS = [np.array([[5, -3, 12], [0, 7, -8]], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64)]


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: a & b,
        lambda a, b: a | b,
        lambda a, b: a ^ b,
        lambda a, b: a << b,
        lambda a, b: a >> b,
        lambda a, b: ~a,
        lambda a, b: 6 & a,
        lambda a, b: 6 | a,
        lambda a, b: 6 ^ a,
        lambda a, b: 1 << b,
        lambda a, b: 64 >> b,
        lambda a, b: a & 3,
        lambda a, b: a.bitwise_xor(b),
        lambda a, b: a.bitwise_left_shift(2),
        lambda a, b: a.bitwise_right_shift(b),
    ],
)
def test_bitwise(fn):
    check_op(None, fn, inputs=INTS, grad=False)


def test_bitwise_functional_bool_inplace_and_errors():
    for name in (
        "bitwise_and",
        "bitwise_or",
        "bitwise_xor",
        "bitwise_left_shift",
        "bitwise_right_shift",
    ):
        check_op(
            None,
            lambda a, b, n=name: getattr(ember, n)(a, b),
            lambda a, b, n=name: getattr(torch, n)(a, b),
            inputs=INTS,
            grad=False,
        )
    check_op(None, ember.bitwise_not, torch.bitwise_not, inputs=INTS[:1], grad=False)
    bools = [np.array([True, False, True]), np.array([True, True, False])]
    check_op(None, lambda a, b: (a & b, a | b, a ^ b, ~a), inputs=bools, grad=False)
    x = ember.tensor([1, 2, 4], dtype=ember.int32)
    x <<= 1
    x |= 1
    assert x.tolist() == [3, 5, 9] and x.dtype == ember.int32
    with pytest.raises(TypeError, match="integer and boolean"):
        ember.tensor([1.0]) & 1
    with pytest.raises(TypeError, match="integer and boolean"):
        ember.bitwise_not(ember.tensor([1.0]))
