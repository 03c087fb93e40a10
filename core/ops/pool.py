"""Pooling: max and average (1-d, 2-d); adaptive pooling is in ``pool_adaptive.py``, 3-d
pooling and unpooling in ``pool3d.py``.

A pool is a loop over the kernel's offsets, each one a strided slice of the (padded)
input the size of the output: no window copies and no loop over pixels. Max pooling
records, per output, which offset won (the first maximum, as PyTorch), and backward
routes the gradient there. 1-d pools run as 2-d ones with a height of 1.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..parallel import parallel_for
from ..tensor import Tensor
from ._util import xp_of
from .declare import declared
from .im2col import _as_4d
from .plane_index import PlaneScatter

# -- geometry -------------------------------------------------------------------------------


def _pool_out(size, kernel, stride, pad, dilation, ceil_mode):
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window would start in the right padding
    return out


class _Window:
    """Output size and the padded buffer a pool reads, for one spatial dim each."""

    def __init__(self, hw, kernel, stride, padding, dilation, ceil_mode):
        self.hw, self.kernel, self.stride = hw, kernel, stride
        self.padding, self.dilation = padding, dilation
        self.out = tuple(
            _pool_out(*args, ceil_mode) for args in zip(hw, kernel, stride, padding, dilation)
        )
        # rows the windows reach, and the buffer that holds them and the whole input
        self.need = tuple(
            (o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(self.out, stride, dilation, kernel)
        )
        self.buf = tuple(max(n, size + p) for n, size, p in zip(self.need, hw, padding))

    def padded(self, x, fill):
        """``x`` placed in a buffer of ``fill``; ``x`` itself when nothing is added."""
        (ph, pw), (h, w) = self.padding, self.hw
        if ph == pw == 0 and self.need[0] <= h and self.need[1] <= w:
            return x
        out = xp_of(x).full(x.shape[:2] + self.buf, fill, x.dtype)
        out[:, :, ph : ph + h, pw : pw + w] = x
        return out

    def slices(self):
        """(offset number, index of the strided slice that offset reads), in order."""
        (kh, kw), (sh, sw), (dh, dw), (ho, wo) = self.kernel, self.stride, self.dilation, self.out
        for i in range(kh):
            for j in range(kw):
                r, c = i * dh, j * dw
                yield (
                    i * kw + j,
                    (
                        slice(None),
                        slice(None),
                        slice(r, r + sh * (ho - 1) + 1, sh),
                        slice(c, c + sw * (wo - 1) + 1, sw),
                    ),
                )

    def views(self, x, fill):
        """(offset number, the strided view of ``x`` that offset reads), in order."""
        if self.tiles():
            tiled, kw = _tiled(x, self), self.kernel[1]
            return [(k, tiled[:, :, :, k // kw, :, k % kw]) for k in range(self.kernel[0] * kw)]
        src = self.padded(x, fill)
        return [(k, src[idx]) for k, idx in self.slices()]

    def tiles(self):
        """True when windows tile the input exactly: a reshape gives every offset."""
        return (
            self.kernel == self.stride
            and self.padding == (0, 0)
            and self.dilation == (1, 1)
            and all(o * k == n for o, k, n in zip(self.out, self.kernel, self.hw))
        )

    def crop(self, g):
        (ph, pw), (h, w) = self.padding, self.hw
        return g[:, :, ph : ph + h, pw : pw + w]


def _tiled(a, win):
    """(N, C, H, W) -> (N, C, Ho, kh, Wo, kw) view for tiling windows."""
    (ho, wo), (kh, kw) = win.out, win.kernel
    return a.reshape(a.shape[:2] + (ho, kh, wo, kw))


def _restore(y, x_shape, spatial):
    if len(x_shape) == spatial + 1:
        y = y[0]
    return y.reshape(y.shape[:-2] + (y.shape[-1],)) if spatial == 1 else y


# -- max pooling ------------------------------------------------------------------------------


class MaxPool(Function):
    differentiable_backward = True  # through plane_index's ops

    @staticmethod
    def forward(ctx, x, win, spatial, return_indices):
        x_shape = x.shape
        x = _as_4d(x, spatial)
        xp = xp_of(x)
        floating = x.dtype.kind not in "iu"  # bfloat16 (ml_dtypes) is kind "V"
        fill = -np.inf if floating else np.iinfo(x.dtype).min
        track = return_indices or isinstance(ctx, Function)  # else nobody needs the argmax
        n_off = win.kernel[0] * win.kernel[1]
        dtype = np.int8 if n_off < 128 else np.int16 if n_off < 32768 else np.int64
        planes = _planes(x)
        out = xp.empty(planes.shape[:2] + win.out, x.dtype)
        arg = xp.empty(out.shape, dtype) if track else None

        def rows(a, e):
            _max_pool_rows(xp, planes[a:e], win, fill, out[a:e], None if arg is None else arg[a:e])

        _for_rows(rows, planes, xp)
        out = out.reshape(x.shape[:2] + win.out)
        arg = None if arg is None else arg.reshape(out.shape)
        if track and floating and xp.isnan(out).any():
            arg = _nan_argmax(xp, win.views(x, fill), arg)
        ctx.save_for_backward(arg)
        ctx.meta = (x_shape, x.shape, win, spatial)
        y = _restore(out, x_shape, spatial)
        if not return_indices:
            return y
        indices = _restore(_flat_indices(xp, arg, win), x_shape, spatial)
        ctx.mark_non_differentiable(indices)
        return y, indices

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        (arg,) = ctx.saved_tensors
        x_shape, x4_shape, win, spatial = ctx.meta
        if isinstance(grad, Tensor):  # create_graph: a scatter to the argmax positions
            indices = _flat_indices(xp_of(arg._array), arg._array, win)
            g4 = grad.reshape(arg.shape)
            return PlaneScatter.apply(g4, indices, plane_shape=win.hw).reshape(x_shape)
        xp = xp_of(grad)
        gy = xp.ascontiguousarray(grad.reshape(arg.shape))
        n_off = win.kernel[0] * win.kernel[1]
        tiles = win.tiles()
        gx = (
            xp.empty(x4_shape, grad.dtype)
            if tiles
            else xp.zeros(x4_shape[:2] + win.buf, grad.dtype)
        )
        gx_rows, gy_rows, arg_rows = _planes(gx), _planes(gy), _planes(arg)

        def rows(a, e):
            gx, gy, arg = gx_rows[a:e], gy_rows[a:e], arg_rows[a:e]
            if tiles:
                tiled = _tiled(gx, win)
                mask = xp.empty(arg.shape, bool)
                for k in range(n_off):
                    tile = tiled[:, :, :, k // win.kernel[1], :, k % win.kernel[1]]
                    xp.multiply(gy, xp.equal(arg, k, out=mask), out=tile)
            else:
                for k, idx in win.slices():
                    gx[idx] += gy * (arg == k)

        _for_rows(rows, gx_rows, xp)
        return (gx if tiles else win.crop(gx)).reshape(x_shape)


def _planes(a):
    """(N, C, H, W) as (N*C, 1, H, W) when that is a view, so that work splits over
    planes; else as it is (work splits over images)."""
    if a.flags.c_contiguous:
        return a.reshape((-1, 1) + a.shape[2:])
    return a


def _for_rows(body, planes, xp):
    """``body(a, b)`` over the planes' rows, on ember's CPU threads for NumPy arrays."""
    rows = planes.shape[0]
    if xp is np:
        parallel_for(body, rows, planes[0].size if rows else 1)
    else:
        body(0, rows)


def _max_pool_rows(xp, x, win, fill, out, arg):
    """Max pool of ``x`` into ``out`` and, unless None, the winning offsets into ``arg``."""
    offsets = win.views(x, fill)
    out[...] = offsets[0][1]
    if arg is not None:
        arg[...] = 0
        mask = xp.empty(out.shape, bool)
        won = xp.empty(out.shape, arg.dtype)
    for k, sl in offsets[1:]:
        if arg is not None:
            # arithmetic, not a masked copy: random masks make copyto branch-bound.
            # Offsets come in increasing order, so a new winner is the largest so far.
            xp.greater(sl, out, out=mask)
            xp.maximum(arg, xp.multiply(mask, arg.dtype.type(k), out=won), out=arg)
        xp.maximum(out, sl, out=out)


def _nan_argmax(xp, offsets, arg):
    """The winning offsets when NaNs are present: PyTorch lets every NaN win."""
    best = offsets[0][1].copy()
    arg[...] = 0
    for k, sl in offsets[1:]:
        wins = (sl > best) | xp.isnan(sl)
        arg[wins] = k
        best = xp.where(wins, sl, best)
    return arg


def _flat_indices(xp, arg, win):
    """Offsets that won -> flat indices into each input plane (PyTorch's format)."""
    (_, kw), (sh, sw), (ph, pw), (dh, dw) = win.kernel, win.stride, win.padding, win.dilation
    ho, wo = win.out
    arg = arg.astype(np.int64)
    rows = xp.arange(ho).reshape(ho, 1) * sh - ph + (arg // kw) * dh
    cols = xp.arange(wo) * sw - pw + (arg % kw) * dw
    return (rows * win.hw[1] + cols).astype(np.int64)


# -- average pooling ----------------------------------------------------------------------------


class AvgPool(Function):
    differentiable_backward = True  # through AvgPoolGrad

    @staticmethod
    def forward(ctx, x, win, spatial, divisor):
        x_shape = x.shape
        x = _as_4d(x, spatial)
        xp = xp_of(x)
        planes = _planes(x)
        out = xp.empty(planes.shape[:2] + win.out, x.dtype)
        scale = divisor if isinstance(divisor, int | float) else xp.asarray(divisor, out.dtype)

        def rows(a, e):
            offsets = win.views(planes[a:e], 0)
            total = out[a:e]
            total[...] = offsets[0][1]
            for _, sl in offsets[1:]:
                total += sl
            total /= scale

        _for_rows(rows, planes, xp)
        out = out.reshape(x.shape[:2] + win.out)
        ctx.meta = (x_shape, x.shape, win, divisor)
        ctx.spatial = spatial
        return _restore(out, x_shape, spatial)

    @staticmethod
    def backward(ctx, grad):
        x_shape, x4_shape, win, divisor = ctx.meta
        if isinstance(grad, Tensor):
            return AvgPoolGrad.apply(grad, meta=ctx.meta, spatial=ctx.spatial)
        return _avg_pool_grad(grad, x_shape, x4_shape, win, divisor)


class AvgPoolGrad(Function):
    """Average pooling's (linear) backward as an op; its own backward is the pooling."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, grad, meta, spatial):
        ctx.meta, ctx.spatial = meta, spatial
        return _avg_pool_grad(grad, *meta)

    @staticmethod
    def backward(ctx, ggx):
        _, _, win, divisor = ctx.meta
        if isinstance(ggx, Tensor):
            return AvgPool.apply(ggx, win=win, spatial=ctx.spatial, divisor=divisor)
        return AvgPool.forward(_Scratch(), ggx, win, ctx.spatial, divisor)


class _Scratch:
    """A throwaway ctx for calling a forward directly."""


def _avg_pool_grad(grad, x_shape, x4_shape, win, divisor):
    xp = xp_of(grad)
    gy = xp.ascontiguousarray(grad.reshape(x4_shape[:2] + win.out))
    scale = divisor if isinstance(divisor, int | float) else xp.asarray(divisor, gy.dtype)
    tiles = win.tiles()
    gx = xp.empty(x4_shape, grad.dtype) if tiles else xp.zeros(x4_shape[:2] + win.buf, grad.dtype)
    gx_rows, gy_rows = _planes(gx), _planes(gy)

    def rows(a, e):
        gy = gy_rows[a:e] / scale
        if tiles:
            _tiled(gx_rows[a:e], win)[...] = gy[:, :, :, None, :, None]
        else:
            gx = gx_rows[a:e]
            for _, idx in win.slices():
                gx[idx] += gy

    _for_rows(rows, gx_rows, xp)
    return (gx if tiles else win.crop(gx)).reshape(x_shape)


def window_counts(sizes, kernel, stride, padding, out, count_include_pad) -> list:
    """Per axis, how many elements each pooling window covers, as PyTorch counts them:
    windows clipped to the padded input; without ``count_include_pad`` to the input itself."""
    counts = []
    for size, k, s, p, o in zip(sizes, kernel, stride, padding, out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return counts


def _avg_divisor(win, count_include_pad, divisor_override):
    """Scalar or (Ho, Wo) divisor, as PyTorch computes it (see ``window_counts``)."""
    if divisor_override:
        return divisor_override
    rows, cols = window_counts(
        win.hw, win.kernel, win.stride, win.padding, win.out, count_include_pad
    )
    div = rows[:, None] * cols[None, :]
    if np.all(div == div.flat[0]):
        return int(div.flat[0])
    return div.astype(np.float64)


# -- functional wrappers ---------------------------------------------------------------------------


def _tuple(value, n, name):
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    if len(value) == 1:
        value = value * n
    if len(value) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value}")
    return value


def _window(op, input, spatial, kernel_size, stride, padding, dilation, ceil_mode):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.ndim not in (spatial + 1, spatial + 2):
        raise RuntimeError(
            f"{op}: Expected {spatial + 1}D or {spatial + 2}D (batch mode) tensor with optional 0 "
            f"dim batch size for input, but got: {list(input.shape)}"
        )
    kernel = _tuple(kernel_size, spatial, "kernel_size")
    stride = (
        kernel
        if stride is None or stride == () or stride == []
        else _tuple(stride, spatial, "stride")
    )
    padding = _tuple(padding, spatial, "padding")
    dilation = _tuple(dilation, spatial, "dilation")
    if any(k <= 0 for k in kernel) or any(s <= 0 for s in stride) or any(d <= 0 for d in dilation):
        raise RuntimeError(
            f"{op}: kernel_size, stride and dilation must be greater than zero, but got "
            f"kernel_size={kernel}, stride={stride}, dilation={dilation}"
        )
    if any(p < 0 or p > k // 2 for p, k in zip(padding, kernel)):
        raise RuntimeError(
            f"{op}: pad should be at most half of effective kernel size, but got pad={padding}, "
            f"kernel_size={kernel}"
        )
    hw = tuple(input.shape[-spatial:])
    if spatial == 1:
        hw, kernel, stride, padding, dilation = (
            (1, *hw),
            (1, *kernel),
            (1, *stride),
            (0, *padding),
            (1, *dilation),
        )
    win = _Window(hw, kernel, stride, padding, dilation, ceil_mode)
    if any(o <= 0 for o in win.out):
        raise RuntimeError(
            f"{op}: Given input size: {list(input.shape)}. Calculated output size: "
            f"{list(input.shape[:-spatial]) + list(win.out[-spatial:])}. Output size is too small"
        )
    return win


@declared(MaxPool, method=False)
def max_pool1d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    r"""1-d max pooling over (N, C, L) or (C, L); ``stride`` defaults to ``kernel_size``."""
    win = _window("max_pool1d", input, 1, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool.apply(input, win=win, spatial=1, return_indices=return_indices)


@declared(MaxPool, method=False)
def max_pool2d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    r"""2-d max pooling over (N, C, H, W) or (C, H, W).

    Args:
        kernel_size, stride (default: kernel_size), padding (implicit -inf), dilation: int
        or pair. ceil_mode: round the output size up. return_indices: also return the
        flat index of each maximum in its input plane (for ``max_unpool2d``).

    Example::

        >>> F.max_pool2d(ember.randn(1, 3, 8, 8), 2).shape
        ember.Size([1, 3, 4, 4])
    """
    win = _window("max_pool2d", input, 2, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool.apply(input, win=win, spatial=2, return_indices=return_indices)


def _avg(
    op, spatial, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    win = _window(op, input, spatial, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError(f"{op}: divisor must be not zero")
    if not input.is_floating_point():
        raise RuntimeError(f"\"{op}\" not implemented for '{input.dtype}'")
    divisor = _avg_divisor(win, count_include_pad, divisor_override)
    return AvgPool.apply(input, win=win, spatial=spatial, divisor=divisor)


@declared(AvgPool, method=False)
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    r"""1-d average pooling over (N, C, L) or (C, L); ``stride`` defaults to ``kernel_size``."""
    return _avg(
        "avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None
    )


@declared(AvgPool, method=False)
def avg_pool2d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    r"""2-d average pooling over (N, C, H, W) or (C, H, W).

    Args:
        count_include_pad: count the zero padding in the divisor. divisor_override: use
        this divisor for every window instead.

    Example::

        >>> F.avg_pool2d(ember.randn(1, 3, 8, 8), 2).shape
        ember.Size([1, 3, 4, 4])
    """
    return _avg(
        "avg_pool2d",
        2,
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )
