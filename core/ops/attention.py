"""Scaled dot-product attention as one fused op: the softmax probabilities are saved and
backward is four matmuls and a softmax-Jacobian product. Under create_graph, backward
recomputes the probabilities from the saved inputs with Tensor ops, so that it is itself
differentiable (double backward)."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..parallel import parallel_for
from ..random import generator_for
from ..tensor import Tensor
from . import cpu_rows
from ._util import array_matmul, check_same_device, empty_views_like, sum_to, xp_of
from .declare import declared
from .graph_backward import const


class ScaledDotProductAttention(Function):
    autocast, differentiable_backward = "lower", True

    @staticmethod
    def forward(ctx, q, k, v, mask, scale, is_causal, repeat, keep):
        xp = xp_of(q)
        kv_shapes = (k.shape, v.shape)
        kv_inputs = (k, v)  # before repetition: what double backward differentiates
        if repeat > 1:  # grouped-query attention: each key/value head serves `repeat` heads
            k, v = xp.repeat(k, repeat, axis=-3), xp.repeat(v, repeat, axis=-3)
        ctx.meta = (scale, repeat, None if mask is None else mask.shape, kv_shapes, is_causal)
        if is_causal and mask is None and keep is None and _causal_blocks_fit(q, k, v):
            out, probs = _causal_forward(q, k, v, scale)
            ctx.save_for_backward(q, k, v, probs, None, None, *kv_inputs)
            return out
        if _batches_fit(q, k, v) and _mask_fits(mask, q, k):
            out, probs = _batched_forward(q, k, v, mask, keep, scale, is_causal)
            ctx.save_for_backward(q, k, v, probs, keep, mask, *kv_inputs)
            return out
        scores = array_matmul(q * scale, k.swapaxes(-1, -2))
        length, source = scores.shape[-2:]
        if is_causal:  # scores is a fresh array: mask it in place
            xp.copyto(scores, -np.inf, where=xp.triu(xp.ones((length, source), bool), 1))
        if mask is not None:
            scores = xp.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
        if cpu_rows.fits(scores) and scores.flags.c_contiguous:
            probs = cpu_rows.masked_softmax_(scores)
        else:
            top = scores.max(axis=-1, keepdims=True)
            top[top == -np.inf] = 0  # a fully masked row gives zeros, as PyTorch's math path
            scores -= top  # scores is always a fresh array here
            probs = xp.exp(scores, out=scores)
            total = probs.sum(axis=-1, keepdims=True)
            total[total == 0] = 1
            probs /= total
        dropped = probs if keep is None else probs * keep
        out = array_matmul(dropped, v)
        ctx.save_for_backward(q, k, v, probs, keep, mask, *kv_inputs)
        return out.astype(q.dtype, copy=False)  # NumPy computes bfloat16 in float32

    @staticmethod
    def backward(ctx, grad):
        q, k, v, probs, keep, mask, k_in, v_in = ctx.saved_tensors
        if isinstance(grad, Tensor):
            return _attention_graph(ctx, grad, q, k_in, v_in, keep, mask)
        scale, repeat, mask_shape, kv_shapes, _ = ctx.meta
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
        gq = gk = gv = gmask = None
        if isinstance(probs, tuple):  # row blocks of causal self-attention
            gq, gk, gv = _causal_backward(q, k, v, probs, grad, scale, (need_q, need_k, need_v))
        elif not need_mask and _batches_fit(q, k, v, grad):
            needs = (need_q, need_k, need_v)
            gq, gk, gv = _batched_backward(q, k, v, probs, keep, grad, scale, needs)
        else:
            if need_v:
                dropped = probs if keep is None else probs * keep
                gv = array_matmul(dropped.swapaxes(-1, -2), grad)
            if need_q or need_k or need_mask:
                gp = array_matmul(grad, v.swapaxes(-1, -2))
                if keep is not None:
                    gp *= keep
                if cpu_rows.fits(gp, probs) and gp.shape == probs.shape and gp.flags.c_contiguous:
                    gs = cpu_rows.softmax_jacobian_(gp, probs)
                else:
                    gp -= (gp * probs).sum(axis=-1, keepdims=True)  # gp is fresh: Jacobian
                    gs = gp
                    gs *= probs
                if need_mask:
                    gmask = sum_to(gs, mask_shape)
                if need_q:
                    gq = array_matmul(gs, k)
                    gq *= scale
                    gq = sum_to(gq, q.shape)
                if need_k:
                    gk = array_matmul(gs.swapaxes(-1, -2), q)
                    gk *= scale
        if gk is not None:
            gk = sum_to(_fold_heads(gk, repeat), kv_shapes[0])
        if gv is not None:
            gv = sum_to(_fold_heads(gv, repeat), kv_shapes[1])
        dt = q.dtype
        return tuple(g if g is None else g.astype(dt, copy=False) for g in (gq, gk, gv)) + (gmask,)


def _attention_graph(ctx, grad, q, k, v, keep, mask):
    """The backward as Tensor ops (create_graph): the probabilities are recomputed from
    the inputs so that the gradients carry their dependence on q, k, v and the mask."""
    scale, repeat, mask_shape, kv_shapes, is_causal = ctx.meta
    need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
    xp = xp_of(q._array)
    if repeat > 1:
        k, v = k.repeat_interleave(repeat, dim=-3), v.repeat_interleave(repeat, dim=-3)
    scores = (q * scale).matmul(k.transpose(-1, -2))
    length, source = scores.shape[-2:]
    dt = q._array.dtype
    if is_causal:
        blocked = xp.triu(xp.full((length, source), -np.inf, dt), 1)
        scores = scores + const(blocked)
    if mask is not None:
        if mask._array.dtype == bool:
            mask = const(xp.where(mask._array, 0, -np.inf).astype(dt))
        scores = scores + mask
    # softmax whose fully masked rows are zeros, as forward: shift and guard as constants
    top = scores._array.max(axis=-1, keepdims=True)
    top[top == -np.inf] = 0
    exps = (scores - const(top)).exp()
    total = exps.sum(dim=-1, keepdim=True)
    empty = (total._array == 0).astype(dt)
    probs = exps / (total + const(empty))
    gq = gk = gv = gmask = None
    if need_v:
        dropped = probs if keep is None else probs * keep
        gv = sum_to(_fold_heads(dropped.transpose(-1, -2).matmul(grad), repeat), kv_shapes[1])
    if need_q or need_k or need_mask:
        gp = grad.matmul(v.transpose(-1, -2))
        if keep is not None:
            gp = gp * keep
        gs = probs * (gp - (gp * probs).sum(dim=-1, keepdim=True))
        if need_mask:
            gmask = sum_to(gs, mask_shape)
        if need_q:
            gq = sum_to(gs.matmul(k) * scale, q.shape)
        if need_k:
            gk = gs.transpose(-1, -2).matmul(q) * scale
            gk = sum_to(_fold_heads(gk, repeat), kv_shapes[0])
    return gq, gk, gv, gmask


# Causal self-attention in blocks of query rows: block [r0, r1) attends to keys [0, r1)
# only, which skips about half of the masked score columns (NumPy float arrays).
_CAUSAL_BLOCK = 64


def _causal_blocks_fit(q, k, v):
    length = q.shape[-2]
    return (
        type(q) is np.ndarray
        and q.dtype in (np.float32, np.float64)
        and q.dtype == k.dtype == v.dtype
        and length >= 2 * _CAUSAL_BLOCK
        and k.shape[-2] == length
        and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
    )


def _causal_forward(q, k, v, scale):
    """Output and the per-block probabilities, split between the CPU threads over a batch
    dim: each thread runs the whole block loop for its slices. q, k and v are read where
    they lie (heads split from one projection stay strided views, BLAS reads them), and
    the output is laid out like q, so a following ``transpose(1, 2).reshape`` is a view."""
    length = q.shape[-2]
    q4, k4, v4 = (_four_d(a) for a in (q, k, v))
    out = _empty_like(q, v.shape[-1])
    out4 = _four_d(out)
    starts = range(0, length, _CAUSAL_BLOCK)
    lead = q.shape[:-2]
    probs = tuple(
        np.empty(lead + (min(_CAUSAL_BLOCK, length - r0), min(r0 + _CAUSAL_BLOCK, length)), q.dtype)
        for r0 in starts
    )
    probs4 = [_four_d(p) for p in probs]

    def slices(b0, b1):
        for r0, p_all in zip(starts, probs4):
            r1 = r0 + p_all.shape[-2]
            p = p_all[b0:b1]
            np.matmul(q4[b0:b1, :, r0:r1] * scale, k4[b0:b1, :, :r1].swapaxes(-1, -2), out=p)
            np.copyto(p, -np.inf, where=np.triu(np.ones((r1 - r0, r1), bool), r0 + 1))
            p -= p.max(axis=-1, keepdims=True)  # the diagonal is never masked: finite maxima
            np.exp(p, out=p)
            p /= p.sum(axis=-1, keepdims=True)
            np.matmul(p, v4[b0:b1, :, :r1], out=out4[b0:b1, :, r0:r1])

    parallel_for(slices, len(q4), q4.shape[1] * length * length)
    return out, probs


def _causal_backward(q, k, v, probs, grad, scale, needs):
    need_q, need_k, need_v = needs
    q4, k4, v4, g4 = (_four_d(a) for a in (q, k, v, grad))
    p4 = [_four_d(p) for p in probs]
    # the gradients laid out like their inputs (a view of q's layout chain stays a view);
    # q, k and v split from one projection: their gradients in one buffer, as they lay
    grads = empty_views_like((q, k, v)) if all(needs) and _blas_writes(q, k, v) else None
    if grads is None:
        grads = tuple(_empty_like(a) if need else None for a, need in zip((q, k, v), needs))
    gq, gk, gv = grads
    gq4, gk4, gv4 = (None if g is None else _four_d(g) for g in (gq, gk, gv))

    def slices(b0, b1):
        for g in (gk4, gv4):
            if g is not None:
                g[b0:b1] = 0  # accumulated over the row blocks below
        for r0, p_all in zip(range(0, q.shape[-2], _CAUSAL_BLOCK), p4):
            r1 = r0 + p_all.shape[-2]
            p, g = p_all[b0:b1], g4[b0:b1, :, r0:r1]
            if need_v:
                gv4[b0:b1, :, :r1] += np.matmul(p.swapaxes(-1, -2), g)
            if need_q or need_k:
                gs = np.matmul(g, v4[b0:b1, :, :r1].swapaxes(-1, -2))
                gs -= (gs * p).sum(axis=-1, keepdims=True)
                gs *= p
                if need_q:
                    np.matmul(gs, k4[b0:b1, :, :r1], out=gq4[b0:b1, :, r0:r1])
                if need_k:
                    gk4[b0:b1, :, :r1] += np.matmul(gs.swapaxes(-1, -2), q4[b0:b1, :, r0:r1])
        for g in (gq4, gk4):
            if g is not None:
                g[b0:b1] *= scale

    parallel_for(slices, len(q4), q4.shape[1] * q.shape[-2] * q.shape[-2])
    return gq, gk, gv


def _four_d(a):
    """``a`` (..., L, E) as a 4-D view (N, M, L, E) whose first dim is the one to split
    between threads (of size 2 or more when there is one); more than two batch dims are
    merged, which copies a strided array (our own outputs are dense: they stay views)."""
    if a.ndim > 4:
        a = a.reshape((-1,) + a.shape[-3:])
    while a.ndim < 4:
        a = a[None]
    if a.shape[0] == 1:
        a = a.swapaxes(0, 1)
    if a.strides[-1] != a.itemsize and a.strides[-2] != a.itemsize:
        a = np.ascontiguousarray(a)  # matrices BLAS cannot read in place (rare)
    return a


def _blas_writes(*arrays) -> bool:
    """Whether ``_four_d`` of each array is a view whose matrices BLAS can write."""
    return all(a.ndim <= 4 and a.itemsize in a.strides[-2:] for a in arrays)


def _empty_like(a, last=None):
    """An empty array of ``a``'s shape (last dim ``last``) in ``a``'s memory order, so that
    the transposes and reshapes that made ``a`` from a dense array undo to views. More than
    two batch dims, or an order whose matrices BLAS cannot write: C order, so that
    ``_four_d`` of it is a view."""
    shape = a.shape if last is None else a.shape[:-1] + (last,)
    if a.ndim <= 4:
        out = np.empty_like(a, shape=shape, order="K")
        if _blas_writes(out):  # its matrices are rows or columns
            return out
    return np.empty(shape, a.dtype)


# Attention over NumPy float arrays whose batch dims agree, split over the CPU threads by
# the first batch dim larger than one: each thread runs the whole computation (products,
# masking, softmax) for its batch entries.


def _batches_fit(q, k, v, grad=None):
    arrays = (q, k, v) if grad is None else (q, k, v, grad)
    scores = q.size // max(q.shape[-1], 1) * k.shape[-2]
    return (
        cpu_rows.fits(*arrays, elements=scores)
        and q.ndim >= 3
        and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
    )


def _mask_fits(mask, q, k):
    full = q.shape[:-2] + (q.shape[-2], k.shape[-2])
    return mask is None or (
        mask.ndim <= len(full) and np.broadcast_shapes(mask.shape, full) == full
    )


def _split_dim(arrays):
    """The arrays (full batch shape) indexed at 0 along their leading size-1 batch dims,
    so that their first dim is the one to split."""
    while arrays[0].ndim > 3 and arrays[0].shape[0] == 1:
        arrays = [a[0] for a in arrays]
    return arrays


def _batched_forward(q, k, v, mask, keep, scale, causal):
    length, source = q.shape[-2], k.shape[-2]
    full = q.shape[:-2] + (length, source)
    probs = np.empty(full, q.dtype)
    out = np.empty(q.shape[:-1] + v.shape[-1:], q.dtype)
    m = np.broadcast_to(mask, full) if mask is not None else probs
    kp = keep if keep is not None else probs
    qs, ks, vs, ms, keeps, ps, outs = _split_dim([q, k, v, m, kp, probs, out])
    above = np.triu(np.ones((length, source), bool), 1) if causal else None

    def batches(b0, b1):
        p = ps[b0:b1]
        np.matmul(qs[b0:b1] * scale, ks[b0:b1].swapaxes(-1, -2), out=p)
        if causal:
            np.copyto(p, -np.inf, where=above)
        if mask is not None:
            if mask.dtype == bool:
                np.copyto(p, -np.inf, where=~ms[b0:b1])
            else:
                p += ms[b0:b1]
        cpu_rows.softmax_rows_(p.reshape(-1, source))
        dropped = p if keep is None else p * keeps[b0:b1]
        np.matmul(dropped, vs[b0:b1], out=outs[b0:b1])

    parallel_for(batches, len(ps), ps[0].size)
    return out, probs


def _batched_backward(q, k, v, probs, keep, grad, scale, needs):
    need_q, need_k, need_v = needs
    gq = np.empty(q.shape, q.dtype) if need_q else q
    gk = np.empty(k.shape, q.dtype) if need_k else k
    gv = np.empty(v.shape, q.dtype) if need_v else v
    kp = keep if keep is not None else probs
    qs, ks, vs, ps, keeps, gs, gqs, gks, gvs = _split_dim([q, k, v, probs, kp, grad, gq, gk, gv])

    def batches(b0, b1):
        p, g = ps[b0:b1], gs[b0:b1]
        if need_v:
            dropped = p if keep is None else p * keeps[b0:b1]
            np.matmul(dropped.swapaxes(-1, -2), g, out=gvs[b0:b1])
        if need_q or need_k:
            gp = np.matmul(g, vs[b0:b1].swapaxes(-1, -2))
            if keep is not None:
                gp *= keeps[b0:b1]
            gp -= (gp * p).sum(axis=-1, keepdims=True)  # softmax Jacobian
            gp *= p
            if need_q:
                np.matmul(gp, ks[b0:b1], out=gqs[b0:b1])
                gqs[b0:b1] *= scale
            if need_k:
                np.matmul(gp.swapaxes(-1, -2), qs[b0:b1], out=gks[b0:b1])
                gks[b0:b1] *= scale

    parallel_for(batches, len(ps), ps[0].size)
    return gq if need_q else None, gk if need_k else None, gv if need_v else None


def _fold_heads(g, repeat):
    """Sum the gradients of the heads that shared one key/value head (GQA)."""
    if repeat == 1:
        return g
    shape = tuple(g.shape)
    g = g.reshape(shape[:-3] + (shape[-3] // repeat, repeat) + shape[-2:])
    return g.sum(dim=-3) if isinstance(g, Tensor) else g.sum(axis=-3)


@declared(ScaledDotProductAttention, method=False)
def scaled_dot_product_attention(
    query,
    key,
    value,
    attn_mask=None,
    dropout_p=0.0,
    is_causal=False,
    scale=None,
    enable_gqa=False,
) -> Tensor:
    r"""``softmax(query @ key^T * scale + mask) @ value`` over (..., L, E) / (..., S, E) /
    (..., S, Ev) inputs.

    Args:
        attn_mask: bool (True = may attend) or float (added to the scores), broadcastable
            to (..., L, S).
        dropout_p: dropout on the attention weights. is_causal: a lower-triangular mask
            (not together with ``attn_mask``). scale: default ``1 / sqrt(E)``.
        enable_gqa: let key/value have fewer heads (dim -3) than query.

    Example::

        >>> q = k = v = ember.randn(2, 4, 5, 8)
        >>> F.scaled_dot_product_attention(q, k, v, is_causal=True).shape
        ember.Size([2, 4, 5, 8])
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor) or t.ndim < 2:
            raise ValueError(
                f"scaled_dot_product_attention: expected {name} to be a Tensor with at least 2 "
                f"dims, got {getattr(t, 'shape', type(t).__name__)}"
            )
    if not (query.dtype == key.dtype == value.dtype) or not query.is_floating_point():
        raise RuntimeError(
            f"Expected query, key, and value to have the same floating dtype, but got "
            f"query.dtype: {query.dtype}, key.dtype: {key.dtype} and value.dtype: {value.dtype} instead."
        )
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(
            f"scaled_dot_product_attention: mismatched shapes: query {list(query.shape)}, key "
            f"{list(key.shape)}, value {list(value.shape)} (need query[-1] == key[-1] and "
            "key[-2] == value[-2])"
        )
    if is_causal and attn_mask is not None:
        raise RuntimeError(
            "_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True"
        )
    check_same_device("scaled_dot_product_attention", query, key, value, attn_mask)
    repeat = 1
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        if query.shape[-3] % key.shape[-3] or key.shape[-3] != value.shape[-3]:
            raise RuntimeError(
                f"scaled_dot_product_attention: number of query heads ({query.shape[-3]}) must "
                f"be a multiple of key/value heads ({key.shape[-3]}, {value.shape[-3]})"
            )
        repeat = query.shape[-3] // key.shape[-3]
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"attn_mask must be a Tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype.name != "bool" and attn_mask.dtype != query.dtype:
            raise RuntimeError(
                f"Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                f"attn_mask.dtype: {attn_mask.dtype} and query.dtype: {query.dtype} instead."
            )
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    keep = None
    if dropout_p > 0.0:
        xp = xp_of(query._array)
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
        shape = tuple(batch) + (query.shape[-2], key.shape[-2])
        rng = generator_for(None, query.device).rng
        keep = (rng.random(shape, dtype=np.float32) >= dropout_p).astype(query._array.dtype)
        keep = xp.asarray(keep) / (1.0 - dropout_p)
    return ScaledDotProductAttention.apply(
        query, key, value, attn_mask, scale=scale, is_causal=is_causal, repeat=repeat, keep=keep
    )
