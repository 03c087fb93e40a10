"""Comparisons and logical tests: ``== != < <= > >=`` (eq, ne, lt, le, gt, ge),
logical_and/or/xor/not, isnan/isinf/isfinite, isclose, equal and allclose. None is
differentiable: each returns a bool tensor (or a Python bool) without a graph node."""

from __future__ import annotations

from ..autograd import traceable
from ..tensor import Tensor
from ._util import xp_of
from .cast import operands
from .declare import declared


def _compare(name, op):
    def fn(input, other):
        a, b = operands(name, input, other)
        xa = a._array if isinstance(a, Tensor) else a
        xb = b._array if isinstance(b, Tensor) else b
        return Tensor._make(
            xp_of(xa if isinstance(a, Tensor) else xb).asarray(op(xa, xb)), False, None, 0
        )

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{name}`` of two tensors (or a tensor and a number), promoted."
    return declared(None, operator=name)(traceable(fn))


eq = _compare("eq", lambda a, b: a == b)
ne = _compare("ne", lambda a, b: a != b)
lt = _compare("lt", lambda a, b: a < b)
le = _compare("le", lambda a, b: a <= b)
gt = _compare("gt", lambda a, b: a > b)
ge = _compare("ge", lambda a, b: a >= b)


def _logical(name):
    def fn(input, other=None):
        xp = xp_of(input._array)
        if other is None:
            return Tensor._make(getattr(xp, name)(input._array), False, None, 0)
        xb = other._array if isinstance(other, Tensor) else other
        return Tensor._make(getattr(xp, name)(input._array, xb), False, None, 0)

    fn.__name__ = name
    return declared(None)(traceable(fn))


logical_and = _logical("logical_and")
logical_or = _logical("logical_or")
logical_xor = _logical("logical_xor")
logical_not = _logical("logical_not")
isnan = _logical("isnan")
isinf = _logical("isinf")
isfinite = _logical("isfinite")


@declared(None)
def equal(input: Tensor, other: Tensor) -> bool:
    return input.shape == other.shape and bool((input._array == other._array).all())


@declared(None)
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(
        xp_of(input._array).allclose(
            input._array, other._array, rtol=rtol, atol=atol, equal_nan=equal_nan
        )
    )


@declared(None)
@traceable
def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    xb = other._array if isinstance(other, Tensor) else other
    return Tensor._make(
        xp_of(input._array).isclose(input._array, xb, rtol=rtol, atol=atol, equal_nan=equal_nan),
        False,
        None,
        0,
    )
