"""The losses over class distributions: cross entropy (one fused Function: log-softmax,
gather or target probabilities, weights, label smoothing and reduction), nll and kl_div;
and the helpers every loss file shares (reductions, operand checks). Binary losses are
in ``losses_binary.py``; losses of an input against a target of its shape (regression,
likelihoods, margins, distances) in ``losses_pairwise.py``."""

from __future__ import annotations

import warnings

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..tensor import Tensor
from . import cpu_rows, cuda_fused
from ._util import check_same_device, sum_to, xp_of
from .cast import to_copy
from .declare import declared
from .graph_backward import const, cross_entropy_graph, nll_loss_graph

# -- what every loss file shares ---------------------------------------------------------

_REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce(loss, reduction: str, dtype):
    xp = xp_of(loss)
    if reduction == "none":
        return loss
    acc = np.float32 if loss.dtype.itemsize < 4 else loss.dtype  # half types sum in float32
    out = loss.sum(dtype=acc) if reduction == "sum" else loss.mean(dtype=acc)
    return xp.asarray(out, dtype=dtype)


def _choose(cond, a, b):
    """``where(cond, a, b)`` for a constant bool array ``cond`` and finite Tensors or
    numbers ``a``, ``b``, built from products so that it stays differentiable."""
    dt = next(v._array.dtype for v in (a, b) if isinstance(v, Tensor))
    m = cond.astype(dt)
    return a * const(m) + b * const(1 - m)


def _safe_log(y, floor=-100.0):
    """``max(log(y), floor)`` on a Tensor, with the clamped entries constant (their
    derivative is zero) and no infinities anywhere in the graph."""
    xp = xp_of(y._array)
    with np.errstate(divide="ignore"):
        ok = xp.log(y._array) > floor
    return _choose(ok, _choose(ok, y, 1.0).log(), floor)


def _upstream(grad, reduction: str, n: int):
    """The per-element upstream gradient of a reduced loss."""
    if reduction == "mean":
        return grad / n
    return grad


def _reduce_tensor(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _same_shape(name: str, **tensors) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k} {list(s)}" for k, s in shapes.items())
        raise ValueError(f"{name}: expected tensors of the same shape, got {listed}")


def _pair_operands(name, input: Tensor, target: Tensor):
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"{name}: expected Tensors, got {type(input).__name__} and {type(target).__name__}"
        )
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=4,  # past this helper, the loss and its declared autocast prologue
        )
        try:
            np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise RuntimeError(
                f"{name}: the size of input {list(input.shape)} must match the size of target "
                f"{list(target.shape)} (or broadcast with it)"
            ) from None
    check_same_device(name, input, target)
    dt = dtypes.promote_types(input.dtype, target.dtype)
    if not dt.is_floating_point:
        raise RuntimeError(
            f"{name}: expected floating point input and target, got {input.dtype} and {target.dtype}"
        )
    if input.dtype is not dt:
        input = to_copy(input, None, dt)
    if target.dtype is not dt:
        target = to_copy(target, None, dt)
    return input, target


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

    autocast, differentiable_backward = "fp32", True

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


@declared(CrossEntropy, method=False)
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

    autocast, differentiable_backward = "fp32", True

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


@declared(NllLoss, method=False)
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
    check_reduction(reduction)
    _check_class_input("nll_loss", input, target, weight)
    _check_index_target(input, target)
    w = None if weight is None else weight.detach()._array.astype(input._array.dtype, copy=False)
    return NllLoss.apply(input, target._array, w, ignore_index=ignore_index, reduction=reduction)


# -- kl divergence -----------------------------------------------------------------------


class KlDiv(Function):
    """``t (log t - x)`` (0 where t = 0), or ``exp(t) (t - x)`` with ``log_target``."""

    autocast, differentiable_backward = "fp32", True

    @staticmethod
    def forward(ctx, x, t, reduction="mean", log_target=False):
        xp = xp_of(x)
        if log_target:
            loss = xp.exp(t) * (t - x)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                loss = xp.where(t > 0, t * (xp.log(t) - x), 0 * x * t).astype(x.dtype, copy=False)
        ctx.save_for_backward(x, t)
        n = loss.size
        ctx.meta = (np.shape(x), np.shape(t), reduction, n, log_target)
        if reduction == "batchmean":
            batch = x.shape[0] if x.ndim else 1
            ctx.meta = (np.shape(x), np.shape(t), reduction, batch, log_target)
            return xp.asarray(loss.sum() / batch, dtype=x.dtype)
        return _reduce(loss, reduction, x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved_tensors
        sx, st, reduction, n, log_target = ctx.meta
        g = grad / n if reduction in ("mean", "batchmean") else grad
        gx = gt = None
        if isinstance(grad, Tensor):
            if ctx.needs_input_grad[0]:
                gx = sum_to(g * -(t.exp() if log_target else t), sx)
            if ctx.needs_input_grad[1]:
                if log_target:
                    d = t.exp() * (t - x + 1)
                else:
                    positive = t._array > 0
                    d = _choose(positive, _choose(positive, t, 1.0).log() + 1 - x, 0.0)
                gt = sum_to(g * d, st)
            return gx, gt
        xp = xp_of(x)
        if ctx.needs_input_grad[0]:
            gx = sum_to((g * -(xp.exp(t) if log_target else t)).astype(x.dtype, copy=False), sx)
        if ctx.needs_input_grad[1]:
            if log_target:
                d = xp.exp(t) * (t - x + 1)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    d = xp.where(t > 0, xp.log(t) + 1 - x, 0 * x)
            gt = sum_to((g * d).astype(x.dtype, copy=False), st)
        return gx, gt


@declared(KlDiv, method=False)
def kl_div(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    r"""KL divergence with ``input`` as log-probabilities; ``reduction="batchmean"``
    gives the mathematically correct KL (sum / batch size).

    Example::

        >>> F.kl_div(F.log_softmax(student, 1), F.softmax(teacher, 1), reduction="batchmean")
    """
    check_reduction(reduction, ("none", "mean", "sum", "batchmean"))
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
            "major release.",
            stacklevel=3,
        )
    input, target = _pair_operands("kl_div", input, target)
    return KlDiv.apply(input, target, reduction=reduction, log_target=log_target)


# -- cosine embedding ------------------------------------------------------------------------
