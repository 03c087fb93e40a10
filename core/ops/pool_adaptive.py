"""Adaptive pooling (1-d, 2-d): average and max pooling to a given output size with
PyTorch's bin edges. An average pool whose bins tile the input evenly runs as a plain
average pool, any other as one linear map per axis."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import xp_of
from .declare import declared
from .im2col import _as_4d
from .interpolate import AxisMaps, _adaptive_matrix
from .plane_index import PlaneScatter, plane_scatter
from .pool import AvgPool, _restore, _Window


def _adaptive_index(size, out):
    """(out, widest bin) input positions of each adaptive bin; short bins repeat their
    last position, which leaves the maximum (and its first occurrence) unchanged."""
    starts = (np.arange(out) * size) // out
    ends = -(-((np.arange(out) + 1) * size) // out)
    idx = starts[:, None] + np.arange(int((ends - starts).max()))[None, :]
    return np.minimum(idx, ends[:, None] - 1)


class AdaptiveMaxPool(Function):
    differentiable_backward = True  # through plane_index's ops

    @staticmethod
    def forward(ctx, x, out_hw, spatial, return_indices):
        x_shape = x.shape
        x = _as_4d(x, spatial)
        xp = xp_of(x)
        n, c, h, w = x.shape
        ih, iw = _adaptive_index(h, out_hw[0]), _adaptive_index(w, out_hw[1])
        # (N, C, oh, kh, ow, kw) gathered windows -> (N, C, oh, ow, kh * kw)
        windows = x[:, :, xp.asarray(ih)][..., xp.asarray(iw)].transpose(0, 1, 2, 4, 3, 5)
        windows = windows.reshape(n, c, out_hw[0], out_hw[1], -1)
        arg = windows.argmax(axis=-1)[..., None]
        out = xp.take_along_axis(windows, arg, axis=-1)[..., 0]
        kw = iw.shape[1]
        rows = xp.asarray(ih)[xp.arange(out_hw[0])[:, None], arg[..., 0] // kw]
        cols = xp.asarray(iw)[xp.arange(out_hw[1]), arg[..., 0] % kw]
        indices = (rows * w + cols).astype(np.int64)
        ctx.save_for_backward(indices)
        ctx.meta = (x_shape, (h, w))
        y = _restore(out, x_shape, spatial)
        if not return_indices:
            return y
        indices = _restore(indices, x_shape, spatial)
        ctx.mark_non_differentiable(indices)
        return y, indices

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        (indices,) = ctx.saved_tensors
        x_shape, plane = ctx.meta
        if isinstance(grad, Tensor):
            indices = indices._array
            g4 = grad.reshape(indices.shape)
            return PlaneScatter.apply(g4, indices, plane_shape=tuple(plane)).reshape(x_shape)
        return plane_scatter(grad.reshape(indices.shape), indices, plane).reshape(x_shape)


# -- functional forms ----------------------------------------------------------------------


def _adaptive_size(op, spatial, input, output_size):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.ndim not in (spatial + 1, spatial + 2) or any(s == 0 for s in input.shape[-spatial:]):
        raise RuntimeError(
            f"{op}(): Expected {spatial + 1}D or {spatial + 2}D tensor with non-zero spatial "
            f"sizes, but got input of size {list(input.shape)}"
        )
    size = (output_size,) * spatial if isinstance(output_size, int) else tuple(output_size)
    if len(size) != spatial:
        raise ValueError(
            f"{op}: output_size must be an int or a tuple of {spatial}, got {output_size}"
        )
    size = tuple(s if s is not None else n for s, n in zip(size, input.shape[-spatial:]))
    if any(s <= 0 for s in size):
        raise RuntimeError(f"{op}: elements of output_size must be greater than 0, got {size}")
    if not input.is_floating_point():
        raise RuntimeError(f"\"{op}\" not implemented for '{input.dtype}'")
    return (1, *size) if spatial == 1 else size


def _adaptive(op, spatial, input, output_size):
    out_hw = _adaptive_size(op, spatial, input, output_size)
    hw = (1, *input.shape[-1:]) if spatial == 1 else tuple(input.shape[-2:])
    if all(n % o == 0 for n, o in zip(hw, out_hw)):
        kernel = tuple(n // o for n, o in zip(hw, out_hw))
        win = _Window(hw, kernel, kernel, (0, 0), (1, 1), False)
        return AvgPool.apply(input, win=win, spatial=spatial, divisor=math.prod(kernel))
    maps = tuple(
        (input.ndim - len(out_hw) + k, _adaptive_matrix(n, o), None)
        for k, (n, o) in enumerate(zip(hw, out_hw))
        if n != o
    )
    return AxisMaps.apply(input, maps=maps) if maps else input.clone()


@declared(None, method=False)
def adaptive_avg_pool1d(input, output_size) -> Tensor:
    r"""1-d adaptive average pooling to ``output_size`` bins (PyTorch's bin edges)."""
    return _adaptive("adaptive_avg_pool1d", 1, input, output_size)


@declared(None, method=False)
def adaptive_avg_pool2d(input, output_size) -> Tensor:
    r"""2-d adaptive average pooling to ``output_size`` (int or pair; None keeps a size).

    Example::

        >>> F.adaptive_avg_pool2d(ember.randn(1, 3, 7, 5), (2, None)).shape
        ember.Size([1, 3, 2, 5])
    """
    return _adaptive("adaptive_avg_pool2d", 2, input, output_size)


@declared(AdaptiveMaxPool, method=False)
def adaptive_max_pool1d(input, output_size, return_indices=False):
    r"""1-d adaptive max pooling to ``output_size`` bins (PyTorch's bin edges)."""
    out_hw = _adaptive_size("adaptive_max_pool1d", 1, input, output_size)
    return AdaptiveMaxPool.apply(input, out_hw=out_hw, spatial=1, return_indices=return_indices)


@declared(AdaptiveMaxPool, method=False)
def adaptive_max_pool2d(input, output_size, return_indices=False):
    r"""2-d adaptive max pooling to ``output_size`` (int or pair; None keeps a size),
    optionally returning the flat index of each maximum in its input plane.

    Example::

        >>> F.adaptive_max_pool2d(ember.randn(1, 3, 7, 5), (2, 3)).shape
        ember.Size([1, 3, 2, 3])
    """
    out_hw = _adaptive_size("adaptive_max_pool2d", 2, input, output_size)
    return AdaptiveMaxPool.apply(input, out_hw=out_hw, spatial=2, return_indices=return_indices)
