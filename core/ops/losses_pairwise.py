"""Elementwise losses: mse, l1, smooth_l1, huber, binary cross entropy (on
probabilities and on logits), kl_div, cosine_embedding. Each is one Function whose
forward computes the loss and reduces, and whose backward is the closed form. Under
create_graph (double backward) backward takes a second path with the same closed form in
Tensor ops on the saved inputs; branch masks (where a loss is piecewise) are constants
there, as their derivative is zero almost everywhere."""

from __future__ import annotations

import warnings

import numpy as np

from .. import dtypes
from ..amp import _state as _autocast
from ..amp import cast_for
from ..autograd import Function
from ..tensor import Tensor
from ._util import check_same_device, sum_to, xp_of
from .dropout_embedding_ce import check_reduction
from .elementwise import _sigmoid, to_copy
from .graph_backward import const


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


class _PairLoss(Function):
    """Losses of (input, target) that are a function of ``diff = input - target``:
    ``kind`` picks the element loss and its derivative from ``_PAIR_KERNELS``."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, t, reduction="mean", param=1.0, kind=None):
        diff = x - t
        ctx.save_for_backward(diff, x, t)
        ctx.meta = (np.shape(x), np.shape(t), reduction, diff.size, param, kind)
        if kind == "mse" and reduction != "none":  # one BLAS dot, no temporary
            flat = diff.reshape(-1)
            if flat.dtype.itemsize < 4:
                flat = flat.astype(np.float32)
            total = xp_of(diff).dot(flat, flat)
            out = total / diff.size if reduction == "mean" else total
            return xp_of(diff).asarray(out, dtype=diff.dtype)
        return _reduce(_PAIR_KERNELS[kind][0](diff, param), reduction, diff.dtype)

    @staticmethod
    def backward(ctx, grad):
        diff, x, t = ctx.saved_tensors
        sx, st, reduction, n, param, kind = ctx.meta
        if isinstance(grad, Tensor):
            diff = x - t
            g = _upstream(grad, reduction, n) * _pair_grad_graph(diff, param, kind)
        elif kind == "mse":
            g = diff * (_upstream(grad, reduction, n) * 2)
        else:
            g = _upstream(grad, reduction, n) * _PAIR_KERNELS[kind][1](diff, param)
        gx = sum_to(g, sx) if ctx.needs_input_grad[0] else None
        gt = sum_to(-g, st) if ctx.needs_input_grad[1] else None
        return gx, gt


def _smooth_l1(d, beta):
    xp = xp_of(d)
    a = xp.abs(d)
    if beta == 0:
        return a
    return xp.where(a < beta, (0.5 / beta) * d * d, a - 0.5 * beta).astype(d.dtype, copy=False)


def _smooth_l1_grad(d, beta):
    xp = xp_of(d)
    if beta == 0:
        return xp.sign(d)
    return xp.where(xp.abs(d) < beta, d / beta, xp.sign(d)).astype(d.dtype, copy=False)


def _huber(d, delta):
    xp = xp_of(d)
    a = xp.abs(d)
    return xp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)).astype(d.dtype, copy=False)


def _huber_grad(d, delta):
    xp = xp_of(d)
    return xp.where(xp.abs(d) < delta, d, delta * xp.sign(d)).astype(d.dtype, copy=False)


def _pair_grad_graph(d, param, kind):
    """The element loss's derivative as Tensor ops (create_graph)."""
    if kind == "mse":
        return d * 2
    if kind == "l1" or (kind == "smooth_l1" and param == 0):
        return d.sign()
    inside = xp_of(d._array).abs(d._array) < param
    if kind == "smooth_l1":
        return _choose(inside, d / param, d.sign())
    return _choose(inside, d, d.sign() * param)  # huber


_PAIR_KERNELS = {
    "mse": (lambda d, _: d * d, None),
    "l1": (lambda d, _: xp_of(d).abs(d), lambda d, _: xp_of(d).sign(d)),
    "smooth_l1": (_smooth_l1, _smooth_l1_grad),
    "huber": (_huber, _huber_grad),
}


def _pair_operands(name, input: Tensor, target: Tensor):
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"{name}: expected Tensors, got {type(input).__name__} and {type(target).__name__}"
        )
    if _autocast:
        input, target = cast_for(name, input, target)
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
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


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight=None,
) -> Tensor:
    r"""Mean squared error ``(input - target)²``, reduced by ``reduction``.

    Example::

        >>> F.mse_loss(pred, y)
    """
    check_reduction(reduction)
    input, target = _pair_operands("mse_loss", input, target)
    if weight is not None:
        return _weighted(
            _PairLoss.apply(input, target, reduction="none", kind="mse"), weight, reduction
        )
    return _PairLoss.apply(input, target, reduction=reduction, kind="mse")


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight=None,
) -> Tensor:
    r"""Mean absolute error ``|input - target|``."""
    check_reduction(reduction)
    input, target = _pair_operands("l1_loss", input, target)
    if weight is not None:
        return _weighted(
            _PairLoss.apply(input, target, reduction="none", kind="l1"), weight, reduction
        )
    return _PairLoss.apply(input, target, reduction=reduction, kind="l1")


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    r"""``0.5 d² / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input - target``)."""
    check_reduction(reduction)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    input, target = _pair_operands("smooth_l1_loss", input, target)
    return _PairLoss.apply(input, target, reduction=reduction, param=float(beta), kind="smooth_l1")


def huber_loss(
    input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0, weight=None
) -> Tensor:
    r"""``0.5 d²`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError(
            f"huber_loss does not support non-positive values for delta, got {delta}"
        )
    input, target = _pair_operands("huber_loss", input, target)
    if weight is not None:
        return _weighted(
            _PairLoss.apply(input, target, reduction="none", param=float(delta), kind="huber"),
            weight,
            reduction,
        )
    return _PairLoss.apply(input, target, reduction=reduction, param=float(delta), kind="huber")


def _weighted(loss: Tensor, weight: Tensor, reduction: str) -> Tensor:
    loss = loss * weight
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / loss.numel()


# -- binary cross entropy ------------------------------------------------------------------


class BinaryCrossEntropy(Function):
    """``-w (t log x + (1 - t) log(1 - x))`` with the logs clamped at -100, as PyTorch."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, t, w, reduction="mean"):
        xp = xp_of(x)
        with np.errstate(divide="ignore"):
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        loss = -(t * log_x + (1 - t) * log_1mx)
        if w is not None:
            loss = loss * w
        ctx.save_for_backward(x, t, w)
        ctx.meta = (np.shape(t), np.shape(w), reduction, loss.size)
        return _reduce(loss.astype(x.dtype, copy=False), reduction, x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, t, w = ctx.saved_tensors
        st, sw, reduction, n = ctx.meta
        g = _upstream(grad, reduction, n)
        if w is not None:
            g = g * w
        gx = gt = None
        if isinstance(grad, Tensor):
            if ctx.needs_input_grad[0]:
                spread = (1 - x) * x
                spread = _choose(spread._array > 1e-12, spread, 1e-12)
                gx = sum_to(g * (x - t) / spread, x.shape)
            if ctx.needs_input_grad[1]:
                gt = sum_to(g * (_safe_log(1 - x) - _safe_log(x)), st)
            return gx, gt, None
        xp = xp_of(x)
        if ctx.needs_input_grad[0]:
            gx = g * (x - t) / xp.maximum((1 - x) * x, 1e-12)
            gx = sum_to(gx.astype(x.dtype, copy=False), x.shape)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                logit = xp.maximum(xp.log1p(-x), -100) - xp.maximum(xp.log(x), -100)
            gt = sum_to((g * logit).astype(x.dtype, copy=False), st)
        return gx, gt, None


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross entropy between probabilities ``input`` and ``target`` (same shape).

    Example::

        >>> F.binary_cross_entropy(ember.sigmoid(logits), y)
    """
    if _autocast:
        input, target, weight = cast_for("binary_cross_entropy", input, target, weight)
    check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}) is deprecated. Please ensure they have the same size."
        )
    input, target = _pair_operands("binary_cross_entropy", input, target)
    xp = xp_of(input._array)
    if input._array.size and (
        bool((input._array < 0).any())
        or bool((input._array > 1).any())
        or bool(xp.isnan(input._array).any())
    ):
        raise RuntimeError("all elements of input should be between 0 and 1")
    w = _weight_array("binary_cross_entropy", weight, input)
    return BinaryCrossEntropy.apply(input, target, w, reduction=reduction)


def _weight_array(name, weight, input: Tensor):
    if weight is None:
        return None
    check_same_device(name, input, weight)
    try:
        np.broadcast_shapes(tuple(weight.shape), tuple(input.shape))
    except ValueError:
        raise RuntimeError(
            f"{name}: weight of shape {list(weight.shape)} does not broadcast with input of "
            f"shape {list(input.shape)}"
        ) from None
    return weight.detach()._array.astype(input._array.dtype, copy=False)


class BinaryCrossEntropyWithLogits(Function):
    """``w [(1 - t) x + (1 + (pw - 1) t) softplus(-x)]``, computed stably."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, t, w, pw, reduction="mean"):
        xp = xp_of(x)
        sp_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # softplus(-x)
        if pw is None:
            loss = (1 - t) * x + sp_neg
        else:
            loss = (1 - t) * x + ((pw - 1) * t + 1) * sp_neg
        if w is not None:
            loss = loss * w
        ctx.save_for_backward(x, t, w, pw)
        ctx.meta = (np.shape(t), reduction, loss.size)
        return _reduce(loss.astype(x.dtype, copy=False), reduction, x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, t, w, pw = ctx.saved_tensors
        st, reduction, n = ctx.meta
        g = _upstream(grad, reduction, n)
        if w is not None:
            g = g * w
        gx = gt = None
        if isinstance(grad, Tensor):
            return _bce_logits_graph(ctx, g, x, t, pw, st)
        xp = xp_of(x)
        if ctx.needs_input_grad[0]:
            if pw is None:
                d = _sigmoid(x) - t
            else:
                d = (1 - t) - ((pw - 1) * t + 1) * _sigmoid(-x)
            gx = sum_to((g * d).astype(x.dtype, copy=False), x.shape)
        if ctx.needs_input_grad[1]:
            d = -x
            if pw is not None:
                d = d + (pw - 1) * (xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0))
            gt = sum_to((g * d).astype(x.dtype, copy=False), st)
        return gx, gt, None, None


def _bce_logits_graph(ctx, g, x, t, pw, st):
    gx = gt = None
    softplus_neg = (-x.abs()).exp().log1p() + (-x).relu()  # softplus(-x), stably
    if ctx.needs_input_grad[0]:
        if pw is None:
            d = x.sigmoid() - t
        else:
            d = (1 - t) - ((pw - 1) * t + 1) * (-x).sigmoid()
        gx = sum_to(g * d, x.shape)
    if ctx.needs_input_grad[1]:
        d = -x if pw is None else -x + (pw - 1) * softplus_neg
        gt = sum_to(g * d, st)
    return gx, gt, None, None


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    r"""Sigmoid + binary cross entropy in one numerically stable op.

    Args:
        weight: rescales each element's loss (broadcast with the input).
        pos_weight: weight of positive examples, broadcast along the last (class) dim.

    Example::

        >>> F.binary_cross_entropy_with_logits(logits, y, pos_weight=ember.full((3,), 2.0))
    """
    if _autocast:
        input, target, weight, pos_weight = cast_for(
            "binary_cross_entropy_with_logits", input, target, weight, pos_weight
        )
    check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"Target size ({target.shape}) must be the same as input size ({input.shape})"
        )
    input, target = _pair_operands("binary_cross_entropy_with_logits", input, target)
    w = _weight_array("binary_cross_entropy_with_logits", weight, input)
    pw = _weight_array("binary_cross_entropy_with_logits", pos_weight, input)
    return BinaryCrossEntropyWithLogits.apply(input, target, w, pw, reduction=reduction)


# -- kl divergence ---------------------------------------------------------------------------


class KlDiv(Function):
    """``t (log t - x)`` (0 where t = 0), or ``exp(t) (t - x)`` with ``log_target``."""

    differentiable_backward = True

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
    if _autocast:
        input, target = cast_for("kl_div", input, target)
    check_reduction(reduction, ("none", "mean", "sum", "batchmean"))
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
            "major release.",
            stacklevel=2,
        )
    input, target = _pair_operands("kl_div", input, target)
    return KlDiv.apply(input, target, reduction=reduction, log_target=log_target)


# -- cosine embedding ------------------------------------------------------------------------


class CosineEmbedding(Function):
    """``1 - cos(x1, x2)`` for y = 1, ``max(0, cos(x1, x2) - margin)`` for y = -1."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x1, x2, y, margin=0.0, reduction="mean"):
        xp = xp_of(x1)
        eps = 1e-12
        dot = (x1 * x2).sum(axis=-1)
        n1 = (x1 * x1).sum(axis=-1) + eps
        n2 = (x2 * x2).sum(axis=-1) + eps
        denom = xp.sqrt(n1 * n2)
        cos = dot / denom
        pos = y == 1
        neg = y == -1
        loss = xp.where(pos, 1 - cos, 0) + xp.where(neg, xp.maximum(cos - margin, 0), 0)
        active = xp.where(pos, -1.0, 0.0) + xp.where(neg & (cos > margin), 1.0, 0.0)
        ctx.save_for_backward(x1, x2, cos, n1, n2, denom, active.astype(x1.dtype))
        ctx.meta = (reduction, loss.size)
        return _reduce(loss.astype(x1.dtype, copy=False), reduction, x1.dtype)

    @staticmethod
    def backward(ctx, grad):
        x1, x2, cos, n1, n2, denom, active = ctx.saved_tensors
        reduction, n = ctx.meta
        if isinstance(grad, Tensor):  # the cosine and norms again, as Tensor ops
            n1 = (x1 * x1).sum(dim=-1) + 1e-12
            n2 = (x2 * x2).sum(dim=-1) + 1e-12
            denom = (n1 * n2).sqrt()
            cos = (x1 * x2).sum(dim=-1) / denom
            g = (_upstream(grad, reduction, n) * active).unsqueeze(-1)
            cos, denom, n1, n2 = (a.unsqueeze(-1) for a in (cos, denom, n1, n2))
            gx1 = g * (x2 / denom - cos * x1 / n1) if ctx.needs_input_grad[0] else None
            gx2 = g * (x1 / denom - cos * x2 / n2) if ctx.needs_input_grad[1] else None
            return gx1, gx2, None
        g = (_upstream(grad, reduction, n) * active)[..., None]
        cos = cos[..., None]
        gx1 = (
            g * (x2 / denom[..., None] - cos * x1 / n1[..., None])
            if ctx.needs_input_grad[0]
            else None
        )
        gx2 = (
            g * (x1 / denom[..., None] - cos * x2 / n2[..., None])
            if ctx.needs_input_grad[1]
            else None
        )
        return gx1, gx2, None


def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""Cosine embedding loss of (N, D) or (D,) pairs with labels 1 / -1."""
    check_reduction(reduction)
    if input1.shape != input2.shape:
        raise RuntimeError(
            f"cosine_embedding_loss: input1 {list(input1.shape)} and input2 {list(input2.shape)} must have the same shape"
        )
    if input1.dim() not in (1, 2) or tuple(target.shape) != tuple(input1.shape[:-1]):
        raise RuntimeError(
            f"cosine_embedding_loss: expected 1-D or 2-D inputs and a target of shape "
            f"{list(input1.shape[:-1])}, got inputs {list(input1.shape)} and target {list(target.shape)}"
        )
    input1, input2 = _pair_operands("cosine_embedding_loss", input1, input2)
    return CosineEmbedding.apply(
        input1, input2, target._array, margin=float(margin), reduction=reduction
    )
