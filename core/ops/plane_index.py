"""Gather from and scatter into the (N, C) planes of a tensor by flat in-plane index:
max pooling's output is a gather at the argmax positions, its gradient a scatter-add
back, and ``max_unpool`` a scatter. The two ops are each other's gradients, so every
order of gradient through max pooling is built from them."""

from __future__ import annotations

import math

from ..autograd import Function
from ..tensor import Tensor
from ._util import xp_of


def _flat_positions(xp, indices, plane_size):
    """Indices into the flattened (N * C * plane) array."""
    planes = math.prod(indices.shape[:2])
    base = (xp.arange(planes, dtype=indices.dtype) * plane_size).reshape(
        indices.shape[:2] + (1,) * (indices.ndim - 2)
    )
    return (indices + base).reshape(-1)


def plane_gather(x, indices):
    """``out[n, c, ...] = x[n, c].flat[indices[n, c, ...]]`` on arrays."""
    xp = xp_of(x)
    plane = math.prod(x.shape[2:])
    flat = x.reshape(-1)
    return flat[_flat_positions(xp, indices, plane)].reshape(indices.shape)


def plane_scatter(values, indices, plane_shape, accumulate=True):
    """zeros (N, C, *plane_shape) with ``values`` added (or written) at ``indices``."""
    xp = xp_of(values)
    plane = math.prod(plane_shape)
    positions = _flat_positions(xp, indices, plane)
    size = math.prod(indices.shape[:2]) * plane
    if accumulate:
        out = xp.bincount(positions, weights=values.reshape(-1), minlength=size)
        out = out.astype(values.dtype, copy=False)
    else:
        out = xp.zeros(size, values.dtype)
        out[positions] = values.reshape(-1)
    return out.reshape(indices.shape[:2] + tuple(plane_shape))


class PlaneGather(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, indices):
        ctx.indices, ctx.plane_shape = indices, x.shape[2:]
        return plane_gather(x, indices)

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            return PlaneScatter.apply(grad, ctx.indices, plane_shape=ctx.plane_shape), None
        return plane_scatter(grad, ctx.indices, ctx.plane_shape), None


class PlaneScatter(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, values, indices, plane_shape, accumulate=True):
        ctx.indices = indices
        return plane_scatter(values, indices, plane_shape, accumulate)

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            return PlaneGather.apply(grad, ctx.indices), None
        return plane_gather(grad, ctx.indices), None
