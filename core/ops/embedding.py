"""Embedding lookup: ``embedding`` (one Function; backward adds the gradient rows into
the weight's, repeated indices accumulating) with ``max_norm`` renormalisation."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import array_matmul, check_same_device, xp_of
from .declare import declared

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
        out += array_matmul(onehot, values)
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


@declared(Embedding, method=False)
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
