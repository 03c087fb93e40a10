"""Normalization: batch, layer, group and RMS norm as fused ops with analytic backward,
and ``normalize``.

Each forward makes the statistics in one pass and the output in one more; backward
folds the per-channel (or per-row) terms into coefficients so the input gradient is a
couple of elementwise passes: ``gx = invstd * (g - mean(g) - xhat * mean(g * xhat))``
with ``g = grad * weight``.

Under create_graph (double backward) each backward takes a second path written with
Tensor ops from the input (layer and group norm rebuild it, less its mean, from what
they saved), so the gradient is itself differentiable; the first-order path is unchanged.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function
from ..dtypes import finfo_eps
from ..parallel import parallel_for
from ..tensor import Tensor
from ._util import check_same_device, xp_of
from .declare import declared
from .graph_backward import reconnect

# -- batch norm ---------------------------------------------------------------------------


def _channel_shape(x):
    """Shape that broadcasts a per-channel (C,) vector against (N, C, *)."""
    return (x.shape[1],) + (1,) * (x.ndim - 2)


class BatchNorm(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        xp = xp_of(x)
        axes = (0,) + tuple(range(2, x.ndim))
        cshape = _channel_shape(x)
        if training:
            mean = x.mean(axis=axes)
            xmu = x - mean.reshape(cshape)
            var = (xmu * xmu).mean(axis=axes)
            if running_mean is not None:
                count = x.size // x.shape[1]
                running_mean *= 1 - momentum
                running_mean += momentum * mean.astype(running_mean.dtype, copy=False)
                running_var *= 1 - momentum
                running_var += (momentum * count / max(count - 1, 1)) * var.astype(
                    running_var.dtype, copy=False
                )
        else:
            mean, var = (
                running_mean.astype(x.dtype, copy=False),
                running_var.astype(x.dtype, copy=False),
            )
            xmu = None
        invstd = 1.0 / xp.sqrt(var + eps)
        scale = invstd if weight is None else invstd * weight
        if xmu is not None:
            y = xmu * scale.reshape(cshape)
        else:
            y = x * scale.reshape(cshape) - (mean * scale).reshape(cshape)
        if bias is not None:
            y += bias.reshape(cshape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.training, ctx.eps = training, eps
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd = ctx.saved_tensors
        if isinstance(grad, Tensor):
            return _batch_norm_graph(ctx, grad, x, weight, mean, invstd)
        axes = (0,) + tuple(range(2, x.ndim))
        cshape = _channel_shape(x)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        sum_gy = grad.sum(axis=axes) if (need_b or (need_x and ctx.training)) else None
        xmu = sum_gy_xmu = None
        if need_w or (need_x and ctx.training):
            xmu = x - mean.reshape(cshape)  # centred first: no cancellation for large means
            sum_gy_xmu = (grad * xmu).sum(axis=axes)
        w = 1.0 if weight is None else weight
        gx = None
        if need_x:
            a = w * invstd
            if ctx.training:
                m = x.size // x.shape[1]
                b = -a * invstd * invstd * sum_gy_xmu / m
                gx = grad * a.reshape(cshape) + xmu * b.reshape(cshape)
                gx -= (a * sum_gy / m).reshape(cshape)
            else:
                gx = grad * a.reshape(cshape)
        gw = sum_gy_xmu * invstd if need_w else None
        return gx, gw, sum_gy if need_b else None


def _normalized_graph(x, axes, eps, rms=False):
    """``(xhat, invstd)`` of ``x`` over ``axes`` as Tensor ops (kept dims)."""
    xmu = x if rms else x - x.mean(dim=axes, keepdim=True)
    invstd = ((xmu * xmu).mean(dim=axes, keepdim=True) + eps).rsqrt()
    return xmu * invstd, invstd


def _centred_grad(g, xhat, invstd, axes, rms=False):
    """``invstd * (g - mean(g) - xhat * mean(g * xhat))`` over ``axes`` (Tensor ops)."""
    inner = g - xhat * (g * xhat).mean(dim=axes, keepdim=True)
    if not rms:
        inner = inner - g.mean(dim=axes, keepdim=True)
    return inner * invstd


def _batch_norm_graph(ctx, grad, x, weight, mean, invstd):
    """BatchNorm's backward as Tensor ops: in training the statistics are recomputed
    from ``x`` so that they carry their own dependence on it."""
    axes = (0,) + tuple(range(2, x.ndim))
    cshape = _channel_shape(x)
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    if ctx.training:
        xhat, invstd = _normalized_graph(x, axes, ctx.eps)
    else:
        invstd = invstd.reshape(cshape)
        xhat = (x - mean.reshape(cshape)) * invstd
    gx = gw = gb = None
    if need_x:
        g = grad if weight is None else grad * weight.reshape(cshape)
        gx = _centred_grad(g, xhat, invstd, axes) if ctx.training else g * invstd
    if need_w:
        gw = (grad * xhat).sum(dim=axes)
    if need_b:
        gb = grad.sum(dim=axes)
    return gx, gw, gb


@declared(BatchNorm, method=False)
def batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
) -> Tensor:
    r"""Batch normalization over (N, C, *): per channel, with batch statistics when
    ``training`` (updating ``running_mean``/``running_var`` in place, the variance
    unbiased) and the running statistics otherwise.

    Example::

        >>> rm, rv = ember.zeros(3), ember.ones(3)
        >>> F.batch_norm(ember.randn(4, 3), rm, rv, training=True).shape
        ember.Size([4, 3])
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2D input (got {input.ndim}D input)")
    c = input.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    if (running_mean is None) != (running_var is None):
        raise RuntimeError(
            "batch_norm: running_mean and running_var must both be given or both None"
        )
    if not training and running_mean is None:
        raise RuntimeError(
            "batch_norm: running_mean and running_var are required when not training"
        )
    if training and input.numel() // c <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {input.shape}"
        )
    check_same_device("batch_norm", input, running_mean, running_var, weight, bias)
    if training and running_mean is not None:
        running_mean._bump_version()
        running_var._bump_version()
    return BatchNorm.apply(
        input,
        weight,
        bias,
        running_mean=None if running_mean is None else running_mean._array,
        running_var=None if running_var is None else running_var._array,
        training=bool(training),
        momentum=momentum,
        eps=eps,
    )


# -- layer norm / RMS norm ---------------------------------------------------------------------


class LayerNorm(Function):
    autocast, differentiable_backward = "cuda:fp32", True

    @staticmethod
    def forward(ctx, x, weight, bias, ndim, eps, rms):
        xp = xp_of(x)
        axes = tuple(range(x.ndim - ndim, x.ndim))
        ctx.meta = (axes, rms, eps)
        if xp is not np and kernels.norm_fits(x, ndim, weight, bias):
            y, xhat, invstd = kernels.norm_forward(x, weight, bias, ndim, eps, rms)
            ctx.save_for_backward(xhat, weight, invstd)
            return y
        if type(x) is np.ndarray and x.dtype in _ROW_DTYPES and x.size:
            y, xhat, invstd = _norm_rows_forward(x, weight, bias, ndim, eps, rms)
            ctx.save_for_backward(xhat, weight, invstd)
            return y
        if rms:
            xmu = x
            var = (x * x).mean(axis=axes, keepdims=True)
        else:
            xmu = x - x.mean(axis=axes, keepdims=True)
            var = (xmu * xmu).mean(axis=axes, keepdims=True)
        invstd = 1.0 / xp.sqrt(var + eps)
        xhat = xmu * invstd
        y = xhat * weight if weight is not None else xhat.copy()
        if bias is not None:
            y += bias
        ctx.save_for_backward(xhat, weight, invstd)
        return y.astype(x.dtype, copy=False)  # NumPy computes bfloat16 in float32

    @staticmethod
    def backward(ctx, grad):
        xhat, weight, invstd = ctx.saved_tensors
        axes, rms, eps = ctx.meta
        if isinstance(grad, Tensor):
            # x less its mean (all of x for RMS norm): the norm cannot tell them apart
            x = reconnect(ctx, 0, (xhat._array / invstd._array).astype(xhat._array.dtype))
            return _layer_norm_graph(ctx, grad, x, weight, axes, eps, rms)
        if type(grad) is np.ndarray and grad.dtype in _ROW_DTYPES and grad.size:
            return _norm_rows_backward(grad, xhat, weight, invstd, len(axes), rms, ctx)
        lead = tuple(range(grad.ndim - len(axes)))
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = None
        if need_x and xp_of(grad) is not np and kernels.norm_fits(grad, len(axes), weight):
            gx = kernels.norm_input_grad(grad, xhat, weight, invstd, rms)
        elif need_x:
            g = grad * weight if weight is not None else grad
            proj = (g * xhat).mean(axis=axes, keepdims=True)
            inner = g - xhat * proj
            if not rms:
                inner -= g.mean(axis=axes, keepdims=True)
            gx = inner * invstd
        gw = (grad * xhat).sum(axis=lead) if need_w else None
        gb = grad.sum(axis=lead) if need_b else None
        return gx, gw, gb


def _layer_norm_graph(ctx, grad, x, weight, axes, eps, rms):
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    lead = tuple(range(grad.ndim - len(axes)))
    xhat, invstd = _normalized_graph(x, axes, eps, rms)
    gx = gw = gb = None
    if need_x:
        gx = _centred_grad(grad if weight is None else grad * weight, xhat, invstd, axes, rms)
    if need_w:
        gw = (grad * xhat).sum(dim=lead) if lead else grad * xhat
    if need_b:
        gb = grad.sum(dim=lead) if lead else grad
    return gx, gw, gb


# NumPy layer/RMS norm as rows of a 2-D view, in row chunks on the CPU threads: the row
# sums are np.vecdot, several times faster than NumPy reductions over a short last axis,
# and unlike a matrix-vector product they give each row the same bits in any chunk.
_ROW_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _norm_rows_forward(x, weight, bias, ndim, eps, rms):
    n = int(np.prod(x.shape[x.ndim - ndim :]))
    x2 = np.ascontiguousarray(x).reshape(-1, n)
    w = weight.reshape(n) if weight is not None else None
    b = bias.reshape(n) if bias is not None else None
    mean_of = np.full(n, 1 / n, x.dtype)
    xhat, y = np.empty_like(x2), np.empty_like(x2)
    invstd = np.empty(len(x2), x.dtype)

    def rows(start, stop):
        xs, xh, ys = x2[start:stop], xhat[start:stop], y[start:stop]
        if rms:
            inv = 1.0 / np.sqrt(np.vecdot(xs, xs) / n + eps)
            np.multiply(xs, inv[:, None], out=xh)
        else:
            np.subtract(xs, np.vecdot(xs, mean_of)[:, None], out=xh)
            inv = 1.0 / np.sqrt(np.vecdot(xh, xh) / n + eps)
            xh *= inv[:, None]
        invstd[start:stop] = inv
        if w is not None:
            np.multiply(xh, w, out=ys)
        else:
            ys[...] = xh
        if b is not None:
            ys += b

    parallel_for(rows, *x2.shape)
    stats_shape = x.shape[: x.ndim - ndim] + (1,) * ndim
    return y.reshape(x.shape), xhat.reshape(x.shape), invstd.reshape(stats_shape)


def _norm_rows_backward(grad, xhat, weight, invstd, ndim, rms, ctx):
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    shape = grad.shape[grad.ndim - ndim :]
    n = int(np.prod(shape))
    g2, xh = np.ascontiguousarray(grad).reshape(-1, n), xhat.reshape(-1, n)
    inv = invstd.reshape(-1, 1)
    w = weight.reshape(n) if weight is not None else np.ones(n, grad.dtype)
    gx = np.empty(g2.shape, np.result_type(g2, w)) if need_x else None
    sums = {}  # per chunk: its rows' sums for the weight and bias gradients

    def rows(start, stop):
        gs, xs = g2[start:stop], xh[start:stop]
        t = gs * xs
        ones = np.ones(stop - start, grad.dtype)
        sums[start] = (ones @ t if need_w else None, ones @ gs if need_b else None)
        if need_x:
            proj = np.vecdot(t, w) / n
            gxs = gx[start:stop]
            np.multiply(gs, w, out=gxs)
            np.multiply(xs, proj[:, None], out=t)
            gxs -= t
            if not rms:
                gxs -= (np.vecdot(gs, w) / n)[:, None]
            gxs *= inv[start:stop]

    parallel_for(rows, *g2.shape)
    parts = [sums[start] for start in sorted(sums)]
    gw = _add_up([p[0] for p in parts]).reshape(shape) if need_w else None
    gb = _add_up([p[1] for p in parts]).reshape(shape) if need_b else None
    return None if gx is None else gx.reshape(grad.shape), gw, gb


def _add_up(partials):
    total = partials[0]
    for p in partials[1:]:
        total = total + p
    return total


def _normalized(op, input, normalized_shape, weight, bias):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if (
        not shape
        or tuple(input.shape[input.ndim - len(shape) :]) != shape
        or input.ndim < len(shape)
    ):
        raise RuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape "
            f"[*, {', '.join(map(str, shape))}], but got input of size{list(input.shape)}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise RuntimeError(
                f"{op}: expected {name} of shape {list(shape)}, but got {list(t.shape)}"
            )
    check_same_device(op, input, weight, bias)
    return shape


@declared(LayerNorm, method=False)
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    r"""Layer normalization over the last ``len(normalized_shape)`` dims.

    Example::

        >>> F.layer_norm(ember.randn(2, 5, 8), (8,)).shape
        ember.Size([2, 5, 8])
    """
    shape = _normalized("layer_norm", input, normalized_shape, weight, bias)
    return LayerNorm.apply(input, weight, bias, ndim=len(shape), eps=eps, rms=False)


@declared(LayerNorm, method=False)
def rms_norm(input, normalized_shape, weight=None, eps=None) -> Tensor:
    r"""Root-mean-square normalization over the last ``len(normalized_shape)`` dims;
    ``eps`` defaults to the machine epsilon of the input's dtype.

    Example::

        >>> F.rms_norm(ember.randn(2, 8), [8]).shape
        ember.Size([2, 8])
    """
    shape = _normalized("rms_norm", input, normalized_shape, weight, None)
    if eps is None:
        eps = finfo_eps(input._array.dtype)
    return LayerNorm.apply(input, weight, None, ndim=len(shape), eps=eps, rms=True)


# -- group norm ----------------------------------------------------------------------------------


class GroupNorm(Function):
    autocast, differentiable_backward = "cuda:fp32", True

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps):
        xp = xp_of(x)
        n, c = x.shape[:2]
        xg = x.reshape(n, groups, -1)
        xmu = xg - xg.mean(axis=2, keepdims=True)
        invstd = 1.0 / xp.sqrt((xmu * xmu).mean(axis=2, keepdims=True) + eps)
        xhat = (xmu * invstd).reshape(x.shape)
        cshape = _channel_shape(x)
        y = xhat * weight.reshape(cshape) if weight is not None else xhat.copy()
        if bias is not None:
            y += bias.reshape(cshape)
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.groups, ctx.eps = groups, eps
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        xhat, weight, invstd = ctx.saved_tensors
        if isinstance(grad, Tensor):
            xhat, invstd = xhat._array, invstd._array
            centred = xhat.reshape(invstd.shape[:2] + (-1,)) / invstd  # x less its group means
            x = reconnect(ctx, 0, centred.reshape(xhat.shape).astype(xhat.dtype))
            return _group_norm_graph(ctx, grad, x, weight)
        n, c = grad.shape[:2]
        axes = (0,) + tuple(range(2, grad.ndim))
        gx = None
        if ctx.needs_input_grad[0]:
            g = grad * weight.reshape(_channel_shape(grad)) if weight is not None else grad
            g = g.reshape(n, ctx.groups, -1)
            xh = xhat.reshape(n, ctx.groups, -1)
            proj = (g * xh).mean(axis=2, keepdims=True)
            gx = ((g - g.mean(axis=2, keepdims=True) - xh * proj) * invstd).reshape(grad.shape)
        gw = (grad * xhat).sum(axis=axes) if ctx.needs_input_grad[1] else None
        gb = grad.sum(axis=axes) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


def _group_norm_graph(ctx, grad, x, weight):
    n = x.shape[0]
    axes = (0,) + tuple(range(2, x.ndim))
    cshape = _channel_shape(x)
    xhat, invstd = _normalized_graph(x.reshape(n, ctx.groups, -1), (2,), ctx.eps)
    xhat_full = xhat.reshape(x.shape)
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:
        g = grad if weight is None else grad * weight.reshape(cshape)
        gx = _centred_grad(g.reshape(n, ctx.groups, -1), xhat, invstd, (2,)).reshape(x.shape)
    if ctx.needs_input_grad[1]:
        gw = (grad * xhat_full).sum(dim=axes)
    if ctx.needs_input_grad[2]:
        gb = grad.sum(dim=axes)
    return gx, gw, gb


@declared(GroupNorm, method=False)
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5) -> Tensor:
    r"""Group normalization: channels of (N, C, *) split into ``num_groups`` groups,
    each normalized over its channels and positions, then a per-channel affine.

    Example::

        >>> F.group_norm(ember.randn(2, 6, 4, 4), 3).shape
        ember.Size([2, 6, 4, 4])
    """
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise RuntimeError(
            f"Expected number of channels in input to be divisible by num_groups, but got "
            f"input of shape {list(input.shape)} and num_groups={num_groups}"
        )
    c = input.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {list(t.shape)} and input of shape "
                f"{list(input.shape)}"
            )
    check_same_device("group_norm", input, weight, bias)
    return GroupNorm.apply(input, weight, bias, groups=num_groups, eps=eps)


@declared(None, method=False)
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None) -> Tensor:
    r"""``input / max(||input||_p, eps)`` along ``dim``.

    Example::

        >>> F.normalize(ember.tensor([[3.0, 4.0]], dtype=ember.float64)).tolist()
        [[0.6, 0.8]]
    """
    if out is not None:
        raise TypeError("normalize: the out= argument is not supported")
    denom = input.norm(p, dim, keepdim=True)
    return input / denom.clamp(min=eps).expand_as(input)
