"""The image operations behind the transforms, torchvision's ``transforms.functional``.

Images are NumPy arrays laid out HWC (or HW), as a decoded image file or a PIL image
converted with ``np.asarray`` is, or ember tensors laid out (..., C, H, W) (or H, W).
Every function returns the layout and the dtype it was given; uint8 images are
computed in float32 and brought back as torchvision does (rounded after resampling,
truncated after colour blending). Tensors come back as new tensors outside autograd,
except from :func:`normalize`, which uses ember's ops.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ....backend import xp_of
from ....tensor import Tensor, wrap_array


class InterpolationMode:
    r"""Interpolation names, as ``torchvision.transforms.InterpolationMode``."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"


_MODES = (InterpolationMode.NEAREST, InterpolationMode.BILINEAR)


# -- layout ---------------------------------------------------------------------------------


def _unpack(img):
    """``img`` as an array (..., C, H, W) and the function that restores its layout."""
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"an image tensor needs at least 2 dims (H, W), got {img.ndim}")
        arr = img._array
        if img.ndim == 2:
            return arr[None], lambda a: wrap_array(a[0])
        return arr, lambda a: wrap_array(a)
    if isinstance(img, np.ndarray):
        if img.ndim == 2:
            return img[None], lambda a: np.ascontiguousarray(a[0])
        if img.ndim == 3:
            return img.transpose(2, 0, 1), lambda a: np.ascontiguousarray(a.transpose(1, 2, 0))
        raise ValueError(f"a NumPy image must be HW or HWC, got shape {img.shape}")
    raise TypeError(f"img should be a NumPy array (HWC) or an ember Tensor, got {type(img)}")


def get_dimensions(img) -> list:
    r"""``[channels, height, width]`` of an image."""
    arr, _ = _unpack(img)
    return [int(arr.shape[-3]), int(arr.shape[-2]), int(arr.shape[-1])]


def _float_dtype(arr):
    return arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)


def _max_value(dtype) -> float:
    return 1.0 if np.dtype(dtype).kind == "f" else float(np.iinfo(dtype).max)


def _round_back(result, dtype):
    """A resampled float result in ``dtype``: integers are rounded (half to even)."""
    if np.dtype(dtype).kind == "f":
        return result.astype(dtype, copy=False)
    xp = xp_of(result)
    info = np.iinfo(dtype)
    return xp.clip(xp.round(result), info.min, info.max).astype(dtype)


# -- conversion and normalization -----------------------------------------------------------


def to_tensor(pic) -> Tensor:
    r"""A NumPy HWC (or HW) image as a CHW tensor; uint8 is scaled to float32 in [0, 1],
    other dtypes keep their values."""
    if not isinstance(pic, np.ndarray):
        raise TypeError(f"pic should be a NumPy array (HWC), got {type(pic)}")
    if pic.ndim not in (2, 3):
        raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.ndim} dimensions")
    arr = pic[:, :, None] if pic.ndim == 2 else pic
    arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / np.float32(255)
    return wrap_array(arr)


def normalize(tensor: Tensor, mean, std, inplace: bool = False):
    r"""``(tensor - mean[c]) / std[c]`` per channel of a float (..., C, H, W) tensor (or
    a float NumPy HWC image)."""
    if isinstance(tensor, np.ndarray):
        if tensor.dtype.kind != "f":
            raise TypeError(f"normalize expects a float image, got {tensor.dtype}")
        mean, std = np.asarray(mean, tensor.dtype), np.asarray(std, tensor.dtype)
        _check_std(std)
        out = tensor if inplace else tensor.copy()
        out -= mean
        out /= std
        return out
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensor should be an ember Tensor, got {type(tensor)}")
    if not tensor.is_floating_point():
        raise TypeError(f"normalize expects a floating-point tensor, got {tensor.dtype}")
    if tensor.ndim < 3:
        raise ValueError(f"expected a (..., C, H, W) tensor, got shape {list(tensor.shape)}")
    xp = xp_of(tensor._array)
    mean = xp.asarray(mean, dtype=tensor._array.dtype).reshape(-1, 1, 1)
    std = xp.asarray(std, dtype=tensor._array.dtype).reshape(-1, 1, 1)
    _check_std(std)
    mean = wrap_array(mean)
    std = wrap_array(std)
    if inplace:
        return tensor.sub_(mean).div_(std)
    return (tensor - mean) / std


def _check_std(std) -> None:
    if bool((std == 0).any()):
        raise ValueError(f"std evaluated to zero after conversion to the image dtype: {std}")


# -- geometry -------------------------------------------------------------------------------


def _output_size(h: int, w: int, size, max_size) -> tuple:
    if isinstance(size, numbers.Integral) or len(size) == 1:
        requested = int(size if isinstance(size, numbers.Integral) else size[0])
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = requested, int(requested * long / short)
        if max_size is not None:
            if max_size <= requested:
                raise ValueError(
                    f"max_size = {max_size} must be strictly greater than the requested size "
                    f"for the smaller edge size = {size}"
                )
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)
    if max_size is not None:
        raise ValueError("max_size is only supported when size is a single int")
    if len(size) != 2:
        raise ValueError(f"size must be an int or a sequence of 1 or 2 ints, got {size}")
    return int(size[0]), int(size[1])


def _linear_weights(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """(out_size, in_size) weights of bilinear resampling along one axis (half-pixel
    centres); with ``antialias`` the triangle filter widens by the downscale factor."""
    scale = in_size / out_size
    weights = np.zeros((out_size, in_size))
    if antialias:
        support = scale if scale >= 1.0 else 1.0
        invscale = 1.0 / scale if scale >= 1.0 else 1.0
        for i in range(out_size):
            center = scale * (i + 0.5)
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), in_size)
            taps = np.arange(lo, hi)
            w = np.clip(1.0 - np.abs((taps - center + 0.5) * invscale), 0.0, None)
            weights[i, lo:hi] = w / w.sum() if w.sum() != 0 else w
        return weights
    src = np.maximum(scale * (np.arange(out_size) + 0.5) - 0.5, 0.0)
    i0 = src.astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    rows = np.arange(out_size)
    np.add.at(weights, (rows, i0), 1.0 - lam)
    np.add.at(weights, (rows, i1), lam)
    return weights


def _nearest_index(in_size: int, out_size: int) -> np.ndarray:
    # float32 arithmetic, as PyTorch computes 'nearest' source indices
    scale = np.float32(in_size) / np.float32(out_size)
    idx = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(idx, in_size - 1)


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    r"""Resize to ``size``: ``(h, w)``, or an int for the shorter edge (keeping the aspect
    ratio, the longer edge capped by ``max_size``). Bilinear with ``antialias`` filters
    like PIL when shrinking, as torchvision does for tensors."""
    if interpolation not in _MODES:
        raise ValueError(f"interpolation must be one of {_MODES}, got {interpolation!r}")
    arr, back = _unpack(img)
    h, w = arr.shape[-2:]
    oh, ow = _output_size(h, w, size, max_size)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"resize would give an empty image of size {(oh, ow)}")
    if (oh, ow) == (h, w):
        return back(arr.copy())
    xp = xp_of(arr)
    if interpolation == InterpolationMode.NEAREST:
        rows, cols = xp.asarray(_nearest_index(h, oh)), xp.asarray(_nearest_index(w, ow))
        return back(arr[..., rows, :][..., cols])
    dtype = _float_dtype(arr)
    wh = xp.asarray(_linear_weights(h, oh, antialias), dtype=dtype)
    ww = xp.asarray(_linear_weights(w, ow, antialias), dtype=dtype)
    out = xp.matmul(xp.matmul(wh, arr.astype(dtype)), ww.T)
    return back(_round_back(out, arr.dtype))


def _padding_ltrb(padding) -> tuple:
    if isinstance(padding, numbers.Integral):
        padding = [padding]
    padding = [int(p) for p in padding]
    if len(padding) == 1:
        padding = padding * 4
    elif len(padding) == 2:
        padding = [padding[0], padding[1], padding[0], padding[1]]
    elif len(padding) != 4:
        raise ValueError(f"padding must be an int or a sequence of 1, 2 or 4 ints, got {padding}")
    if min(padding) < 0:
        raise ValueError(f"padding must be non-negative, got {padding}")
    return tuple(padding)


_PAD_MODES = {
    "constant": "constant",
    "edge": "edge",
    "reflect": "reflect",
    "symmetric": "symmetric",
}


def _pad_array(arr, ltrb, fill, padding_mode):
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"padding_mode must be one of {list(_PAD_MODES)}, got {padding_mode!r}")
    left, top, right, bottom = ltrb
    xp = xp_of(arr)
    widths = [(0, 0)] * (arr.ndim - 2) + [(top, bottom), (left, right)]
    if padding_mode != "constant":
        return xp.pad(arr, widths, mode=padding_mode)
    if isinstance(fill, numbers.Number):
        return xp.pad(arr, widths, mode="constant", constant_values=fill)
    fill = list(fill)
    if len(fill) != arr.shape[-3]:
        raise ValueError(f"fill has {len(fill)} values for {arr.shape[-3]} channels")
    out = xp.pad(arr, widths, mode="constant")
    mask = xp.pad(xp.zeros(arr.shape[-2:], dtype=bool), widths[-2:], constant_values=True)
    for c, value in enumerate(fill):
        out[..., c, :, :][..., mask] = value
    return out


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    r"""Pad the borders: ``padding`` an int (all sides), ``(left/right, top/bottom)`` or
    ``(left, top, right, bottom)``; ``padding_mode`` "constant" (with ``fill``, a number
    or one per channel), "edge", "reflect" or "symmetric"."""
    arr, back = _unpack(img)
    return back(_pad_array(arr, _padding_ltrb(padding), fill, padding_mode))


def _crop_array(arr, top: int, left: int, height: int, width: int):
    h, w = arr.shape[-2:]
    right, bottom = left + width, top + height
    if left < 0 or top < 0 or right > w or bottom > h:  # outside the image: zeros
        ltrb = (
            max(-left + min(0, right), 0),
            max(-top + min(0, bottom), 0),
            max(right - max(w, left), 0),
            max(bottom - max(h, top), 0),
        )
        inside = arr[..., max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)]
        return _pad_array(inside, ltrb, 0, "constant")
    return arr[..., top:bottom, left:right].copy()


def crop(img, top: int, left: int, height: int, width: int):
    r"""The ``height`` x ``width`` region at (``top``, ``left``); parts outside the
    image are zeros."""
    arr, back = _unpack(img)
    return back(_crop_array(arr, int(top), int(left), int(height), int(width)))


def center_crop(img, output_size):
    r"""The central ``output_size`` (int or (h, w)) region, zero-padded if the image is
    smaller."""
    if isinstance(output_size, numbers.Integral):
        output_size = (int(output_size), int(output_size))
    elif len(output_size) == 1:
        output_size = (output_size[0], output_size[0])
    arr, back = _unpack(img)
    h, w = arr.shape[-2:]
    ch, cw = (int(s) for s in output_size)
    if ch > h or cw > w:
        ltrb = ((cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0,
                (cw - w + 1) // 2 if cw > w else 0, (ch - h + 1) // 2 if ch > h else 0)  # fmt: skip
        arr = _pad_array(arr, ltrb, 0, "constant")
        h, w = arr.shape[-2:]
        if (h, w) == (ch, cw):
            return back(arr)
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return back(_crop_array(arr, top, left, ch, cw))


def resized_crop(img, top, left, height, width, size, interpolation="bilinear", antialias=True):
    r""":func:`crop` then :func:`resize`."""
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)


def hflip(img):
    r"""Mirror left-right."""
    arr, back = _unpack(img)
    return back(arr[..., ::-1].copy())


def vflip(img):
    r"""Mirror top-bottom."""
    arr, back = _unpack(img)
    return back(arr[..., ::-1, :].copy())


# -- colour ---------------------------------------------------------------------------------


def _check_channels(arr, allowed, what: str) -> int:
    c = arr.shape[-3]
    if c not in allowed:
        raise ValueError(f"{what} expects an image with {allowed} channels, got {c}")
    return c


def _gray(arr):
    """ITU-R 601-2 luma of an (..., 3, H, W) array, in its dtype (integers truncated)."""
    r, g, b = arr[..., 0, :, :], arr[..., 1, :, :], arr[..., 2, :, :]
    dtype = _float_dtype(arr)
    luma = (
        r.astype(dtype) * dtype.type(0.299)
        + g.astype(dtype) * dtype.type(0.587)
        + b.astype(dtype) * dtype.type(0.114)
    )
    return luma.astype(arr.dtype)[..., None, :, :]


def rgb_to_grayscale(img, num_output_channels: int = 1):
    r"""Luma ``0.299 R + 0.587 G + 0.114 B``, as 1 or 3 identical channels."""
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels should be 1 or 3, got {num_output_channels}")
    arr, back = _unpack(img)
    c = _check_channels(arr, (1, 3), "rgb_to_grayscale")
    gray = _gray(arr) if c == 3 else arr.copy()
    if num_output_channels == 3:
        gray = xp_of(arr).concatenate([gray] * 3, axis=-3)
    return back(gray)


def _blend(arr, other, ratio: float):
    dtype = _float_dtype(arr)
    ratio = dtype.type(ratio)
    out = ratio * arr.astype(dtype) + (dtype.type(1.0) - ratio) * other
    return xp_of(arr).clip(out, 0, _max_value(arr.dtype)).astype(arr.dtype)


def _check_factor(factor: float, name: str) -> None:
    if factor < 0:
        raise ValueError(f"{name} ({factor}) is not non-negative.")


def adjust_brightness(img, brightness_factor: float):
    r"""Blend with black: 0 gives black, 1 the image, 2 twice as bright (clipped)."""
    _check_factor(brightness_factor, "brightness_factor")
    arr, back = _unpack(img)
    _check_channels(arr, (1, 3), "adjust_brightness")
    return back(_blend(arr, 0, brightness_factor))


def adjust_contrast(img, contrast_factor: float):
    r"""Blend with the image's mean grey level: 0 gives a uniform grey, 1 the image."""
    _check_factor(contrast_factor, "contrast_factor")
    arr, back = _unpack(img)
    c = _check_channels(arr, (1, 3), "adjust_contrast")
    dtype = _float_dtype(arr)
    gray = _gray(arr) if c == 3 else arr
    mean = gray.astype(dtype).mean(axis=(-3, -2, -1), keepdims=True)
    return back(_blend(arr, mean, contrast_factor))


def adjust_saturation(img, saturation_factor: float):
    r"""Blend with the greyscale image: 0 gives grey, 1 the image, 2 doubles saturation."""
    _check_factor(saturation_factor, "saturation_factor")
    arr, back = _unpack(img)
    if _check_channels(arr, (1, 3), "adjust_saturation") == 1:
        return back(arr.copy())
    return back(_blend(arr, _gray(arr), saturation_factor))


def _rgb_to_hsv(rgb):
    xp = xp_of(rgb)
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    maxc, minc = rgb.max(axis=-3), rgb.min(axis=-3)
    flat = maxc == minc  # grey: hue and saturation 0, avoid dividing by zero
    chroma = maxc - minc
    one = xp.ones_like(maxc)
    s = chroma / xp.where(flat, one, maxc)
    divisor = xp.where(flat, one, chroma)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~is_r & ~is_g
    h = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc)
    h = xp.fmod(h / 6.0 + 1.0, 1.0)
    return xp.stack([h, s, maxc], axis=-3).astype(rgb.dtype, copy=False)


def _hsv_to_rgb(hsv):
    xp = xp_of(hsv)
    h, s, v = hsv[..., 0, :, :], hsv[..., 1, :, :], hsv[..., 2, :, :]
    sector = xp.floor(h * 6.0)
    f = h * 6.0 - sector
    sector = sector.astype(np.int32) % 6
    p = xp.clip(v * (1.0 - s), 0.0, 1.0)
    q = xp.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = xp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    # (r, g, b) in each of the six hue sectors
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    conds = [sector == k for k in range(6)]
    channels = [xp.select(conds, [row[ch] for row in table]) for ch in range(3)]
    return xp.stack(channels, axis=-3).astype(hsv.dtype, copy=False)


def adjust_hue(img, hue_factor: float):
    r"""Rotate the hue by ``hue_factor`` (a fraction of the colour circle, in
    [-0.5, 0.5]) through RGB -> HSV -> RGB; float images must lie in [0, 1]."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    arr, back = _unpack(img)
    if _check_channels(arr, (1, 3), "adjust_hue") == 1:
        return back(arr.copy())
    x = arr.astype(np.float32) / np.float32(255) if arr.dtype == np.uint8 else arr
    hsv = _rgb_to_hsv(x)
    hsv[..., 0, :, :] = xp_of(x).fmod(hsv[..., 0, :, :] + hue_factor, 1.0)
    hsv[..., 0, :, :] += hsv[..., 0, :, :] < 0  # a floored modulo, as Python's %
    out = _hsv_to_rgb(hsv)
    if arr.dtype == np.uint8:
        out = (out * np.float32(255)).astype(np.uint8)
    return back(out)


# -- rotation -------------------------------------------------------------------------------


def _rotation_matrix(angle: float, center) -> list:
    """The inverse of a counter-clockwise rotation by ``angle`` degrees about ``center``:
    output pixel -> input pixel, in coordinates centred on the image (y down)."""
    rad = math.radians(angle)
    cx, cy = center
    m = [math.cos(rad), -math.sin(rad), 0.0, math.sin(rad), math.cos(rad), 0.0]
    m[2] = cx - m[0] * cx - m[1] * cy
    m[5] = cy - m[3] * cx - m[4] * cy
    return m


def _expanded_size(m, w: int, h: int) -> tuple:
    corners = np.array(
        [[-0.5 * w, -0.5 * h, 1.0], [-0.5 * w, 0.5 * h, 1.0], [0.5 * w, 0.5 * h, 1.0],
         [0.5 * w, -0.5 * h, 1.0]], dtype=np.float32,
    )  # fmt: skip
    pts = corners @ np.array(m, dtype=np.float32).reshape(2, 3).T
    tol = 1e-4  # keeps float noise from adding a pixel
    hi = np.ceil(np.trunc(pts.max(axis=0) / tol) * tol)
    lo = np.floor(np.trunc(pts.min(axis=0) / tol) * tol)
    size = hi - lo
    return int(size[0]), int(size[1])


def _sample(arr, ix, iy, mode: str):
    """``arr`` (..., C, H, W) at pixel coordinates (ix, iy) of shape (oh, ow), zeros
    outside; also the in-image weight of each output pixel."""
    xp = xp_of(arr)
    h, w = arr.shape[-2:]
    if mode == InterpolationMode.NEAREST:
        xi, yi = xp.rint(ix).astype(np.int64), xp.rint(iy).astype(np.int64)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out = arr[..., xp.clip(yi, 0, h - 1), xp.clip(xi, 0, w - 1)] * inside
        return out, inside.astype(arr.dtype)
    x0, y0 = xp.floor(ix), xp.floor(iy)
    out = 0
    weight = 0
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - xp.abs(ix - xi)) * (1 - xp.abs(iy - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            wgt = wgt * inside
            xc = xp.clip(xi, 0, w - 1).astype(np.int64)
            yc = xp.clip(yi, 0, h - 1).astype(np.int64)
            out = out + arr[..., yc, xc] * wgt
            weight = weight + wgt
    return out, weight


def rotate(img, angle: float, interpolation="nearest", expand=False, center=None, fill=None):
    r"""Rotate by ``angle`` degrees counter-clockwise about ``center`` ((x, y) in pixels;
    default: the image centre). ``expand`` grows the output to hold the whole rotated
    image. Outside the source image: zeros, or ``fill`` (a number or one per channel),
    blended by coverage for bilinear interpolation as torchvision does."""
    if interpolation not in _MODES:
        raise ValueError(f"interpolation must be one of {_MODES}, got {interpolation!r}")
    arr, back = _unpack(img)
    xp = xp_of(arr)
    h, w = arr.shape[-2:]
    c = (0.0, 0.0) if center is None else (center[0] - w * 0.5, center[1] - h * 0.5)
    m = _rotation_matrix(angle, c)
    ow, oh = _expanded_size(m, w, h) if expand else (w, h)
    dtype = _float_dtype(arr)
    # Output pixel centres relative to the output's centre, mapped into the input through
    # normalized coordinates in the order torchvision's affine grid and grid_sample use,
    # so that rounding ties (common: sin 30 = 0.5) fall the same way.
    xs = xp.linspace(-ow * 0.5 + 0.5, ow * 0.5 - 0.5, ow, dtype=dtype)[None, :]
    ys = xp.linspace(-oh * 0.5 + 0.5, oh * 0.5 - 0.5, oh, dtype=dtype)[:, None]
    theta = xp.asarray(m, dtype=dtype).reshape(2, 3)
    theta = theta / xp.asarray([[0.5 * w], [0.5 * h]], dtype=dtype)
    gx = xs * theta[0, 0] + ys * theta[0, 1] + theta[0, 2]
    gy = xs * theta[1, 0] + ys * theta[1, 1] + theta[1, 2]
    ix = ((gx + 1) * dtype.type(w) - 1) / 2
    iy = ((gy + 1) * dtype.type(h) - 1) / 2
    out, coverage = _sample(arr.astype(dtype), ix, iy, interpolation)
    if fill is not None:
        fills = [float(fill)] * arr.shape[-3] if isinstance(fill, numbers.Number) else fill
        if len(fills) != arr.shape[-3]:
            raise ValueError(f"fill has {len(fills)} values for {arr.shape[-3]} channels")
        fill_img = xp.asarray(fills, dtype=dtype).reshape(-1, 1, 1)
        if interpolation == InterpolationMode.NEAREST:
            out = xp.where(coverage < 0.5, fill_img, out)
        else:
            out = out * coverage + (1 - coverage) * fill_img
    return back(_round_back(out.astype(dtype, copy=False), arr.dtype))
