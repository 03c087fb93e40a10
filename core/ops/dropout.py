"""Dropout: ``dropout`` and its channel-wise forms ``dropout1d/2d/3d`` (one Function,
``x * mask``; the mask is drawn by the wrapper), and the alpha dropouts for SELU nets."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..random import generator_for
from ..tensor import Tensor
from . import cpu_rows, cuda_fused
from ._util import xp_of
from .declare import declared


class Dropout(Function):
    """``x * mask``; the mask (already scaled by 1/(1-p)) is drawn by the wrapper."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return cpu_rows.product(x, mask)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return cpu_rows.product(grad, mask), None


def _dropout_mask(input: Tensor, p: float, shape, generator=None):
    xp = xp_of(input._array)
    rng = generator_for(generator, input.device).rng
    draw_dt = input._array.dtype if input._array.dtype in (np.float32, np.float64) else np.float32
    # drawn here in one call, so the mask depends on the seed alone, not on the threads
    draws = rng.random(shape, dtype=draw_dt)
    scale = xp.asarray(1.0 / (1.0 - p), dtype=input._array.dtype)
    if cpu_rows.fits(draws, single_pass=True) and draws.dtype == input._array.dtype:
        return cpu_rows.dropout_mask(draws, p, scale)
    mask = (draws >= p).astype(input._array.dtype)
    mask *= scale
    return mask


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _apply_mask(input: Tensor, p: float, shape, inplace: bool, generator=None) -> Tensor:
    if not input.is_floating_point():
        raise RuntimeError(f"dropout expects a floating point input, got {input.dtype}")
    if 0.0 < p < 1.0 and not inplace and cuda_fused.dropout_applies(input, shape):
        return cuda_fused.dropout(input, p, generator)
    if p == 1.0:
        mask = xp_of(input._array).zeros(shape, input._array.dtype)
    else:
        mask = _dropout_mask(input, p, shape, generator)
    if inplace:
        return input._inplace_from(Dropout.apply(input._snapshot(), mask))
    return Dropout.apply(input, mask)


@declared(Dropout, method=False)
def dropout(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, generator=None
) -> Tensor:
    r"""Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``
    (only when ``training``).

    Example::

        >>> y = F.dropout(x, p=0.1, training=model.training)
    """
    _check_p(p)
    if not training or p == 0.0:
        return input
    return _apply_mask(input, p, input.shape, inplace, generator)


def _feature_dropout(name, input, p, training, inplace, batched_ndim, generator=None):
    _check_p(p)
    ndim = input.dim()
    if ndim not in (batched_ndim - 1, batched_ndim):
        raise RuntimeError(
            f"{name}: Expected {batched_ndim - 1}D or {batched_ndim}D input, but received a "
            f"{ndim}D input of shape {list(input.shape)}"
        )
    if not training or p == 0.0:
        return input
    # one draw per (sample, channel), broadcast over the remaining dims
    lead = 2 if ndim == batched_ndim else 1
    shape = tuple(input.shape[:lead]) + (1,) * (ndim - lead)
    return _apply_mask(input, p, shape, inplace, generator)


@declared(Dropout, method=False)
def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    r"""Zero whole channels of a ``(N, C, L)`` or ``(C, L)`` input with probability ``p``."""
    return _feature_dropout("dropout1d", input, p, training, inplace, 3)


@declared(Dropout, method=False)
def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    r"""Zero whole channels of a ``(N, C, H, W)`` or ``(C, H, W)`` input with probability ``p``."""
    return _feature_dropout("dropout2d", input, p, training, inplace, 4)


@declared(Dropout, method=False)
def dropout3d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    r"""Zero whole channels of a ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input."""
    return _feature_dropout("dropout3d", input, p, training, inplace, 5)


# -- alpha dropout ----------------------------------------------------------------------


_SELU_ALPHA_PRIME = -1.7580993408473766  # -selu_scale * selu_alpha


def _alpha_dropout(input: Tensor, p: float, training: bool, feature: bool, generator=None):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    shape = tuple(input.shape)
    if feature:
        if input.dim() < 2:
            raise RuntimeError(
                "feature_alpha_dropout needs an input with a channel dim (N, C, ...)"
            )
        shape = shape[:2] + (1,) * (input.dim() - 2)
    rng = generator_for(generator, input.device).rng
    keep = rng.random(shape, dtype=np.float32) >= p
    mask = Tensor._make(keep.astype(input._array.dtype), False, None, 0)
    a = ((1 - p) * (1 + p * _SELU_ALPHA_PRIME**2)) ** -0.5
    b = -a * _SELU_ALPHA_PRIME * p
    # kept elements: a * x + b; dropped: the SELU saturation value, rescaled the same way
    return (input * mask + _SELU_ALPHA_PRIME * (1 - mask)) * a + b


@declared(None, method=False)
def alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    r"""Dropout that keeps the mean and variance of SELU activations (for SELU nets)."""
    out = _alpha_dropout(input, p, training, feature=False)
    return input._inplace_from(out) if inplace and out is not input else out


@declared(None, method=False)
def feature_alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    r"""Alpha dropout of whole channels."""
    out = _alpha_dropout(input, p, training, feature=True)
    return input._inplace_from(out) if inplace and out is not input else out
