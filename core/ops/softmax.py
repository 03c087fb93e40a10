"""The softmax family: softmax, log_softmax (each one fused op, on ember's CPU threads
for the last dim) and softmin."""

from __future__ import annotations

import warnings

import numpy as np

from .. import kernels
from ..autograd import Function
from ..tensor import Tensor
from . import cpu_rows
from ._util import wrap_dim, xp_of
from .declare import declared
from .reduce import _TORCH_NAMES, Sum


class Softmax(Function):
    autocast, differentiable_backward = "cuda:fp32", True

    @staticmethod
    def forward(ctx, x, dim):
        xp = xp_of(x)
        ctx.dim = dim
        if xp is not np and kernels.softmax_fits(x, dim):
            e = kernels.softmax_lastdim(x)
        elif x.size == 0:
            e = x.copy()
        elif dim == x.ndim - 1 and cpu_rows.fits(x):
            e = cpu_rows.softmax_forward(x)
        else:
            e = xp.exp(x - x.max(axis=dim, keepdims=True))
            e /= e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(e)
        return e

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        if ctx.dim == y.ndim - 1 and cpu_rows.fits(y, grad):
            return cpu_rows.softmax_backward(grad, y)
        gy = grad * y
        if isinstance(gy, Tensor):
            return gy - y * Sum.apply(gy, dim=(ctx.dim,), keepdim=True)
        return gy - y * gy.sum(axis=ctx.dim, keepdims=True)


class LogSoftmax(Function):
    autocast, differentiable_backward = "cuda:fp32", True

    @staticmethod
    def forward(ctx, x, dim):
        xp = xp_of(x)
        ctx.dim = dim
        if xp is not np and kernels.softmax_fits(x, dim):
            shifted = kernels.softmax_lastdim(x, log=True)
        elif x.size == 0:
            shifted = x.copy()
        elif dim == x.ndim - 1 and cpu_rows.fits(x):
            shifted = cpu_rows.softmax_forward(x, log=True)
        else:
            shifted = x - x.max(axis=dim, keepdims=True)
            shifted -= xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(shifted)
        return shifted

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        if ctx.dim == y.ndim - 1 and cpu_rows.fits(y, grad):
            return cpu_rows.softmax_backward(grad, y, log=True)
        if isinstance(grad, Tensor):
            return grad - y.exp() * Sum.apply(grad, dim=(ctx.dim,), keepdim=True)
        return grad - xp_of(y).exp(y) * grad.sum(axis=ctx.dim, keepdims=True)


def _softmax_args(name, input, dim, dtype):
    if dim is None:
        # the caller, past this helper, softmax, its autocast prologue and axis= aliases
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated.", stacklevel=5)
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if dtype is not None:
        input = input.to(dtype)
    elif not input.is_floating_point():
        raise RuntimeError(f"\"{name}\" not implemented for '{_TORCH_NAMES[input.dtype.name]}'")
    return input, wrap_dim(dim, input._array.ndim)


@declared(Softmax, axis_aliases=True)
def softmax(input: Tensor, dim=None, dtype=None) -> Tensor:
    r"""``exp(x) / sum(exp(x), dim)``, computed stably as one fused op."""
    x, d = _softmax_args("softmax", input, dim, dtype)
    return Softmax.apply(x, d)


@declared(LogSoftmax, axis_aliases=True)
def log_softmax(input: Tensor, dim=None, dtype=None) -> Tensor:
    r"""``x - logsumexp(x, dim)``, computed stably as one fused op."""
    x, d = _softmax_args("log_softmax", input, dim, dtype)
    return LogSoftmax.apply(x, d)


@declared(None, method=False)
def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    r"""``softmax(-input)``."""
    return softmax(-input, dim, dtype)
