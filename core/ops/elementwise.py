"""Selection and copies: ``where``, ``clamp``, ``masked_fill``, ``clone``, and the in-place
writes ``zero_``, ``fill_`` and ``copy_``.

The rest of the elementwise ops live by concept: ``arithmetic.py`` (+ - * / ** and
maximum/minimum), ``unary_math.py`` (exp, log, trigonometry, sigmoid, rounding),
``comparison.py`` (== < isnan ...) and ``bitwise.py``; ``cast.py`` holds casts and type
promotion, and ``declare.py`` tells how an op is declared.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..tensor import Tensor
from ._util import as_tensor_like, check_same_device, sum_to, xp_of
from .arithmetic import add, maximum, minimum, mul
from .declare import declared

# -- selection -------------------------------------------------------------------------------


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, min=None, max=None):
        xp = xp_of(x)
        ctx.save_for_backward(x)
        ctx.bounds = (min, max)
        out = x
        if min is not None:
            out = xp.maximum(out, min)
        if max is not None:
            out = xp.minimum(out, max)
        return out.astype(x.dtype, copy=False) if out is not x else out.copy()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        keep = True
        if lo is not None:
            keep = keep & (x >= lo)
        if hi is not None:
            keep = keep & (x <= hi)
        return grad * keep


class Where(Function):
    promotes = "common"

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (np.shape(a), np.shape(b))
        return xp_of(cond).where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved_tensors
        xp = xp_of(grad)
        sa, sb = ctx.shapes
        ga = sum_to(xp.where(cond, grad, 0), sa) if ctx.needs_input_grad[1] else None
        gb = sum_to(xp.where(cond, 0, grad), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb


@declared(Clamp, aliases=("clip",), inplace=True)
def clamp(input: Tensor, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise RuntimeError("clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    return Clamp.apply(input, min=min, max=max)


@declared(Where, method=lambda self, condition, other: where(condition, self, other))
def where(condition: Tensor, input=None, other=None) -> Tensor:
    if input is None and other is None:
        from .indexing import nonzero

        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        raise TypeError(f"where(): condition must be a Tensor, got {type(condition).__name__}")
    if condition._array.dtype != np.bool_:
        raise RuntimeError(
            f"where expected condition to be a boolean tensor, but got a tensor with dtype {condition.dtype}"
        )
    a, b = Where.promote("where", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b if isinstance(b, Tensor) else condition, dtypes.result_type(a, b))
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, a)
    check_same_device("where", condition, a, b)
    return Where.apply(condition, a, b)


@declared(Where, inplace=True)
def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    if mask._array.dtype != np.bool_:
        raise RuntimeError(
            f"masked_fill only supports boolean masks, but got mask with dtype {mask.dtype}"
        )
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(
                f"masked_fill only supports a 0-dimensional value tensor, but got tensor with {value.ndim} dimension(s)"
            )
        value = value.to(input.dtype)
        return Where.apply(mask, value, input)
    fill = Tensor._make(
        xp_of(input._array).asarray(value, dtype=input._array.dtype), False, None, 0
    )
    return Where.apply(mask, fill, input)


class Clone(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


@declared(Clone)
def clone(input: Tensor, *, memory_format=None) -> Tensor:
    return Clone.apply(input)


# -- in-place writes -------------------------------------------------------------------------


@declared(None)
def zero_(self: Tensor) -> Tensor:
    self._check_inplace()
    self._array[...] = 0
    self._bump_version()
    if self.requires_grad and self.grad_fn is not None:
        self.grad_fn, self.requires_grad = None, False
    return self


@declared(None)
def fill_(self: Tensor, value) -> Tensor:
    if isinstance(value, Tensor):
        value = value.item()
    self._check_inplace()
    self._array[...] = value
    self._bump_version()
    if self.grad_fn is not None:
        self.grad_fn, self.requires_grad = None, False
    return self


@declared(None)
def copy_(self: Tensor, src, non_blocking: bool = False) -> Tensor:
    if not isinstance(src, Tensor):
        src = Tensor._make(np.asarray(src), False, None, 0)
    try:
        np.broadcast_shapes(src._array.shape, self._array.shape)
    except ValueError:
        raise RuntimeError(
            f"copy_: the size of src {list(src.shape)} must be broadcastable to {list(self.shape)}"
        ) from None
    moved = src if src.device == self.device else src.to(self.device)
    if (
        moved.requires_grad
        and src.requires_grad
        and self.requires_grad is False
        and not _recording()
    ):
        moved = moved.detach()
    if _recording() and moved.requires_grad:
        result = add(mul(self._snapshot().detach(), 0), moved.to(self.dtype))
        if result.shape != self.shape:
            result = result.expand(self.shape)
        return self._inplace_from(result)
    self._check_inplace()
    xp = xp_of(self._array)
    xp.copyto(
        self._array, xp.asarray(moved._array) if xp is not np else moved._array, casting="unsafe"
    )
    self._bump_version()
    return self


def _recording():
    from .. import autograd

    return autograd._grad_enabled
