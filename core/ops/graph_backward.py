"""Helpers for the create_graph (double backward) paths of fused ops, and those paths
for ``cross_entropy`` and ``nll_loss``: the same closed-form gradients as their fused
backward in ``nn.py``, written with Tensor ops so that they are themselves
differentiable. Index targets, class weights, ``ignore_index`` and label smoothing enter
as constants."""

from __future__ import annotations

import numpy as np

from ..autograd import AccumulateGrad
from ..tensor import Tensor
from ._util import xp_of


def const(array) -> Tensor:
    """A constant (non-differentiable) Tensor."""
    return Tensor._make(array, False, None, 0)


def reconnect(ctx, index: int, values) -> Tensor:
    r"""A Tensor standing for input ``index`` of the op ``ctx`` in the graph, holding
    ``values``: the input's values, or values the caller's formula cannot tell from them
    (a softmax or a normalization is unchanged by a shift along its reduced dims).

    Lets a fused op keep only what its first-order backward needs and still
    differentiate its backward into the input's history under create_graph."""
    edge = ctx.next_edges[index]
    if edge is None:
        return const(values)
    node, output_nr = edge
    if type(node) is AccumulateGrad:
        leaf = node.variable()
        return const(values) if leaf is None else leaf
    return Tensor._make(values, True, node, output_nr)


def _rows(x: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N*d1*..., C) and (C,) -> (1, C), as Tensor ops."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def _unrows(g2: Tensor, shape) -> Tensor:
    """Inverse of ``_rows`` for a gradient of ``shape``."""
    if len(shape) <= 2:
        return g2.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return g2.reshape(moved).movedim(-1, 1)


def _row_scale(grad: Tensor, reduction: str, denom) -> Tensor:
    """The upstream gradient per row: a column for ``"none"``, else a scalar."""
    if reduction == "none":
        return grad.reshape(-1, 1)
    return grad / float(denom) if reduction == "mean" else grad


def _logits(ctx, saved):
    """The input of cross_entropy, rebuilt as log-probabilities (the logits less their
    log-sum-exp over the classes, which the softmax cannot tell from the logits) and
    connected to the input's history."""
    in_shape, in_dtype, _, _, _, _, probs_target = ctx.meta
    if probs_target:
        logp = saved[3]
    else:
        with np.errstate(divide="ignore"):
            logp = xp_of(saved[0]).log(saved[0] * saved[1].reshape(-1, 1))
    if len(in_shape) > 2:
        moved = (in_shape[0],) + tuple(in_shape[2:]) + (in_shape[1],)
        logp = xp_of(logp).moveaxis(logp.reshape(moved), -1, 1)
    return reconnect(ctx, 0, logp.reshape(in_shape).astype(in_dtype, copy=False))


def cross_entropy_graph(ctx, grad, target, saved):
    """``saved``: the arrays the fused CrossEntropy saved, with ``target`` (a Tensor
    for probability targets)."""
    in_shape, _, t_shape, reduction, denom, eps, probs_target = ctx.meta
    w = ctx.weight
    x = _logits(ctx, saved)
    x2 = _rows(x)
    n_classes = x2.shape[1]
    col = _row_scale(grad, reduction, denom)
    gx = gt = None
    if probs_target:
        t2 = _rows(target)
        if eps:
            t2 = t2 * (1 - eps) + eps / n_classes
        wt = t2 if w is None else t2 * const(w)
        if ctx.needs_input_grad[0]:
            gx = (x2.softmax(1) * wt.sum(dim=1, keepdim=True) - wt) * col
        if ctx.needs_input_grad[1]:
            gt2 = x2.log_softmax(1) * (-(1 - eps)) * col
            gt = _unrows(gt2 if w is None else gt2 * const(w), t_shape)
    elif ctx.needs_input_grad[0]:
        _, _, t_safe, w_t, smooth = saved
        xp = xp_of(t_safe)
        rows = x2.shape[0]
        coef = (1 - eps) * w_t
        if smooth is not None:
            coef = coef + smooth * (n_classes if w is None else w.sum())
        picked = xp.zeros((rows, n_classes), coef.dtype)
        picked[xp.arange(rows), t_safe] = (1 - eps) * w_t
        if smooth is not None:  # the uniform part of the smoothed target
            picked += smooth[:, None] * (1 if w is None else w)
        dt = x._array.dtype
        gx = (x2.softmax(1) * const(coef[:, None].astype(dt)) - const(picked.astype(dt))) * col
    if gx is not None:
        gx = _unrows(gx, in_shape)
    return gx, gt, None


def nll_loss_graph(ctx, grad, t_safe, w_t):
    in_shape, rows, n_classes, reduction, denom = ctx.meta
    xp = xp_of(grad._array)
    picked = xp.zeros((rows, n_classes), grad._array.dtype)
    picked[xp.arange(rows), t_safe] = -w_t
    return _unrows(const(picked) * _row_scale(grad, reduction, denom), in_shape), None, None
