"""Bitwise ops on integer and bool tensors: ``bitwise_not/and/or/xor``, the shifts, and
the operators ``~ & | ^ << >>`` with their reflected and in-place forms. None is
differentiable; floating tensors are rejected, as in PyTorch."""

from __future__ import annotations

from ..autograd import traceable
from ..tensor import Tensor
from ._util import attach, inplace, xp_of
from .elementwise import _operands


def _check_integral(name, *values):
    for v in values:
        floating = v.dtype.is_floating_point if isinstance(v, Tensor) else isinstance(v, float)
        if floating:
            shown = v.dtype if isinstance(v, Tensor) else "a float"
            raise TypeError(
                f"{name} is only supported for integer and boolean tensors, got {shown}"
            )


def _bitwise(name, ufunc):
    def fn(input, other) -> Tensor:
        if not isinstance(input, Tensor) and not isinstance(other, Tensor):
            raise TypeError(f"{name}(): expected at least one Tensor argument")
        _check_integral(name, input, other)
        a, b = _operands(name, input, other)
        xa = a._array if isinstance(a, Tensor) else a
        xb = b._array if isinstance(b, Tensor) else b
        like = a if isinstance(a, Tensor) else b
        xp = xp_of(like._array)
        out = getattr(xp, ufunc)(xa, xb)
        return Tensor._make(xp.asarray(out, dtype=like._array.dtype), False, None, 0)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{ufunc}`` of integer or bool tensors (or a tensor and a number)."
    return traceable(fn)


bitwise_and = _bitwise("bitwise_and", "bitwise_and")
bitwise_or = _bitwise("bitwise_or", "bitwise_or")
bitwise_xor = _bitwise("bitwise_xor", "bitwise_xor")
bitwise_left_shift = _bitwise("bitwise_left_shift", "left_shift")
bitwise_right_shift = _bitwise("bitwise_right_shift", "right_shift")


@traceable
def bitwise_not(input: Tensor) -> Tensor:
    r"""Elementwise bitwise NOT (logical NOT for bool tensors)."""
    _check_integral("bitwise_not", input)
    return Tensor._make(xp_of(input._array).invert(input._array), False, None, 0)


def _reflected(fn):
    return lambda self, other: fn(other, self)


attach(
    bitwise_and=bitwise_and,
    bitwise_or=bitwise_or,
    bitwise_xor=bitwise_xor,
    bitwise_not=bitwise_not,
    bitwise_left_shift=bitwise_left_shift,
    bitwise_right_shift=bitwise_right_shift,
    bitwise_and_=inplace(bitwise_and),
    bitwise_or_=inplace(bitwise_or),
    bitwise_xor_=inplace(bitwise_xor),
    bitwise_not_=inplace(bitwise_not),
    bitwise_left_shift_=inplace(bitwise_left_shift),
    bitwise_right_shift_=inplace(bitwise_right_shift),
    __and__=bitwise_and,
    __or__=bitwise_or,
    __xor__=bitwise_xor,
    __lshift__=bitwise_left_shift,
    __rshift__=bitwise_right_shift,
    __rand__=_reflected(bitwise_and),
    __ror__=_reflected(bitwise_or),
    __rxor__=_reflected(bitwise_xor),
    __rlshift__=_reflected(bitwise_left_shift),
    __rrshift__=_reflected(bitwise_right_shift),
    __invert__=bitwise_not,
    __iand__=inplace(bitwise_and),
    __ior__=inplace(bitwise_or),
    __ixor__=inplace(bitwise_xor),
    __ilshift__=inplace(bitwise_left_shift),
    __irshift__=inplace(bitwise_right_shift),
)
