"""3-d pooling (max, average, adaptive) and ``max_unpool1d/2d/3d``.

Every op here is built from ops that are differentiable to any order: max pooling
finds each window's argmax (no gradient) and gathers the input there (plane_index),
average pooling is a depthwise sum-convolution (conv_nd) divided by PyTorch's window
counts, adaptive average pooling a per-axis averaging map (interpolate), and unpooling
a scatter to the recorded positions.
"""

from __future__ import annotations

import math

import numpy as np

from .. import creation
from ..parallel import parallel_for
from ..tensor import Tensor
from ._util import xp_of
from .conv_nd import ConvNd, ConvParams
from .declare import declared
from .interpolate import AxisMaps, _adaptive_matrix
from .plane_index import PlaneGather, PlaneScatter
from .pool import _pool_out, _tuple, window_counts
from .pool_adaptive import _adaptive_index, _adaptive_size


def _batched(op, input, spatial):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.ndim not in (spatial + 1, spatial + 2):
        raise RuntimeError(
            f"{op}: Expected {spatial + 1}D or {spatial + 2}D (batch mode) tensor for input, "
            f"but got: {list(input.shape)}"
        )
    return input.ndim == spatial + 2


class _Geometry:
    """Kernel, stride, padding, dilation and output size per spatial dim."""

    def __init__(self, op, sizes, kernel_size, stride, padding, dilation, ceil_mode):
        n = len(sizes)
        self.sizes = tuple(sizes)
        self.kernel = _tuple(kernel_size, n, "kernel_size")
        self.stride = (
            self.kernel if stride is None or stride in ((), []) else _tuple(stride, n, "stride")
        )
        self.padding = _tuple(padding, n, "padding")
        self.dilation = _tuple(dilation, n, "dilation")
        if min(self.kernel + self.stride + self.dilation) <= 0:
            raise RuntimeError(
                f"{op}: kernel_size, stride and dilation must be greater than zero, but got "
                f"kernel_size={self.kernel}, stride={self.stride}, dilation={self.dilation}"
            )
        if any(p < 0 or p > k // 2 for p, k in zip(self.padding, self.kernel)):
            raise RuntimeError(
                f"{op}: pad should be at most half of effective kernel size, but got "
                f"pad={self.padding}, kernel_size={self.kernel}"
            )
        self.out = tuple(
            _pool_out(*args, ceil_mode)
            for args in zip(self.sizes, self.kernel, self.stride, self.padding, self.dilation)
        )
        if any(o <= 0 for o in self.out):
            raise RuntimeError(
                f"{op}: Given input size: {list(sizes)}. Calculated output size: "
                f"{list(self.out)}. Output size is too small"
            )


def _argmax_indices(x, geo):
    """Flat in-plane index of each window's (first) maximum; NaN wins, as in PyTorch."""
    xp = xp_of(x)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    need = [
        (o - 1) * s + d * (k - 1) + 1
        for o, s, d, k in zip(geo.out, geo.stride, geo.dilation, geo.kernel)
    ]
    buf = [max(nd, n + p) for nd, n, p in zip(need, geo.sizes, geo.padding)]
    padded = xp.full(x.shape[:2] + tuple(buf), fill, x.dtype)
    planes = padded.reshape((-1, 1) + padded.shape[2:])
    flat = xp.empty((planes.shape[0], 1) + geo.out, np.int64)
    offsets = np.unravel_index(np.arange(math.prod(geo.kernel)), geo.kernel)
    inner = (slice(None),) * 2 + tuple(slice(p, p + n) for p, n in zip(geo.padding, geo.sizes))

    x_planes = x.reshape(planes.shape[:2] + x.shape[2:])

    def rows(first, last):  # planes first:last, written by one thread
        part = planes[first:last]
        part[inner] = x_planes[first:last]
        st = part.strides
        shape = part.shape[:2] + geo.out + geo.kernel
        strides = (
            st[:2]
            + tuple(a * s for a, s in zip(st[2:], geo.stride))
            + tuple(a * d for a, d in zip(st[2:], geo.dilation))
        )
        windows = xp.lib.stride_tricks.as_strided(part, shape, strides)
        arg = windows.reshape(part.shape[:2] + geo.out + (-1,)).argmax(axis=-1)
        index = flat[first:last]
        index[...] = 0
        for axis, offset in enumerate(offsets):
            start = xp.arange(geo.out[axis]) * geo.stride[axis] - geo.padding[axis]
            start = start.reshape((-1,) + (1,) * (len(geo.out) - axis - 1))
            index *= geo.sizes[axis]
            index += start + xp.asarray(offset * geo.dilation[axis])[arg]

    if xp is np:
        parallel_for(rows, planes.shape[0], planes[0].size)
    else:
        rows(0, planes.shape[0])
    return flat.reshape(x.shape[:2] + geo.out)


@declared(None, method=False)
def max_pool3d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    r"""3-d max pooling over (N, C, D, H, W) or (C, D, H, W).

    Args:
        kernel_size, stride (default: kernel_size), padding (implicit -inf), dilation: int
        or triple. return_indices: also return each maximum's flat index in its plane.

    Example::

        >>> F.max_pool3d(ember.randn(1, 2, 4, 4, 4), 2).shape
        ember.Size([1, 2, 2, 2, 2])
    """
    batched = _batched("max_pool3d", input, 3)
    x = input if batched else input.unsqueeze(0)
    geo = _Geometry("max_pool3d", x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    indices = _argmax_indices(x._array, geo)
    out = PlaneGather.apply(x, indices)
    index_t = Tensor._make(indices, False, None, 0)
    if not batched:
        out, index_t = out.squeeze(0), index_t.squeeze(0)
    return (out, index_t) if return_indices else out


@declared(None, method=False)
def avg_pool3d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    r"""3-d average pooling over (N, C, D, H, W) or (C, D, H, W).

    Args:
        count_include_pad: count the zero padding in the divisor. divisor_override: use
        this divisor for every window instead.

    Example::

        >>> F.avg_pool3d(ember.randn(1, 2, 4, 4, 4), 2).shape
        ember.Size([1, 2, 2, 2, 2])
    """
    batched = _batched("avg_pool3d", input, 3)
    if not input.is_floating_point():
        raise RuntimeError(f"\"avg_pool3d\" not implemented for '{input.dtype}'")
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("avg_pool3d: divisor must be not zero")
    x = input if batched else input.unsqueeze(0)
    geo = _Geometry("avg_pool3d", x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    n, c = x.shape[:2]
    # the windows of ceil_mode may reach past the padding: pad the far side further
    pads = [
        (p, p + max(0, (o - 1) * s + k - size - 2 * p))
        for size, k, s, p, o in zip(geo.sizes, geo.kernel, geo.stride, geo.padding, geo.out)
    ]
    ones = creation.ones((1, 1) + geo.kernel, dtype=x.dtype, device=x.device)
    summed = ConvNd.apply(
        x.reshape((n * c, 1) + tuple(geo.sizes)),
        ones,
        None,
        params=ConvParams(geo.stride, pads, (1, 1, 1), 1),
    )
    summed = summed[(slice(None), 0) + tuple(slice(o) for o in geo.out)]
    if divisor_override:
        out = summed / divisor_override
    else:
        counts = math.prod(
            np.ix_(
                *window_counts(
                    geo.sizes, geo.kernel, geo.stride, geo.padding, geo.out, count_include_pad
                )
            )
        )
        out = summed / Tensor._make(
            xp_of(x._array).asarray(counts, dtype=x._array.dtype), False, None, 0
        )
    out = out.reshape((n, c) + geo.out)
    return out if batched else out.squeeze(0)


@declared(None, method=False)
def adaptive_avg_pool3d(input, output_size) -> Tensor:
    r"""3-d adaptive average pooling to ``output_size`` (int or triple; None keeps a size).

    Example::

        >>> F.adaptive_avg_pool3d(ember.randn(1, 2, 5, 6, 7), (2, 3, None)).shape
        ember.Size([1, 2, 2, 3, 7])
    """
    out = _adaptive_size("adaptive_avg_pool3d", 3, input, output_size)
    sizes = input.shape[-3:]
    maps = tuple(
        (input.ndim - 3 + k, _adaptive_matrix(n, o), None)
        for k, (n, o) in enumerate(zip(sizes, out))
        if n != o
    )
    return AxisMaps.apply(input, maps=maps) if maps else input.clone()


@declared(None, method=False)
def adaptive_max_pool3d(input, output_size, return_indices=False):
    r"""3-d adaptive max pooling to ``output_size``, optionally returning the flat index of
    each maximum in its input plane.

    Example::

        >>> F.adaptive_max_pool3d(ember.randn(1, 2, 5, 6, 7), 2).shape
        ember.Size([1, 2, 2, 2, 2])
    """
    out_sizes = _adaptive_size("adaptive_max_pool3d", 3, input, output_size)
    batched = input.ndim == 5
    x = input if batched else input.unsqueeze(0)
    xa = x._array
    xp = xp_of(xa)
    sizes = xa.shape[2:]
    bins = [xp.asarray(_adaptive_index(n, o)) for n, o in zip(sizes, out_sizes)]
    # (N, C, od, kd, oh, kh, ow, kw) -> (N, C, od, oh, ow, kd * kh * kw)
    windows = xa[:, :, bins[0]][:, :, :, :, bins[1]][..., bins[2]]
    windows = windows.transpose(0, 1, 2, 4, 6, 3, 5, 7).reshape(xa.shape[:2] + out_sizes + (-1,))
    arg = windows.argmax(axis=-1)
    widths = tuple(b.shape[1] for b in bins)
    flat = xp.zeros(arg.shape, np.int64)
    for axis, offset in enumerate(xp.unravel_index(arg, widths)):
        rows = xp.arange(out_sizes[axis]).reshape((-1,) + (1,) * (2 - axis))
        flat = flat * sizes[axis] + bins[axis][rows, offset]
    result = PlaneGather.apply(x, flat)
    index_t = Tensor._make(flat, False, None, 0)
    if not batched:
        result, index_t = result.squeeze(0), index_t.squeeze(0)
    return (result, index_t) if return_indices else result


def _max_unpool(op, spatial, input, indices, kernel_size, stride, padding, output_size):
    batched = _batched(op, input, spatial)
    if not isinstance(indices, Tensor) or indices.dtype.name != "int64":
        raise RuntimeError(f"{op}: expected indices to be an int64 Tensor")
    if tuple(indices.shape) != tuple(input.shape):
        raise RuntimeError(
            f"{op}: Expected shape of indices to be same as that of the input tensor "
            f"({list(input.shape)}) but got indices tensor with shape: {list(indices.shape)}"
        )
    kernel = _tuple(kernel_size, spatial, "kernel_size")
    stride = kernel if stride is None else _tuple(stride, spatial, "stride")
    padding = _tuple(padding, spatial, "padding")
    sizes = input.shape[-spatial:]
    default = [(n - 1) * s - 2 * p + k for n, s, p, k in zip(sizes, stride, padding, kernel)]
    if output_size is None:
        out = default
    else:
        out = [int(o) for o in list(output_size)[-spatial:]]
        if len(list(output_size)) not in (spatial, spatial + 1, spatial + 2):
            raise ValueError(f"{op}: output_size must have {spatial} elements, got {output_size}")
        for o, d, s in zip(out, default, stride):
            if not d - s < o < d + s:
                raise ValueError(
                    f"{op}: invalid output_size {out} (valid sizes lie strictly between "
                    f"{[d - s for d, s in zip(default, stride)]} and "
                    f"{[d + s for d, s in zip(default, stride)]})"
                )
    x = input if batched else input.unsqueeze(0)
    idx = (indices if batched else indices.unsqueeze(0))._array
    plane = math.prod(out)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= plane):
        raise RuntimeError(
            f"{op}: Found an invalid max index: {int(idx.max())} (output volumes are of size "
            f"{'x'.join(map(str, out))})"
        )
    y = PlaneScatter.apply(x, idx, plane_shape=tuple(out), accumulate=False)
    return y if batched else y.squeeze(0)


@declared(None, method=False)
def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""Inverse of ``max_pool1d``: put each value at its recorded index, zeros elsewhere."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


@declared(None, method=False)
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""Inverse of ``max_pool2d``: put each value at its recorded index, zeros elsewhere.

    Example::

        >>> y, idx = F.max_pool2d(ember.randn(1, 1, 4, 4), 2, return_indices=True)
        >>> F.max_unpool2d(y, idx, 2).shape
        ember.Size([1, 1, 4, 4])
    """
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


@declared(None, method=False)
def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""Inverse of ``max_pool3d``: put each value at its recorded index, zeros elsewhere."""
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)
