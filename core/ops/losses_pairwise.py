"""Losses of an input against a target of its shape: the regression losses mse, l1,
smooth_l1 and huber (one Function of ``diff = input - target`` whose ``kind`` picks the
element loss and its closed-form derivative), the Poisson and Gaussian NLLs, the margin
losses (cosine embedding, margin ranking, hinge embedding, triplet) and the distances
they use (pairwise_distance, cosine_similarity). Under create_graph (double backward)
backward takes a second path with the same closed form in Tensor ops on the saved inputs;
branch masks (where a loss is piecewise) are constants there, as their derivative is zero
almost everywhere."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, no_grad
from ..tensor import Tensor
from ._util import sum_to, xp_of
from .declare import declared
from .elementwise import clamp, where
from .losses import (
    _choose,
    _pair_operands,
    _reduce,
    _reduce_tensor,
    _same_shape,
    _upstream,
    check_reduction,
)
from .reduce import norm
from .unary_math import log


class _PairLoss(Function):
    """Losses of (input, target) that are a function of ``diff = input - target``:
    ``kind`` picks the element loss and its derivative from ``_PAIR_KERNELS``."""

    autocast, differentiable_backward = "fp32", True

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


@declared(_PairLoss, method=False)
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


@declared(_PairLoss, method=False)
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


@declared(_PairLoss, method=False)
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


@declared(_PairLoss, method=False)
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


# -- likelihoods ---------------------------------------------------------------------------


@declared(None, method=False)
def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average=None,
    eps: float = 1e-8,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""Poisson negative log likelihood: ``exp(input) - target * input`` (log input) or
    ``input - target * log(input + eps)``; ``full`` adds Stirling's term."""
    check_reduction(reduction)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * log(input + eps)
    if full:
        big = target > 1
        safe = where(big, target, 1.0)  # keeps log finite (and its gradient) where unused
        stirling = safe * log(safe) - safe + 0.5 * log(2 * math.pi * safe)
        loss = loss + where(big, stirling, 0.0)
    return _reduce_tensor(loss, reduction)


@declared(None, method=False)
def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Tensor,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    r"""``0.5 * (log(var) + (input - target)² / var)`` with ``var`` clamped at ``eps``
    (the clamp does not affect the gradient, as in PyTorch)."""
    check_reduction(reduction)
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)  # one variance per sample: homoscedastic over the last dim
        elif not (tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.shape[-1] == 1):
            raise ValueError(
                f"var is of incorrect size: got {list(var.shape)} for input {list(input.shape)}"
            )
    if bool((var._array < 0).any()):
        raise ValueError("var has negative entry/entries")
    var = var.clone()
    with no_grad():
        var._array[...] = var._array.clip(eps, None)
    loss = 0.5 * (log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce_tensor(loss, reduction)


# -- margins and distances ----------------------------------------------------------------


class CosineEmbedding(Function):
    """``1 - cos(x1, x2)`` for y = 1, ``max(0, cos(x1, x2) - margin)`` for y = -1."""

    autocast, differentiable_backward = "fp32", True

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


@declared(CosineEmbedding, method=False)
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


@declared(None, method=False)
def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""``max(0, -target * (input1 - input2) + margin)``."""
    check_reduction(reduction)
    _same_shape("margin_ranking_loss", input1=input1, input2=input2, target=target)
    return _reduce_tensor(clamp(-target * (input1 - input2) + margin, min=0), reduction)


@declared(None, method=False)
def hinge_embedding_loss(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""``input`` where target is 1, ``max(0, margin - input)`` where it is -1."""
    check_reduction(reduction)
    margin_part = where(target != 1, clamp(margin - input, min=0), 0.0)
    self_part = where(target != -1, input, 0.0)
    return _reduce_tensor(margin_part + self_part, reduction)


@declared(None, method=False)
def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the pairwise p-norm distance."""
    check_reduction(reduction)
    if not (anchor.dim() == positive.dim() == negative.dim()):
        raise RuntimeError(
            f"The anchor, positive, and negative tensors are expected to have the same number "
            f"of dimensions, but got: anchor {anchor.dim()}D, positive {positive.dim()}D, and "
            f"negative {negative.dim()}D inputs"
        )
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_swap = pairwise_distance(positive, negative, p, eps)
        d_neg = where(d_swap < d_neg, d_swap, d_neg)
    return _reduce_tensor(clamp(d_pos - d_neg + margin, min=0), reduction)


@declared(None, method=False)
def pairwise_distance(
    x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> Tensor:
    r"""``||x1 - x2 + eps||_p`` over the last dim."""
    return norm(x1 - x2 + eps, p, dim=-1, keepdim=keepdim)


@declared(None, method=False)
def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    r"""``x1·x2 / max(||x1|| ||x2||, eps)`` along ``dim`` (inputs broadcast)."""
    dot = (x1 * x2).sum(dim)
    n1 = (x1 * x1).sum(dim)
    n2 = (x2 * x2).sum(dim)
    return dot / clamp(n1 * n2, min=eps * eps).sqrt()
