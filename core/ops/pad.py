"""``pad``: constant, reflect, replicate and circular padding (negative amounts crop).

Constant padding copies the input into a filled buffer; the other modes gather along
each padded dim with an index array, and backward adds each pad position's gradient
back onto the input position it copied (a loop over the pad widths, not the data)."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import xp_of
from .declare import declared


def _source_index(size, before, after, mode):
    """For each padded position along one axis, the input position it copies (pads are
    validated to need at most one reflection / wrap)."""
    pos = np.arange(-before, size + after)
    if mode == "reflect":
        pos = np.abs(pos)
        return np.where(pos >= size, 2 * (size - 1) - pos, pos)
    if mode == "replicate":
        return np.clip(pos, 0, size - 1)
    # circular: negative amounts crop first; the rest wraps around what remains
    start, kept = max(-before, 0), size - max(-before, 0) - max(-after, 0)
    return np.arange(-max(before, 0), kept + max(after, 0)) % kept + start


class Pad(Function):
    differentiable_backward = True  # through PadGrad

    @staticmethod
    def forward(ctx, x, pads, mode, value):
        xp = xp_of(x)
        ctx.meta = (x.shape, pads, mode)
        if mode == "constant":
            shape = tuple(n + b + a for n, (b, a) in zip(x.shape, pads))
            out = xp.full(shape, value, x.dtype)
            src, dst = _constant_slices(x.shape, pads)
            out[dst] = x[src]
            return out
        out = x
        for axis, (b, a) in enumerate(pads):
            if b or a:
                index = _source_index(x.shape[axis], b, a, mode)
                out = xp.take(out, xp.asarray(index), axis=axis)
        return out

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            return PadGrad.apply(grad, meta=ctx.meta)
        return _pad_grad(grad, *ctx.meta)


class PadGrad(Function):
    """Padding's (linear) backward as an op; its own backward is the padding again."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, grad, meta):
        ctx.meta = meta
        return _pad_grad(grad, *meta)

    @staticmethod
    def backward(ctx, ggx):
        _, pads, mode = ctx.meta
        if isinstance(ggx, Tensor):
            return Pad.apply(ggx, pads=pads, mode=mode, value=0)
        return Pad.forward(_Scratch(), ggx, pads, mode, 0)


class _Scratch:
    """A throwaway ctx for calling a forward directly."""


def _pad_grad(grad, shape, pads, mode):
    xp = xp_of(grad)
    if mode == "constant":
        gx = xp.zeros(shape, grad.dtype)
        src, dst = _constant_slices(shape, pads)
        gx[src] = grad[dst]
        return gx
    for axis in reversed(range(len(pads))):
        b, a = pads[axis]
        if not (b or a):
            continue
        size = shape[axis]
        out_len = size + b + a
        index = _source_index(size, b, a, mode)
        lead = (slice(None),) * axis
        # the output positions that copy input position p - b in order: one slice
        lo, hi = max(b, 0), min(b + size, out_len)
        g = xp.zeros(grad.shape[:axis] + (size,) + grad.shape[axis + 1 :], grad.dtype)
        g[lead + (slice(lo - b, hi - b),)] = grad[lead + (slice(lo, hi),)]
        for p in [*range(lo), *range(hi, out_len)]:  # the pad widths only
            g[lead + (int(index[p]),)] += grad[lead + (p,)]
        grad = g
    return grad


def _constant_slices(shape, pads):
    src, dst = [], []
    for n, (b, a) in zip(shape, pads):
        start, stop = max(-b, 0), n - max(-a, 0)
        src.append(slice(start, stop))
        dst.append(slice(max(b, 0), max(b, 0) + max(stop - start, 0)))
    return tuple(src), tuple(dst)


@declared(Pad, method=False)
def pad(input, pad, mode="constant", value=None) -> Tensor:
    r"""Pad ``input``: ``pad`` lists (before, after) amounts starting from the last dim.

    Args:
        mode: 'constant' (with ``value``, default 0; negative amounts crop), 'reflect',
            'replicate' or 'circular'.

    Example::

        >>> F.pad(ember.ones(1, 2, 3), (1, 1), mode="reflect").shape
        ember.Size([1, 2, 5])
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pad(): argument 'input' must be Tensor, not {type(input).__name__}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(
            f"Padding length must be divisible by 2 and at most twice the number of dimensions "
            f"of the input, but got padding of length {len(pad)} for input of size "
            f"{list(input.shape)}"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(
            f"Unrecognised padding mode {mode}: expected one of 'constant', 'reflect', "
            "'replicate', 'circular'"
        )
    if mode != "constant" and value not in (None, 0):
        raise ValueError(f'Padding mode "{mode}" doesn\'t take in value argument')
    k = len(pad) // 2
    if mode != "constant" and (k > 3 or input.ndim not in (k + 1, k + 2)):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor: "
            f"{mode} padding of the last 1, 2 or 3 dims needs a 2D/3D, 3D/4D or 4D/5D input"
        )
    pads = [(0, 0)] * (input.ndim - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    shape = tuple(input.shape)
    for axis, (b, a) in enumerate(pads):
        size = shape[axis]
        if mode == "constant":
            if size + b + a < 0:
                raise RuntimeError(
                    f"The input size {size}, plus negative padding {b} and {a} resulted in a "
                    f"negative output size, which is invalid. Check dimension {axis} of your input."
                )
        elif (b or a) and (
            size + min(b, 0) + min(a, 0) <= 0
            or (mode == "reflect" and max(b, a) >= size)
            or (mode != "reflect" and max(b, a) > size)
        ):
            raise RuntimeError(
                f"{mode} padding ({b}, {a}) at dimension {axis} is invalid for input of size "
                f"{list(shape)}: padding size should be less than"
                f"{'' if mode == 'reflect' else ' or equal to'} the corresponding input dimension "
                "and must leave at least one element"
            )
    fill = 0 if value is None else value
    return Pad.apply(input, pads=tuple(pads), mode=mode, value=fill)
