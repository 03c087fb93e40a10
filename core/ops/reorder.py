"""Copies that reorder or replicate elements: flip, roll, repeat/tile/repeat_interleave,
tril/triu and diag. (Unlike NumPy's ``flip``, PyTorch's returns a copy, not a view.)"""

from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from ._util import wrap_dim, xp_of
from .declare import declared
from .movement import _keyword, _shape_arg

# -- repeat -----------------------------------------------------------------


class Repeat(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, repeats):
        shape = (1,) * (len(repeats) - x.ndim) + x.shape
        ctx.shape = shape
        ctx.in_shape = x.shape
        return xp_of(x).tile(x.reshape(shape), repeats)

    @staticmethod
    def backward(ctx, grad):
        # (r0*s0, r1*s1, ...) -> (r0, s0, r1, s1, ...), then sum the r axes
        split = []
        for r, s in zip(grad.shape, ctx.shape):
            split += [r // s if s else 0, s]
        axes = tuple(range(0, 2 * len(ctx.shape), 2))
        g = grad.reshape(tuple(split))
        if isinstance(g, Tensor):
            return g.sum(dim=axes).reshape(ctx.in_shape)
        return g.sum(axis=axes).reshape(ctx.in_shape)


@declared(Repeat)
def repeat(self: Tensor, *repeats) -> Tensor:
    r"""Tile the tensor ``repeats[i]`` times along dim i (PyTorch's ``Tensor.repeat``)."""
    repeats = _shape_arg(repeats)
    if len(repeats) < self._array.ndim:
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions "
            f"of tensor (repeats {list(repeats)} for a tensor of shape {list(self.shape)})"
        )
    if any(r < 0 for r in repeats):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(repeats)}")
    return Repeat.apply(self, repeats=repeats)


@declared(Repeat)
def tile(input: Tensor, dims) -> Tensor:
    r"""Repeat the tensor ``dims[i]`` times along dim i; missing leading dims count as 1."""
    dims = _shape_arg((dims,))
    return repeat(input, (1,) * (input._array.ndim - len(dims)) + dims)


class RepeatInterleave(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, repeats, dim):
        ctx.in_shape, ctx.dim, ctx.repeats = x.shape, dim, repeats
        return xp_of(x).repeat(x, repeats, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        d, r, shape = ctx.dim, ctx.repeats, ctx.in_shape
        if isinstance(r, int):  # equal groups: split the dim and sum the copies
            g = grad.reshape(shape[:d] + (shape[d], r) + shape[d + 1 :])
            return g.sum(dim=d + 1) if isinstance(g, Tensor) else g.sum(axis=d + 1)
        if isinstance(grad, Tensor):
            raise RuntimeError(
                "double backward of repeat_interleave with tensor repeats is not implemented"
            )
        xp = xp_of(grad)
        owner = xp.repeat(xp.arange(shape[d]), r)
        out = xp.zeros(shape, grad.dtype)
        xp.add.at(out, (slice(None),) * d + (owner,), grad)
        return out


@declared(RepeatInterleave)
def repeat_interleave(
    input: Tensor, repeats, dim: int | None = None, *, output_size=None
) -> Tensor:
    r"""Repeat each element ``repeats`` times (an int, or a tensor with one count per
    element) along ``dim``; the flattened input when ``dim`` is None.

    Example::

        >>> ember.tensor([1, 2]).repeat_interleave(2)
        tensor([1, 1, 2, 2])
    """
    if dim is None:
        input, dim = input.reshape(-1), 0
    d = wrap_dim(dim, input._array.ndim)
    size = input._array.shape[d] if input._array.ndim else 1
    if isinstance(repeats, Tensor):
        counts = repeats._array
        if counts.dtype.kind not in "iu" or counts.ndim > 1:
            raise RuntimeError(
                f"repeat_interleave: repeats must be an int or a 1-d integer tensor, got "
                f"{repeats.dtype} of shape {list(repeats.shape)}"
            )
        if counts.size == 1:
            repeats = int(counts.reshape(()))
        elif counts.size != size:
            raise RuntimeError(
                f"repeat_interleave: repeats must have the same size as input along dim, but "
                f"got repeats.size(0) = {counts.size} and input.size({d}) = {size}"
            )
        elif (counts < 0).any():
            raise RuntimeError("repeat_interleave: repeats can not be negative")
        else:
            repeats = tuple(counts.tolist())  # a host sequence suits NumPy and CuPy
    if isinstance(repeats, int) and repeats < 0:
        raise RuntimeError(f"repeat_interleave: repeats can not be negative, got {repeats}")
    if input._array.ndim == 0:
        input = input.reshape(1)
    return RepeatInterleave.apply(input, repeats=repeats, dim=d)


@declared(None)
def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    r"""A square matrix with the 1-d ``input`` on diagonal ``diagonal``, or a copy of the
    ``diagonal``-th diagonal of a 2-d ``input``."""
    from .elementwise import clone
    from .indexing import IndexPut
    from .movement import diagonal as diagonal_view

    n = input._array.ndim
    k = int(diagonal)
    if n == 2:
        return clone(diagonal_view(input, k))
    if n != 1:
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {n}D")
    length = input._array.shape[0]
    xp = xp_of(input._array)
    side = length + abs(k)
    rows = xp.arange(length) + max(-k, 0)
    cols = xp.arange(length) + max(k, 0)
    zeros = Tensor._make(xp.zeros((side, side), input._array.dtype), False, None, 0)
    return IndexPut.apply(zeros, input, key=(rows, cols))


class Flip(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return xp_of(x).flip(x, axis=dims).copy()

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            return Flip.apply(grad, dims=ctx.dims)
        return xp_of(grad).flip(grad, axis=ctx.dims)


@declared(Flip)
def flip(input: Tensor, *dims, **kwargs) -> Tensor:
    r"""Reverse the order of elements along ``dims`` (a copy, as in PyTorch)."""
    dims = _shape_arg(_keyword("flip", dims, kwargs, "dims"))
    n = input._array.ndim
    wrapped = tuple(wrap_dim(d, n) for d in dims)
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"dims has duplicates, original flip dims size={len(dims)}")
    return Flip.apply(input, dims=wrapped)


class Roll(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return xp_of(x).roll(x, shifts, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        back = tuple(-s for s in ctx.shifts) if ctx.dims is not None else -ctx.shifts
        if isinstance(grad, Tensor):
            return Roll.apply(grad, shifts=back, dims=ctx.dims)
        return xp_of(grad).roll(grad, back, axis=ctx.dims)


@declared(Roll)
def roll(input: Tensor, shifts, dims=None) -> Tensor:
    r"""Rotate elements along ``dims`` by ``shifts`` (the flattened tensor when dims is None)."""
    if dims is None:
        if not isinstance(shifts, int):
            if len(shifts) != 1:
                raise RuntimeError(
                    f"roll: shifts must have one element when dims is not given, got {shifts}"
                )
            shifts = int(shifts[0])
        return Roll.apply(input, shifts=shifts, dims=None)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(int(s) for s in shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(
            f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}"
        )
    dims = tuple(wrap_dim(d, input._array.ndim) for d in dims)
    return Roll.apply(input, shifts=shifts, dims=dims)


class Tril(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, diagonal, upper):
        ctx.diagonal, ctx.upper = diagonal, upper
        xp = xp_of(x)
        return xp.triu(x, diagonal) if upper else xp.tril(x, diagonal)

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            return Tril.apply(grad, diagonal=ctx.diagonal, upper=ctx.upper)
        xp = xp_of(grad)
        return xp.triu(grad, ctx.diagonal) if ctx.upper else xp.tril(grad, ctx.diagonal)


@declared(Tril)
def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    r"""Zero the elements above the ``diagonal``-th diagonal of the last two dims."""
    if input._array.ndim < 2:
        raise RuntimeError(
            f"tril: input tensor must have at least 2 dimensions, got {input._array.ndim}"
        )
    return Tril.apply(input, diagonal=int(diagonal), upper=False)


@declared(Tril)
def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    r"""Zero the elements below the ``diagonal``-th diagonal of the last two dims."""
    if input._array.ndim < 2:
        raise RuntimeError(
            f"triu: input tensor must have at least 2 dimensions, got {input._array.ndim}"
        )
    return Tril.apply(input, diagonal=int(diagonal), upper=True)


@declared(Flip)
def fliplr(input: Tensor) -> Tensor:
    r"""Reverse the order of the columns (dim 1)."""
    return flip(input, 1)


@declared(Flip)
def flipud(input: Tensor) -> Tensor:
    r"""Reverse the order of the rows (dim 0)."""
    return flip(input, 0)
