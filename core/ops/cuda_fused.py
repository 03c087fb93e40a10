"""CUDA-only autograd nodes over the fused kernels of ``core/kernels.py``: class-index
cross-entropy on (N, C) logits and element-wise dropout. ``F.cross_entropy`` and
``F.dropout`` route here when their arrays are CuPy arrays and the case fits; the
general nodes in ``nn.py`` handle everything else (and every CPU array)."""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function
from ..random import generator_for
from ..tensor import Tensor


def cross_entropy_applies(input: Tensor, target: Tensor, weight) -> bool:
    x = input._array
    return type(x) is not np.ndarray and kernels.cross_entropy_fits(x, target._array, weight)


class FusedCrossEntropy(Function):
    """Cross-entropy of (N, C) logits against int64 class indices: one kernel forward
    (per-row loss and log-sum-exp), one backward; the arithmetic is float32 (float64 for
    float64 logits)."""

    @staticmethod
    def forward(ctx, x, target, *, ignore_index, reduction, smoothing):
        xp = kernels._cupy()
        n_classes = x.shape[1]
        valid = target != ignore_index
        bad = valid & ((target < 0) | (target >= n_classes))
        if bool(bad.any()):  # the one host synchronisation, as in the general node
            raise IndexError(f"Target {int(target[bad][0])} is out of bounds.")
        per_row, lse = kernels.cross_entropy_forward(x, target, ignore_index, smoothing)
        denom = valid.sum(dtype=per_row.dtype)
        ctx.save_for_backward(x, target, lse, denom)
        ctx.meta = (reduction, ignore_index, smoothing)
        if reduction == "none":
            out = per_row
        elif reduction == "sum":
            out = per_row.sum()
        else:
            out = per_row.sum() / denom  # all rows ignored: nan, as PyTorch
        return xp.asarray(out).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, target, lse, denom = ctx.saved_tensors
        reduction, ignore_index, smoothing = ctx.meta
        xp = kernels._cupy()
        g = grad.astype(lse.dtype, copy=False)
        if reduction == "mean":
            g = g / denom
        row_grad = xp.broadcast_to(g, (x.shape[0],))
        gx = kernels.cross_entropy_backward(x, target, lse, row_grad, ignore_index, smoothing)
        return gx, None


def cross_entropy(input, target, ignore_index, reduction, label_smoothing) -> Tensor:
    return FusedCrossEntropy.apply(
        input,
        target._array,
        ignore_index=ignore_index,
        reduction=reduction,
        smoothing=float(label_smoothing),
    )


def dropout_applies(input: Tensor, shape) -> bool:
    x = input._array
    return (
        type(x) is not np.ndarray
        and tuple(shape) == tuple(x.shape)
        and x.dtype.name in ("float16", "bfloat16", "float32", "float64")
    )


class FusedDropout(Function):
    """``x`` with elements zeroed where ``uniform < p`` and the rest scaled by
    1 / (1 - p), in one kernel that also writes a bool keep mask for the backward."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, uniform, p):
        y, mask = kernels.dropout_forward(x, uniform, p)
        ctx.save_for_backward(mask)
        ctx.p = p
        return y

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        if isinstance(grad, Tensor):  # double backward: the same scaled mask, as a graph op
            scaled = mask.astype(grad._array.dtype) * (1.0 / (1.0 - ctx.p))
            return grad * Tensor._make(scaled, False, None, 0), None, None
        return kernels.dropout_backward(grad, mask, ctx.p), None, None


def dropout(input: Tensor, p: float, generator=None) -> Tensor:
    rng = generator_for(generator, input.device).rng
    with input._array.device:
        uniform = rng.random(input._array.shape, dtype=np.float32)
    return FusedDropout.apply(input, uniform, p)
