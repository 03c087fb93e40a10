"""Joining and splitting along a dim: cat/stack (with dtype promotion), hstack/vstack,
and split/chunk/tensor_split/unbind, whose pieces are views of the input."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..tensor import Tensor
from ._util import check_same_device, joined, wrap_dim, xp_of
from .declare import declared
from .movement import reshape

# -- split / unbind -------------------------------------------------------------------------------


class Split(Function):
    """Views of consecutive pieces of one dim; backward joins the pieces' grads."""

    is_view = True
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, dim, sizes):
        ctx.dim = dim
        lead = (slice(None),) * dim
        out, start = [], 0
        for s in sizes:
            out.append(x[lead + (slice(start, start + s),)])
            start += s
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        if isinstance(grads[0], Tensor):
            return cat(grads, ctx.dim)
        whole = joined(grads, ctx.dim)  # attention's q, k, v gradients already lie so
        return xp_of(grads[0]).concatenate(grads, axis=ctx.dim) if whole is None else whole


class Unbind(Function):
    is_view = True
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        lead = (slice(None),) * dim
        return tuple(x[lead + (i,)] for i in range(x.shape[dim]))

    @staticmethod
    def backward(ctx, *grads):
        if isinstance(grads[0], Tensor):
            return stack(grads, ctx.dim)
        return xp_of(grads[0]).stack(grads, axis=ctx.dim)


@declared(Split)
def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    r"""Split into pieces of ``split_size_or_sections`` (int: equal pieces, the last may be
    smaller; list: those sizes) along ``dim``; the pieces are views.

    Example::

        >>> [t.shape[0] for t in ember.arange(5).split(2)]
        [2, 2, 1]
    """
    if tensor._array.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = wrap_dim(dim, tensor._array.ndim)
    size = tensor._array.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step < 0 or (step == 0 and size != 0):
            raise RuntimeError(
                f"split_size can only be 0 if dimension size is 0, but got dimension size of {size}"
                if step == 0
                else f"split expects split_size be non-negative, but got split_size={step}"
            )
        sizes = [min(step, size - i) for i in range(0, size, step)] if size else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != size or any(s < 0 for s in sizes):
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's "
                f"size at dimension {d}), but got split_sizes={sizes}"
            )
    return Split.apply(tensor, dim=d, sizes=tuple(sizes))


@declared(Split)
def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    r"""Split into ``chunks`` near-equal views along ``dim`` (possibly fewer, as PyTorch)."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    if input._array.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    size = input._array.shape[wrap_dim(dim, input._array.ndim)]
    return split(input, max(-(-size // chunks), 1) if size else 0, dim)


@declared(Split)
def tensor_split(input: Tensor, indices_or_sections, dim: int = 0) -> tuple:
    r"""Split into ``n`` pieces whose sizes differ by at most one, or at the given indices."""
    d = wrap_dim(dim, input._array.ndim)
    size = input._array.shape[d]
    if isinstance(indices_or_sections, int):
        n = indices_or_sections
        if n <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {n}")
        sizes = [size // n + (1 if i < size % n else 0) for i in range(n)]
    else:
        bounds = [0] + [min(max(int(i), 0), size) for i in indices_or_sections] + [size]
        sizes = [max(b - a, 0) for a, b in zip(bounds, bounds[1:])]
    return Split.apply(input, dim=d, sizes=tuple(sizes))


@declared(Unbind)
def unbind(input: Tensor, dim: int = 0) -> tuple:
    r"""The slices along ``dim``, as a tuple of views without that dim."""
    if input._array.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    return Unbind.apply(input, dim=wrap_dim(dim, input._array.ndim))


# -- joins --------------------------------------------------------------------------------------


class Cat(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, *arrays, dim, skip_empty=False):
        ctx.dim = dim
        # PyTorch's legacy rule: 1-d empty tensors join anything (and get empty grads).
        ctx.skipped = [skip_empty and a.shape == (0,) for a in arrays]
        ctx.sizes = [0 if s else a.shape[dim] for a, s in zip(arrays, ctx.skipped)]
        kept = [a for a, s in zip(arrays, ctx.skipped) if not s] if skip_empty else arrays
        return xp_of(arrays[0]).concatenate(kept, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        lead = (slice(None),) * ctx.dim
        out, start = [], 0
        for s, skipped, needed in zip(ctx.sizes, ctx.skipped, ctx.needs_input_grad):
            if not needed:
                out.append(None)
            elif skipped:
                out.append(grad.reshape(-1)[:0])
            else:
                out.append(grad[lead + (slice(start, start + s),)])
            start += s
        return tuple(out)


class Stack(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim = dim
        return xp_of(arrays[0]).stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        lead = (slice(None),) * ctx.dim
        return tuple(
            grad[lead + (i,)] if needed else None for i, needed in enumerate(ctx.needs_input_grad)
        )


def _same_dtype(op: str, tensors) -> list:
    if not tensors:
        raise RuntimeError(f"{op}(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(
                f"{op}(): argument 'tensors' must be a sequence of Tensors, but element {i} is "
                f"{type(t).__name__}"
            )
    first = tensors[0]._array.dtype
    if all(t._array.dtype == first for t in tensors):
        if any(type(t._array) is not np.ndarray for t in tensors):
            check_same_device(op, *tensors)
        return list(tensors)
    check_same_device(op, *tensors)
    rt = tensors[0].dtype
    for t in tensors[1:]:
        rt = dtypes.promote_types(rt, t.dtype)
    return [t if t.dtype is rt else t.to(rt) for t in tensors]


@declared(Cat, autocast="cpu:promote", method=False)
def cat(tensors, dim: int = 0) -> Tensor:
    r"""Join tensors along an existing dim ``dim`` (dtypes are promoted).

    Example::

        >>> ember.cat([ember.zeros(2, 3), ember.ones(1, 3)]).shape
        ember.Size([3, 3])
    """
    tensors = _same_dtype("cat", list(tensors))
    kept = [t for t in tensors if t._array.shape != (0,)] or tensors[:1]
    ref = kept[0]._array.shape
    for i, t in enumerate(kept):
        if t._array.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    d = wrap_dim(dim, len(ref))
    for i, t in enumerate(kept):
        s = t._array.shape
        if len(s) != len(ref) or any(a != b for j, (a, b) in enumerate(zip(s, ref)) if j != d):
            shapes = ", ".join(str(list(u._array.shape)) for u in kept)
            raise RuntimeError(
                f"cat(): sizes of tensors must match except in dimension {d}, but got shapes "
                f"{shapes} (tensor number {i} in the list has shape {list(s)}, tensor 0 has "
                f"shape {list(ref)})"
            )
    if len(tensors) == 1:
        from .elementwise import clone

        return clone(tensors[0])
    return Cat.apply(*tensors, dim=d, skip_empty=len(kept) != len(tensors))


@declared(Stack, autocast="cpu:promote", method=False)
def stack(tensors, dim: int = 0) -> Tensor:
    r"""Join equal-shape tensors along a new dim ``dim``."""
    tensors = _same_dtype("stack", list(tensors))
    ref = tensors[0]._array.shape
    for i, t in enumerate(tensors):
        if t._array.shape != ref:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(ref)} at entry 0 "
                f"and {list(t._array.shape)} at entry {i}"
            )
    return Stack.apply(*tensors, dim=wrap_dim(dim, len(ref) + 1))


@declared(None, method=False)
def hstack(tensors) -> Tensor:
    r"""Join along dim 1 (dim 0 for 1-d tensors)."""
    tensors = [atleast_1d(t) for t in tensors]
    return cat(tensors, 0 if tensors[0]._array.ndim == 1 else 1)


@declared(None, method=False)
def vstack(tensors) -> Tensor:
    r"""Join along dim 0, treating 1-d tensors as rows."""
    return cat([atleast_2d(t) for t in tensors], 0)


@declared(None, method=False)
def atleast_1d(t: Tensor) -> Tensor:
    return reshape(t, (1,)) if t._array.ndim == 0 else t


@declared(None, method=False)
def atleast_2d(t: Tensor) -> Tensor:
    return reshape(t, (1,) * (2 - t._array.ndim) + t._array.shape) if t._array.ndim < 2 else t


concat = concatenate = cat
