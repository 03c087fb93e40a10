"""Convolution of any spatial rank as three ops that are each other's gradients.

``ConvNd`` is the convolution, ``ConvNdInputGrad`` its gradient with respect to the
input (the transposed convolution) and ``ConvNdWeightGrad`` its gradient with respect
to the weight. All three are bilinear, and the derivatives of each are the other two,
so every order of gradient (``create_graph=True``) is built from the same three ops.
They serve 3-d convolutions, transposed 3-d convolutions and the double backward of
the 1-d / 2-d convolutions (whose first-order backward stays in conv.py's tuned code).

Windows are read through ``as_strided`` (no copy) and copied to columns a chunk of
images at a time for one batched GEMM; the input gradient scatter-adds the column
gradients back with one strided slice per kernel offset.
"""

from __future__ import annotations

import itertools
import math

from ..autograd import Function
from ..tensor import Tensor
from ._util import array_matmul, xp_of

_CHUNK_ELEMENTS = 1 << 21  # column elements per GEMM chunk


class ConvParams:
    """stride, (before, after) padding, dilation per spatial dim, and groups."""

    __slots__ = ("stride", "padding", "dilation", "groups")

    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding = tuple(stride), tuple(tuple(p) for p in padding)
        self.dilation, self.groups = tuple(dilation), groups

    def out_sizes(self, sizes, kernel):
        return tuple(
            (n + lo + hi - d * (k - 1) - 1) // s + 1
            for n, (lo, hi), d, k, s in zip(sizes, self.padding, self.dilation, kernel, self.stride)
        )


def _padded(x, params):
    if not any(lo or hi for lo, hi in params.padding):
        return x
    xp = xp_of(x)
    sizes = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], params.padding))
    out = xp.zeros(x.shape[:2] + sizes, x.dtype)
    out[
        (slice(None),) * 2
        + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], params.padding))
    ] = x
    return out


def _windows(xpd, kernel, out, params):
    """(N, C, *kernel, *out) view of the padded input's windows."""
    xp = xp_of(xpd)
    strides = xpd.strides
    shape = xpd.shape[:2] + tuple(kernel) + tuple(out)
    view_strides = (
        strides[:2]
        + tuple(st * d for st, d in zip(strides[2:], params.dilation))
        + tuple(st * s for st, s in zip(strides[2:], params.stride))
    )
    return xp.lib.stride_tricks.as_strided(xpd, shape, view_strides)


def _chunks(n, per_image):
    step = max(1, _CHUNK_ELEMENTS // max(per_image, 1))
    return [(b, min(b + step, n)) for b in range(0, n, step)]


def _columns(windows, b, e, groups):
    """Images b:e of the windows as (groups, C/groups * prod(kernel), images * prod(out)):
    one GEMM per group covers every image of the chunk."""
    spatial = (windows.ndim - 2) // 2
    view = windows[b:e].transpose((1, *range(2, 2 + spatial), 0, *range(2 + spatial, windows.ndim)))
    return view.reshape(groups, -1, (e - b) * math.prod(windows.shape[2 + spatial :]))


def _grad_rows(grad, b, e, groups):
    """Images b:e of an output gradient as (groups, O/groups, images * prod(out))."""
    m, o = e - b, grad.shape[1]
    return grad[b:e].swapaxes(0, 1).reshape(groups, o // groups, m * math.prod(grad.shape[2:]))


def conv_forward(x, weight, params):
    """The convolution of arrays (no bias)."""
    xp = xp_of(x)
    n, c = x.shape[:2]
    o = weight.shape[0]
    kernel = weight.shape[2:]
    g = params.groups
    out = params.out_sizes(x.shape[2:], kernel)
    windows = _windows(_padded(x, params), kernel, out, params)
    wmat = weight.reshape(g, o // g, -1)
    y = xp.empty((n, o) + out, x.dtype)
    for b, e in _chunks(n, c * math.prod(kernel) * math.prod(out)):
        rows = array_matmul(wmat, _columns(windows, b, e, g))  # (g, o/g, m * P)
        y[b:e] = rows.reshape((o, e - b) + out).swapaxes(0, 1)
    return y


def conv_input_grad(grad, weight, x_shape, params):
    """The gradient of ``conv_forward`` with respect to its input: a transposed conv."""
    xp = xp_of(grad)
    n, c = x_shape[:2]
    o = weight.shape[0]
    kernel = tuple(weight.shape[2:])
    g = params.groups
    out = tuple(grad.shape[2:])
    sizes = tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], params.padding))
    wmat_t = weight.reshape(g, o // g, -1).swapaxes(-1, -2)
    gx = xp.zeros((n, c) + sizes, grad.dtype)
    offsets = list(itertools.product(*(range(kk) for kk in kernel)))
    for b, e in _chunks(n, c * math.prod(kernel) * math.prod(out)):
        gcols = array_matmul(wmat_t, _grad_rows(grad, b, e, g)).reshape(
            (c,) + kernel + (e - b,) + out
        )
        for offset in offsets:
            region = tuple(
                slice(i * d, i * d + s * (m - 1) + 1, s)
                for i, d, s, m in zip(offset, params.dilation, params.stride, out)
            )
            gx[(slice(b, e), slice(None)) + region] += gcols[(slice(None),) + offset].swapaxes(0, 1)
    crop = tuple(slice(lo, lo + s) for s, (lo, _) in zip(x_shape[2:], params.padding))
    return gx[(slice(None), slice(None)) + crop]


def conv_weight_grad(x, grad, w_shape, params):
    """The gradient of ``conv_forward`` with respect to its weight."""
    xp = xp_of(x)
    n, c = x.shape[:2]
    o, cg = w_shape[:2]
    kernel = w_shape[2:]
    g = params.groups
    out = grad.shape[2:]
    windows = _windows(_padded(x, params), kernel, out, params)
    gw = xp.zeros((g, o // g, cg * math.prod(kernel)), grad.dtype)
    for b, e in _chunks(n, c * math.prod(kernel) * math.prod(out)):
        cols = _columns(windows, b, e, g)
        gw += array_matmul(_grad_rows(grad, b, e, g), cols.swapaxes(-1, -2))
    return gw.reshape(w_shape)


# -- the three ops ----------------------------------------------------------------------------


def _bias_grad(grad):
    dims = (0,) + tuple(range(2, grad.ndim))
    if isinstance(grad, Tensor):
        return grad.sum(dims)
    return grad.sum(axis=dims)


def _conv_grads(ctx, grad, x, weight, params):
    """(input, weight) gradients of a convolution of ``x`` and ``weight``."""
    need_x, need_w = ctx.needs_input_grad[:2]
    if isinstance(grad, Tensor):  # create_graph: record the ops themselves
        gx = ConvNdInputGrad.apply(grad, weight, x_shape=tuple(x.shape), params=params)
        gw = ConvNdWeightGrad.apply(x, grad, w_shape=tuple(weight.shape), params=params)
        return (gx if need_x else None), (gw if need_w else None)
    gx = conv_input_grad(grad, weight, x.shape, params) if need_x else None
    gw = conv_weight_grad(x, grad, weight.shape, params) if need_w else None
    return gx, gw


class ConvNd(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, weight, bias, params):
        ctx.save_for_backward(x, weight)
        ctx.params = params
        y = conv_forward(x, weight, params)
        if bias is not None:
            y += bias.reshape((-1,) + (1,) * (y.ndim - 2))
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx, gw = _conv_grads(ctx, grad, x, weight, ctx.params)
        gb = _bias_grad(grad) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


class ConvNdInputGrad(Function):
    """``conv_input_grad(grad, weight)`` as an op: the transposed convolution."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, grad, weight, x_shape, params):
        ctx.save_for_backward(grad, weight)
        ctx.params = params
        return conv_input_grad(grad, weight, x_shape, params)

    @staticmethod
    def backward(ctx, ggx):
        gy, weight = ctx.saved_tensors
        params = ctx.params
        if isinstance(ggx, Tensor):
            d_gy = ConvNd.apply(ggx, weight, None, params=params)
            d_w = ConvNdWeightGrad.apply(ggx, gy, w_shape=tuple(weight.shape), params=params)
        else:
            d_gy = conv_forward(ggx, weight, params)
            d_w = conv_weight_grad(ggx, gy, weight.shape, params)
        return (
            d_gy if ctx.needs_input_grad[0] else None,
            d_w if ctx.needs_input_grad[1] else None,
        )


class ConvNdWeightGrad(Function):
    """``conv_weight_grad(x, grad)`` as an op."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, grad, w_shape, params):
        ctx.save_for_backward(x, grad)
        ctx.params = params
        return conv_weight_grad(x, grad, w_shape, params)

    @staticmethod
    def backward(ctx, ggw):
        x, gy = ctx.saved_tensors
        params = ctx.params
        if isinstance(ggw, Tensor):
            d_x = ConvNdInputGrad.apply(gy, ggw, x_shape=tuple(x.shape), params=params)
            d_gy = ConvNd.apply(x, ggw, None, params=params)
        else:
            d_x = conv_input_grad(gy, ggw, x.shape, params)
            d_gy = conv_forward(x, ggw, params)
        return (
            d_x if ctx.needs_input_grad[0] else None,
            d_gy if ctx.needs_input_grad[1] else None,
        )


def transposed_conv(x, weight, bias, out_sizes, params):
    """The transposed convolution of batched Tensors, to ``out_sizes``."""
    x_shape = (x.shape[0], weight.shape[1] * params.groups) + tuple(out_sizes)
    y = ConvNdInputGrad.apply(x, weight, x_shape=x_shape, params=params)
    if bias is not None:
        y = y + bias.reshape((-1,) + (1,) * len(out_sizes))
    return y
