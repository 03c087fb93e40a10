"""The binary losses: binary cross entropy on probabilities and on logits (each one
Function whose backward is the closed form, with a Tensor path for double backward), soft
margin and multilabel soft margin."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import check_same_device, sum_to, xp_of
from .activation_smooth import logsigmoid, softplus
from .declare import declared
from .losses import (
    _choose,
    _pair_operands,
    _reduce,
    _reduce_tensor,
    _safe_log,
    _same_shape,
    _upstream,
    check_reduction,
)
from .unary_math import _sigmoid


class BinaryCrossEntropy(Function):
    """``-w (t log x + (1 - t) log(1 - x))`` with the logs clamped at -100, as PyTorch."""

    autocast, differentiable_backward = "cuda:banned cpu:fp32", True

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


@declared(BinaryCrossEntropy, method=False)
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

    autocast, differentiable_backward = "fp32", True

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


@declared(BinaryCrossEntropyWithLogits, method=False)
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


# -- soft margins ------------------------------------------------------------------------


@declared(None, method=False)
def soft_margin_loss(
    input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    r"""``log(1 + exp(-target * input))``."""
    check_reduction(reduction)
    _same_shape("soft_margin_loss", input=input, target=target)
    return _reduce_tensor(softplus(-target * input), reduction)


@declared(None, method=False)
def multilabel_soft_margin_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    r"""Per-class logistic loss of (N, C) logits, averaged over the classes."""
    check_reduction(reduction)
    _same_shape("multilabel_soft_margin_loss", input=input, target=target)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(dim=-1) / input.shape[-1]
    return _reduce_tensor(loss, reduction)
