"""``scatter_reduce``: reduce ``src`` into a copy of ``input`` at ``index`` along ``dim``
with 'sum', 'prod', 'mean', 'amax' or 'amin', optionally leaving ``input``'s own value
out of the reduction (``include_self=False``). Gradients follow PyTorch's conventions:
ties of amax/amin share the gradient evenly, and prod handles zeros exactly."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import attach, inplace, wrap_dim, xp_of
from .scatter import _along, _check_gather_shapes, _check_index

_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _reduce(x, key, part, reduce, include_self):
    """The forward on arrays; also returns the mask of positions scattered to."""
    xp = xp_of(x)
    out = x.copy()
    hit = xp.zeros(x.shape, bool)
    hit[key] = True
    if not include_self:
        if reduce in ("sum", "mean"):
            out[hit] = 0
        elif reduce == "prod":
            out[hit] = 1
        else:
            big = np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).max
            out[hit] = -big if reduce == "amax" else big
    if reduce in ("sum", "mean"):
        xp.add.at(out, key, part)
    elif reduce == "prod":
        xp.multiply.at(out, key, part)
    else:
        (xp.maximum if reduce == "amax" else xp.minimum).at(out, key, part)
    if reduce == "mean":
        count = xp.full(x.shape, 1 if include_self else 0, x.dtype)
        xp.add.at(count, key, 1)
        count[count == 0] = 1
        out = out // count if x.dtype.kind in "iub" else out / count
    return out, hit


class ScatterReduce(Function):
    @staticmethod
    def forward(ctx, x, index, src, dim, reduce, include_self):
        key = _along(index, dim)
        part = src[tuple(slice(0, s) for s in index.shape)]
        out, hit = _reduce(x, key, part, reduce, include_self)
        ctx.save_for_backward(x, src, out)
        ctx.key, ctx.hit, ctx.index_shape = key, hit, index.shape
        ctx.reduce, ctx.include_self = reduce, include_self
        return out

    @staticmethod
    def backward(ctx, grad):
        x, src, out = ctx.saved_tensors
        key, hit, reduce, include_self = ctx.key, ctx.hit, ctx.reduce, ctx.include_self
        xp = xp_of(grad)
        region = tuple(slice(0, s) for s in ctx.index_shape)
        part = src[region]
        if reduce == "sum":
            g_self, g_part = grad, grad[key]
        elif reduce == "mean":
            count = xp.full(x.shape, 1 if include_self else 0, grad.dtype)
            xp.add.at(count, key, 1)
            count[count == 0] = 1
            g_self = grad / count
            g_part = g_self[key]
        elif reduce == "prod":
            g_self, g_part = _prod_grads(xp, grad, x, part, out, key, include_self)
        else:
            self_is_result = (x == out).astype(grad.dtype)
            part_is_result = (part == out[key]).astype(grad.dtype)
            share = self_is_result.copy()
            xp.add.at(share, key, part_is_result)
            spread = grad / share
            g_self = self_is_result * spread
            g_part = part_is_result * spread[key]
        if not include_self:
            g_self = xp.where(hit, 0, g_self).astype(grad.dtype, copy=False)
        g_src = None
        if ctx.needs_input_grad[2]:
            g_src = xp.zeros(src.shape, grad.dtype)
            g_src[region] = g_part
        return (g_self if ctx.needs_input_grad[0] else None), None, g_src


def _prod_grads(xp, grad, x, part, out, key, include_self):
    """Gradients of a scatter-product, exact where inputs are zero (PyTorch's scheme)."""
    masked_self = xp.where(x == 0, 1, x).astype(x.dtype, copy=False)
    masked_self_out, _ = _reduce(masked_self, key, part, "prod", include_self)
    g_self = grad * masked_self_out / masked_self
    part_zero = part == 0
    zeros_per_slot = xp.zeros(x.shape, grad.dtype)
    xp.add.at(zeros_per_slot, key, part_zero.astype(grad.dtype))
    single_zero = part_zero & (zeros_per_slot[key] == 1)
    # a lone zero's gradient is the product of everything else in its slot
    masked_part = xp.where(single_zero, 1, part).astype(part.dtype, copy=False)
    masked_part_out, _ = _reduce(x, key, masked_part, "prod", include_self)
    divided = (grad * out)[key] / xp.where(part_zero, 1, part)
    g_part = xp.where(single_zero, (grad * masked_part_out)[key], divided)
    return g_self, g_part.astype(grad.dtype, copy=False)


def scatter_reduce(
    input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True
) -> Tensor:
    r"""Reduce ``src`` into a copy of ``input`` at ``index`` along ``dim``.

    Args:
        reduce: 'sum', 'prod', 'mean', 'amax' or 'amin'.
        include_self: whether ``input``'s values at the scattered positions take part.

    Example::

        >>> x = ember.tensor([1.0, 2.0, 3.0])
        >>> x.scatter_reduce(0, ember.tensor([0, 0, 2]), ember.tensor([5.0, 6.0, 7.0]), "amax")
        tensor([6., 2., 7.])
    """
    if reduce not in _REDUCTIONS:
        raise RuntimeError(
            f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}"
        )
    if not isinstance(src, Tensor):
        raise TypeError(
            f"scatter_reduce(): argument 'src' must be Tensor, not {type(src).__name__}"
        )
    d = wrap_dim(dim, input._array.ndim)
    _check_index("scatter_reduce", index, input._array.shape[d] if input._array.ndim else 1, d)
    if src._array.ndim != index._array.ndim:
        raise RuntimeError(
            "scatter_reduce(): Index tensor must have the same number of dimensions as src "
            f"tensor (index shape {list(index.shape)}, src shape {list(src.shape)})"
        )
    _check_gather_shapes("scatter_reduce", input, d, index, src)
    if src.dtype is not input.dtype:
        raise RuntimeError(
            f"scatter_reduce(): Expected self.dtype to be equal to src.dtype (got {input.dtype} "
            f"and {src.dtype})"
        )
    return ScatterReduce.apply(input, index, src, dim=d, reduce=reduce, include_self=include_self)


attach(scatter_reduce=scatter_reduce, scatter_reduce_=inplace(scatter_reduce))
