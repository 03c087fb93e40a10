"""``interpolate``: resampling of the spatial dims of (N, C, *spatial) inputs.

Every mode is separable, so a resize is one linear map per spatial dim: an
(out, in) weight matrix applied along that dim (nearest picks one input per output,
linear two, bicubic four, area averages PyTorch's adaptive-pooling bins). Backward
applies the transposed matrices, and that is itself the same op, so interpolation is
differentiable to any order. Nearest modes gather instead of multiplying going
forward, so infinities stay where they are and integer inputs work.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import array_matmul, xp_of
from .declare import declared

_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic coefficient
_MODE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _apply_along(xp, x, axis, weight):
    """``weight`` (out, in) applied along ``axis`` of ``x``."""
    shape = x.shape
    weight = xp.asarray(weight, dtype=x.dtype)
    if axis == x.ndim - 1:  # one GEMM with the rows of x
        return array_matmul(x.reshape(-1, shape[-1]), weight.T).reshape(shape[:-1] + (-1,))
    x3 = x.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))
    y = array_matmul(weight, x3)
    return y.reshape(shape[:axis] + (weight.shape[0],) + shape[axis + 1 :])


class AxisMaps(Function):
    """Applies one linear map per axis: ``maps`` is a tuple of (axis, weight, index);
    ``index`` (or None) gathers instead of multiplying by the one-hot ``weight``."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, maps):
        ctx.maps = maps
        xp = xp_of(x)
        for axis, weight, index in maps:
            if index is not None:
                x = xp.take(x, xp.asarray(index), axis=axis)
            else:
                x = _apply_along(xp, x, axis, weight)
        return x

    @staticmethod
    def backward(ctx, grad):
        transposed = tuple((axis, weight.T, None) for axis, weight, _ in reversed(ctx.maps))
        if isinstance(grad, Tensor):
            return AxisMaps.apply(grad, maps=transposed)
        return AxisMaps.forward(ctx, grad, transposed)


# -- weights of one axis --------------------------------------------------------------------


def _adaptive_matrix(size, out):
    """(out, size) averaging matrix of PyTorch's adaptive bins (area mode, adaptive pools)."""
    m = np.zeros((out, size))
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _nearest(size_in, size_out, scale, exact, shortcuts):
    # PyTorch's 2-d nearest kernel special-cases equal and doubled sizes (which then
    # ignore a scale factor's fractional part); its 1-d and 3-d kernels do not
    if shortcuts and size_out == size_in:
        return np.arange(size_out)
    if shortcuts and size_out == 2 * size_in:
        return np.arange(size_out) // 2
    # PyTorch computes this in float32; so do we, to pick the same inputs
    step = np.float32(1.0 / scale) if scale else np.float32(size_in) / np.float32(size_out)
    dst = np.arange(size_out, dtype=np.float32) + np.float32(0.5 if exact else 0.0)
    return np.minimum(np.floor(dst * step).astype(np.int64), size_in - 1)


def _source_positions(size_in, size_out, scale, align_corners, cubic):
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners:
        return dst * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    step = 1.0 / scale if scale else size_in / size_out
    src = (dst + 0.5) * step - 0.5
    return src if cubic else np.maximum(src, 0.0)


def _linear(size_in, size_out, scale, align_corners):
    src = _source_positions(size_in, size_out, scale, align_corners, cubic=False)
    lo = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    weight = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    np.add.at(weight, (rows, lo), 1 - frac)
    np.add.at(weight, (rows, hi), frac)
    return weight


def _cubic(size_in, size_out, scale, align_corners):
    src = _source_positions(size_in, size_out, scale, align_corners, cubic=True)
    base = np.floor(src)
    t = src - base
    a = _CUBIC_A

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    coeffs = (far(t + 1), near(t), near(1 - t), far(2 - t))
    weight = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    for k, c in enumerate(coeffs):
        cols = np.clip(base.astype(np.int64) - 1 + k, 0, size_in - 1)  # edges repeat
        np.add.at(weight, (rows, cols), c)
    return weight


def _axis_map(mode, size_in, size_out, scale, align_corners, spatial):
    """(weight, index) of one axis."""
    if mode in ("nearest", "nearest-exact"):
        shortcuts = mode == "nearest" and spatial == 2
        index = _nearest(size_in, size_out, scale, mode == "nearest-exact", shortcuts)
        weight = np.zeros((size_out, size_in))
        weight[np.arange(size_out), index] = 1.0
        return weight, index
    if mode == "area":
        return _adaptive_matrix(size_in, size_out), None
    if mode == "bicubic":
        return _cubic(size_in, size_out, scale, align_corners), None
    return _linear(size_in, size_out, scale, align_corners), None


# -- the functional API -----------------------------------------------------------------------


def _per_dim(value, spatial, name):
    if isinstance(value, list | tuple):
        if len(value) != spatial:
            raise ValueError(
                f"Input and {name} must have the same number of spatial dimensions, but got "
                f"input with spatial dimensions of {spatial} and {name} of {list(value)}."
            )
        return tuple(value)
    return (value,) * spatial


@declared(AxisMaps, method=False)
def interpolate(
    input: Tensor,
    size=None,
    scale_factor=None,
    mode: str = "nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias: bool = False,
) -> Tensor:
    r"""Resize the spatial dims of ``input`` (N, C, *spatial) to ``size`` or by ``scale_factor``.

    Args:
        mode: 'nearest', 'nearest-exact', 'linear' (3-D input), 'bilinear' / 'bicubic'
            (4-D), 'trilinear' (5-D) or 'area' (adaptive average pooling).
        align_corners: for the interpolating modes, map the corner pixels' centres onto
            each other (default False).
        recompute_scale_factor: compute the sampling step from the output size instead
            of using ``scale_factor`` itself.

    Example::

        >>> F.interpolate(ember.randn(1, 3, 4, 4), scale_factor=2, mode="bilinear").shape
        ember.Size([1, 3, 8, 8])
    """
    if not isinstance(input, Tensor):
        raise TypeError(
            f"interpolate(): argument 'input' must be Tensor, not {type(input).__name__}"
        )
    spatial = input.ndim - 2
    if spatial not in (1, 2, 3):
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
            f"the modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact"
            f" (got {mode})"
        )
    if mode not in ("nearest", "nearest-exact", "area", *_MODE_DIMS):
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported for the modes: nearest | "
            f"linear | bilinear | bicubic | trilinear | area | nearest-exact (got {mode})"
        )
    if mode in _MODE_DIMS and _MODE_DIMS[mode] != spatial:
        raise NotImplementedError(
            f"Got {input.ndim}D input, but {mode} mode needs {_MODE_DIMS[mode] + 2}D input"
        )
    if align_corners is not None and mode not in _MODE_DIMS:
        raise ValueError(
            "align_corners option can only be set with the interpolating modes: "
            "linear | bilinear | bicubic | trilinear"
        )
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported by ember")
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    sizes_in = tuple(input.shape[2:])
    if size is not None:
        sizes_out = tuple(int(s) for s in _per_dim(size, spatial, "size"))
        scales = (None,) * spatial
    else:
        factors = tuple(float(f) for f in _per_dim(scale_factor, spatial, "scale_factor"))
        sizes_out = tuple(math.floor(n * f) for n, f in zip(sizes_in, factors))
        scales = (None,) * spatial if recompute_scale_factor else factors
    if any(s <= 0 for s in sizes_out) or any(n <= 0 for n in sizes_in):
        raise ValueError(
            f"interpolate: input {list(input.shape)} and output sizes {list(sizes_out)} must "
            "be greater than 0"
        )
    if not input.is_floating_point() and mode not in ("nearest", "nearest-exact"):
        raise RuntimeError(f"\"upsample_{mode}\" not implemented for '{input.dtype}'")
    maps = []
    for k, (n_in, n_out, scale) in enumerate(zip(sizes_in, sizes_out, scales)):
        if n_in == n_out and (mode in ("area", "linear", "bilinear", "trilinear") or not scale):
            continue  # identity (with a scale factor, nearest and bicubic may still shift)
        weight, index = _axis_map(mode, n_in, n_out, scale, bool(align_corners), spatial)
        maps.append((k + 2, weight, index))
    if not maps:
        return input.clone()
    return AxisMaps.apply(input, maps=tuple(maps))


@declared(None, method=False)
def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    r"""Deprecated alias of ``interpolate``."""
    return interpolate(input, size, scale_factor, mode, align_corners)


@declared(None, method=False)
def upsample_nearest(input, size=None, scale_factor=None):
    r"""``interpolate(..., mode='nearest')``."""
    return interpolate(input, size, scale_factor, mode="nearest")


@declared(None, method=False)
def upsample_bilinear(input, size=None, scale_factor=None):
    r"""``interpolate(..., mode='bilinear', align_corners=True)``."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
