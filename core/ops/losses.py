"""Dropout, embedding and the classification losses (cross entropy as one fused
Function, nll): ``nn.functional``'s ops on masks and class indices. The regression/binary
losses live in ``nn_losses.py``."""

from __future__ import annotations

import numpy as np

from ..amp import _state as _autocast
from ..amp import cast_for
from ..autograd import Function
from ..random import generator_for
from ..tensor import Tensor
from . import cpu_rows, cuda_fused
from ._util import check_same_device, xp_of
from .graph_backward import cross_entropy_graph, nll_loss_graph

_REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")


# -- dropout -------------------------------------------------------------------------------


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
    if cpu_rows.fits(draws) and draws.dtype == input._array.dtype:
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


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    r"""Zero whole channels of a ``(N, C, L)`` or ``(C, L)`` input with probability ``p``."""
    return _feature_dropout("dropout1d", input, p, training, inplace, 3)


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    r"""Zero whole channels of a ``(N, C, H, W)`` or ``(C, H, W)`` input with probability ``p``."""
    return _feature_dropout("dropout2d", input, p, training, inplace, 4)


def dropout3d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    r"""Zero whole channels of a ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input."""
    return _feature_dropout("dropout3d", input, p, training, inplace, 5)


# -- embedding -----------------------------------------------------------------------------


_HEAVY_ROW = 8  # occurrences handled layer by layer before a row is summed on its own


def _scatter_add_rows(xp, out, rows, values):
    """``out[rows[i]] += values[i]``, repeated rows accumulating."""
    if xp is not np:
        import cupyx

        cupyx.scatter_add(out, rows, values)
        return
    n, num_rows = rows.size, out.shape[0]
    if num_rows <= 128:  # small vocabularies: one GEMM with the one-hot matrix
        onehot = np.zeros((num_rows, n), values.dtype)
        onehot[rows, np.arange(n)] = 1
        out += onehot @ values
        return
    # Sort once; the k-th occurrences of distinct rows form a duplicate-free layer that a
    # plain fancy-indexed add handles (np.add.at is several times slower).
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    counts = np.diff(np.r_[starts, n])
    unique = sorted_rows[starts]
    for k in range(min(int(counts.max()), _HEAVY_ROW)):
        sel = counts > k if k else slice(None)
        out[unique[sel]] += values[order[starts[sel] + k]]
    for i in np.flatnonzero(counts > _HEAVY_ROW):
        out[unique[i]] += values[order[starts[i] + _HEAVY_ROW : starts[i] + counts[i]]].sum(0)


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx=None, scale_grad_by_freq=False):
        ctx.save_for_backward(indices)
        ctx.num_weights = weight.shape[0]
        ctx.padding_idx = padding_idx
        ctx.scale_grad_by_freq = scale_grad_by_freq
        return xp_of(weight).take(weight, indices, axis=0)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        xp = xp_of(grad)
        dim = grad.shape[-1]
        rows = indices.reshape(-1)
        values = grad.reshape(-1, dim)
        if ctx.scale_grad_by_freq:
            counts = xp.bincount(rows, minlength=ctx.num_weights)
            values = values / counts[rows][:, None].astype(values.dtype)
        gw = xp.zeros((ctx.num_weights, dim), grad.dtype)
        _scatter_add_rows(xp, gw, rows, values)
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return gw, None


def _check_indices(input: Tensor, what: str = "embedding") -> None:
    if input._array.dtype not in (np.int64, np.int32):
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar "
            f"types: Long, Int; but got {input.dtype} instead (while checking arguments for {what})"
        )


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    r"""Look up rows of ``weight`` (num_embeddings, dim) at the integer ``input``
    indices; the result has shape ``input.shape + (dim,)``.

    Example::

        >>> F.embedding(ember.tensor([[0, 2]]), ember.randn(5, 3)).shape
        ember.Size([1, 2, 3])
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"embedding(): argument 'input' must be Tensor, not {type(input).__name__}")
    if weight.dim() != 2:
        raise RuntimeError(f"'weight' must be 2-D, got shape {list(weight.shape)}")
    if sparse:
        raise RuntimeError("ember has no sparse gradients; use sparse=False")
    num = weight.shape[0]
    _check_indices(input)
    check_same_device("embedding", input, weight)
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError("Padding_idx must be within num_embeddings")
        padding_idx %= num
    xp = xp_of(input._array)
    if input._array.size:
        lo, hi = int(input._array.min()), int(input._array.max())
        if lo < 0 or hi >= num:
            raise IndexError(
                f"index out of range in self (indices must be in [0, {num}); got min {lo}, "
                f"max {hi})"
            )
    if max_norm is not None:
        _embedding_renorm_(weight, xp.unique(input._array), max_norm, norm_type)
    return Embedding.apply(
        weight, input._array, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq
    )


def _embedding_renorm_(weight: Tensor, rows, max_norm: float, norm_type: float) -> None:
    """Rescale (in place, without a graph) the rows whose norm exceeds ``max_norm``."""
    xp = xp_of(weight._array)
    selected = weight._array[rows]
    norms = (xp.abs(selected) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(weight._array.dtype)
    weight._array[rows] = selected * scale[:, None]
    weight._bump_version()


# -- cross entropy and nll -----------------------------------------------------------------


def _classes_last(x, ndim_extra: int):
    """(N, C, d1, ...) -> (N*d1*..., C); (N, C) and (C,) stay 2-D without a copy."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if ndim_extra == 0:
        return x
    xp = xp_of(x)
    return xp.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _classes_back(g2, shape):
    """Inverse of ``_classes_last`` for a gradient of the input's ``shape``."""
    if len(shape) <= 2:
        return g2.reshape(shape)
    xp = xp_of(g2)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return xp.ascontiguousarray(xp.moveaxis(g2.reshape(moved), -1, 1))


class CrossEntropy(Function):
    """log-softmax + gather (or dot with target probabilities) + weighting + label
    smoothing + reduction in one node; backward is ``coef * softmax - target terms``.
    Forward keeps ``exp(x - max)`` and ``1 / sum`` so backward forms the softmax and
    the gradient in one pass."""

    differentiable_backward = True

    @staticmethod
    def forward(
        ctx,
        x,
        target,
        weight,
        *,
        ignore_index=-100,
        reduction="mean",
        smoothing=0.0,
        probs_target=False,
    ):
        xp = xp_of(x)
        in_shape, in_dtype = x.shape, x.dtype
        compute_dt = in_dtype if in_dtype.itemsize >= 4 else np.float32
        x2 = _classes_last(x, x.ndim - 2).astype(compute_dt, copy=False)
        rows, n_classes = x2.shape
        eps = smoothing
        w = None if weight is None else weight.astype(compute_dt, copy=False)
        if probs_target:
            shifted = x2 - x2.max(axis=1, keepdims=True)
            exps = xp.exp(shifted)
            total = exps.sum(axis=1, keepdims=True)
            logp = shifted
            logp -= xp.log(total)
            t2 = _classes_last(target, target.ndim - 2).astype(compute_dt, copy=False)
            if eps:
                t2 = t2 * (1 - eps) + eps / n_classes
            wt = t2 if w is None else t2 * w
            per_row = -(wt * logp).sum(axis=1)
            denom = rows
            ctx.save_for_backward(exps, 1 / total, wt, logp, target)
        else:
            t = target.reshape(-1)
            valid = t != ignore_index
            all_valid = bool(valid.all())
            t_safe = t if all_valid else xp.where(valid, t, 0)
            if t_safe.size and (bool((t_safe < 0).any()) or bool((t_safe >= n_classes).any())):
                bad = t_safe[(t_safe < 0) | (t_safe >= n_classes)][0]
                raise IndexError(f"Target {int(bad)} is out of bounds.")
            if cpu_rows.fits(x2):
                exps, total, picked, weighted_sum = cpu_rows.cross_entropy_forward(
                    x2, t_safe, w, eps
                )
            else:
                shifted = x2 - x2.max(axis=1, keepdims=True)
                picked = shifted[xp.arange(rows), t_safe]
                if eps:
                    weighted_sum = shifted.sum(axis=1) if w is None else shifted @ w
                exps = xp.exp(shifted, out=shifted)
                total = exps.sum(axis=1)
            lse = xp.log(total)
            w_t = xp.ones(rows, compute_dt) if w is None else w[t_safe]
            if not all_valid:
                w_t = w_t * valid
            per_row = w_t * (lse - picked)
            smooth = None
            if eps:
                w_sum = n_classes if w is None else w.sum()
                smooth = xp.full(rows, eps / n_classes, compute_dt)
                if not all_valid:
                    smooth *= valid
                per_row = (1 - eps) * per_row + smooth * (w_sum * lse - weighted_sum)
            denom = w_t.sum()
            ctx.save_for_backward(exps, 1 / total, t_safe, w_t, smooth, None)
        ctx.weight = w
        ctx.meta = (in_shape, in_dtype, target.shape, reduction, denom, eps, probs_target)
        if reduction == "none":
            out = per_row.reshape(target.shape if not probs_target else _row_shape(in_shape))
        elif reduction == "sum":
            out = per_row.sum()
        else:
            with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan, as torch
                out = per_row.sum() / denom
        return xp.asarray(out).astype(in_dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        in_shape, in_dtype, t_shape, reduction, denom, eps, probs_target = ctx.meta
        if isinstance(grad, Tensor):  # create_graph; a probability target stays a Tensor
            *saved, target = ctx.saved_tensors
            saved = [None if a is None else a._array for a in saved]
            return cross_entropy_graph(ctx, grad, target, saved)
        *saved, _ = ctx.saved_tensors
        xp = xp_of(grad)
        if reduction == "none":
            scale = grad.reshape(-1).astype(np.float32 if grad.dtype.itemsize < 4 else grad.dtype)
        else:
            scale = xp.asarray(grad / denom if reduction == "mean" else grad)
        w = ctx.weight
        gx = gt = None
        if probs_target:
            exps, inv_total, wt, logp = saved
            col = scale.reshape(-1, 1) if scale.ndim else scale
            if ctx.needs_input_grad[0]:
                gx = exps * (wt.sum(axis=1, keepdims=True) * inv_total)
                gx -= wt
                gx *= col
            if ctx.needs_input_grad[1]:
                gt2 = logp * (-(1 - eps) * col)
                if w is not None:
                    gt2 *= w
                gt = _classes_back(gt2, t_shape).astype(in_dtype, copy=False)
        else:
            exps, inv_total, t_safe, w_t, smooth = saved
            rows, n_classes = exps.shape
            coef = (1 - eps) * w_t
            if smooth is not None:
                coef = coef + smooth * (n_classes if w is None else w.sum())
            row_coef = coef * scale * inv_total
            if cpu_rows.fits(exps) and type(row_coef) is np.ndarray:
                smooth_rows = None if smooth is None else smooth * scale
                at_target = (1 - eps) * w_t * scale
                gx = cpu_rows.cross_entropy_backward(
                    exps, row_coef, t_safe, at_target, smooth_rows, w
                )
            else:
                gx = exps * row_coef[:, None]
                gx[xp.arange(rows), t_safe] -= (1 - eps) * w_t * scale
                if smooth is not None:
                    per_row = (smooth * scale)[:, None]
                    gx -= per_row if w is None else per_row * w
        if gx is not None:
            gx = _classes_back(gx, in_shape).astype(in_dtype, copy=False)
        return gx, gt, None


def _row_shape(in_shape):
    if len(in_shape) == 1:
        return ()
    return (in_shape[0],) + tuple(in_shape[2:])


def _check_class_input(name, input: Tensor, target: Tensor, weight):
    if input.dim() == 0:
        raise ValueError(
            f"{name}: input must have at least 1 dimension (classes), got a 0-D tensor"
        )
    n_classes = input.shape[0] if input.dim() == 1 else input.shape[1]
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != n_classes):
        raise RuntimeError(
            f"weight tensor should be defined either for all {n_classes} classes or no classes "
            f"but got weight tensor of shape: {list(weight.shape)}"
        )
    check_same_device(name, input, target, weight)
    return n_classes


def _check_index_target(input: Tensor, target: Tensor):
    if target._array.dtype.kind not in "iu" or target._array.dtype not in (np.int64, np.uint8):
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {_torch_name(target.dtype)}"
        )
    want = _row_shape(tuple(input.shape))
    if input.dim() >= 2 and target.dim() >= 1 and input.shape[0] != target.shape[0]:
        raise ValueError(
            f"Expected input batch_size ({input.shape[0]}) to match target batch_size ({target.shape[0]})."
        )
    if tuple(target.shape) != want:
        raise RuntimeError(
            f"expected target of shape {list(want)} for input of shape {list(input.shape)}, "
            f"got {list(target.shape)}"
        )


def _torch_name(dt) -> str:
    return {
        "int32": "Int",
        "int64": "Long",
        "float32": "Float",
        "float64": "Double",
        "int16": "Short",
        "int8": "Char",
        "uint8": "Byte",
        "bool": "Bool",
        "float16": "Half",
        "bfloat16": "BFloat16",
    }[dt.name]


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross entropy between ``input`` logits (C), (N, C) or (N, C, d1, ...) and
    ``target`` class indices (int64, shape without C) or class probabilities (the
    input's shape).

    Args:
        weight: per-class rescaling weight of shape (C,).
        ignore_index: class index whose targets contribute nothing (indices only).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``.
        label_smoothing: in [0, 1]; mixes the target with the uniform distribution.

    Example::

        >>> loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
    """
    if _autocast:
        input, target, weight = cast_for("cross_entropy", input, target, weight)
    check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    _check_class_input("cross_entropy", input, target, weight)
    if not input.is_floating_point():
        raise RuntimeError(f"cross_entropy: expected a floating point input, got {input.dtype}")
    probs_target = target.is_floating_point()
    if probs_target:
        if tuple(target.shape) != tuple(input.shape):
            if target.dim() == input.dim() - 1:
                raise RuntimeError(
                    f"expected target dtype to be Long or Byte, but got {_torch_name(target.dtype)}"
                )
            raise RuntimeError(
                f"cross_entropy: class-probability target must have the input's shape "
                f"{list(input.shape)}, got {list(target.shape)}"
            )
        if target.dtype is not input.dtype:
            target = target.to(input.dtype)
    else:
        _check_index_target(input, target)
    if not probs_target and cuda_fused.cross_entropy_applies(input, target, weight):
        return cuda_fused.cross_entropy(input, target, ignore_index, reduction, label_smoothing)
    w = None if weight is None else weight.detach()._array.astype(input._array.dtype, copy=False)
    return CrossEntropy.apply(
        input,
        target if probs_target else target._array,
        w,
        ignore_index=ignore_index,
        reduction=reduction,
        smoothing=float(label_smoothing),
        probs_target=probs_target,
    )


class NllLoss(Function):
    """``-weight[t] * input[t]`` over class dim 1, with ignore_index and reduction."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, target, weight, *, ignore_index=-100, reduction="mean"):
        xp = xp_of(x)
        x2 = _classes_last(x, x.ndim - 2)
        rows, n_classes = x2.shape
        t = target.reshape(-1)
        valid = t != ignore_index
        all_valid = bool(valid.all())
        t_safe = t if all_valid else xp.where(valid, t, 0)
        if t_safe.size and (bool((t_safe < 0).any()) or bool((t_safe >= n_classes).any())):
            bad = t_safe[(t_safe < 0) | (t_safe >= n_classes)][0]
            raise IndexError(f"Target {int(bad)} is out of bounds.")
        w_t = xp.ones(rows, x.dtype) if weight is None else weight[t_safe]
        if not all_valid:
            w_t = w_t * valid
        per_row = -w_t * x2[xp.arange(rows), t_safe]
        denom = w_t.sum()
        ctx.save_for_backward(t_safe, w_t)
        ctx.meta = (x.shape, rows, n_classes, reduction, denom)
        if reduction == "none":
            return per_row.reshape(target.shape)
        total = per_row.sum()
        if reduction == "sum":
            return xp.asarray(total, dtype=x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            return xp.asarray(total / denom, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        t_safe, w_t = ctx.saved_tensors
        if isinstance(grad, Tensor):  # create_graph: the gradient is linear in grad
            return nll_loss_graph(ctx, grad, t_safe._array, w_t._array)
        in_shape, rows, n_classes, reduction, denom = ctx.meta
        xp = xp_of(grad)
        if reduction == "none":
            g = grad.reshape(-1)
        elif reduction == "mean":
            g = grad / denom
        else:
            g = grad
        g2 = xp.zeros((rows, n_classes), grad.dtype)
        g2[xp.arange(rows), t_safe] = -w_t * g
        return _classes_back(g2, in_shape), None, None


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""Negative log likelihood of log-probabilities ``input`` (C), (N, C) or
    (N, C, d1, ...) at int64 class indices ``target``.

    Example::

        >>> loss = F.nll_loss(F.log_softmax(logits, dim=1), labels)
    """
    if _autocast:
        input, weight = cast_for("nll_loss", input, weight)
    check_reduction(reduction)
    _check_class_input("nll_loss", input, target, weight)
    _check_index_target(input, target)
    w = None if weight is None else weight.detach()._array.astype(input._array.dtype, copy=False)
    return NllLoss.apply(input, target._array, w, ignore_index=ignore_index, reduction=reduction)
