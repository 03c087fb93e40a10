"""Less common losses, activations and dropouts, composed from differentiable ops (so
their gradients, double gradients included, come from autograd): margin/ranking
losses, Poisson and Gaussian NLL, distances, GLU, softmin, threshold, the shrinks,
RReLU and alpha dropout."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..random import generator_for
from ..tensor import Tensor
from .activation import softplus
from .dropout_embedding_ce import check_reduction
from .elementwise import clamp, log, where
from .nn_activation import logsigmoid
from .reduce import norm
from .scan import softmax


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _same_shape(name: str, **tensors) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k} {list(s)}" for k, s in shapes.items())
        raise ValueError(f"{name}: expected tensors of the same shape, got {listed}")


# -- distances ----------------------------------------------------------------------------------


def pairwise_distance(
    x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> Tensor:
    r"""``||x1 - x2 + eps||_p`` over the last dim."""
    return norm(x1 - x2 + eps, p, dim=-1, keepdim=keepdim)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    r"""``x1·x2 / max(||x1|| ||x2||, eps)`` along ``dim`` (inputs broadcast)."""
    dot = (x1 * x2).sum(dim)
    n1 = (x1 * x1).sum(dim)
    n2 = (x2 * x2).sum(dim)
    return dot / clamp(n1 * n2, min=eps * eps).sqrt()


# -- losses -------------------------------------------------------------------------------------


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
    return _reduce(clamp(-target * (input1 - input2) + margin, min=0), reduction)


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
    return _reduce(margin_part + self_part, reduction)


def soft_margin_loss(
    input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    r"""``log(1 + exp(-target * input))``."""
    check_reduction(reduction)
    _same_shape("soft_margin_loss", input=input, target=target)
    return _reduce(softplus(-target * input), reduction)


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
    return _reduce(loss, reduction)


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
    return _reduce(clamp(d_pos - d_neg + margin, min=0), reduction)


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
    return _reduce(loss, reduction)


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
    return _reduce(loss, reduction)


# -- activations --------------------------------------------------------------------------------


def glu(input: Tensor, dim: int = -1) -> Tensor:
    r"""Gated linear unit: split ``input`` in halves ``a, b`` along ``dim``; ``a * sigmoid(b)``."""
    if input.shape[dim] % 2:
        raise RuntimeError(
            f"Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}"
        )
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    r"""``softmax(-input)``."""
    return softmax(-input, dim, dtype)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    r"""``input`` where above ``threshold``, else ``value``."""
    out = where(input > threshold, input, value)
    return input._inplace_from(out) if inplace else out


def tanhshrink(input: Tensor) -> Tensor:
    r"""``input - tanh(input)``."""
    return input - input.tanh()


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    r"""Shrink towards zero by ``lambd``; zero inside ``[-lambd, lambd]``."""
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, 0.0))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    r"""``input`` where ``|input| > lambd``, else 0."""
    return where(input.abs() > lambd, input, 0.0)


def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
    *,
    generator=None,
) -> Tensor:
    r"""Randomized leaky ReLU: negative inputs scaled by a slope drawn from
    U(lower, upper) per element while training, by ``(lower + upper) / 2`` otherwise."""
    if training:
        slope = _uniform_like(input, lower, upper, generator)
    else:
        slope = (lower + upper) / 2
    out = where(input >= 0, input, input * slope)
    return input._inplace_from(out) if inplace else out


def _uniform_like(input: Tensor, low: float, high: float, generator=None) -> Tensor:
    rng = generator_for(generator, input.device).rng
    draw_dt = input._array.dtype if input._array.dtype in (np.float32, np.float64) else np.float32
    draws = rng.random(input.shape, dtype=draw_dt) * (high - low) + low
    return Tensor._make(draws.astype(input._array.dtype, copy=False), False, None, 0)


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


def alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    r"""Dropout that keeps the mean and variance of SELU activations (for SELU nets)."""
    out = _alpha_dropout(input, p, training, feature=False)
    return input._inplace_from(out) if inplace and out is not input else out


def feature_alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    r"""Alpha dropout of whole channels."""
    out = _alpha_dropout(input, p, training, feature=True)
    return input._inplace_from(out) if inplace and out is not input else out
