"""Movement ops: views and shape changes (view/reshape, permute/transpose, squeeze,
expand, narrow, diagonal). Joins and splits (cat/stack/split/chunk/unbind) live in
``join.py``; copies that reorder or replicate elements (flip, roll, repeat, tril) in
``reorder.py``.

A view op's output shares its input's memory and version counter (``is_view``), as in
PyTorch; ``reshape`` copies only when the strides leave no other choice.
"""

from __future__ import annotations

import operator

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..tensor import Tensor
from ._util import sum_to, wrap_dim, xp_of
from .declare import declared

# -- shape arguments ------------------------------------------------------------------------


def _shape_arg(shape) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` both give ``(2, 3)``."""
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = shape[0]
    try:
        return tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(
            f"shape must be a sequence of ints, got {[type(s).__name__ for s in shape]}"
        ) from None


def _keyword(op: str, args: tuple, kwargs: dict, name: str) -> tuple:
    """Accept the sequence argument by keyword too (``torch.permute(x, dims=(1, 0))``)."""
    if kwargs:
        if args or set(kwargs) != {name}:
            raise TypeError(f"{op}() got unexpected arguments {sorted(kwargs)}")
        return (kwargs[name],)
    return args


def _infer_shape(shape: tuple, numel: int) -> tuple:
    """Resolve one ``-1`` in ``shape`` and check the element count, with PyTorch's errors."""
    infer = None
    known = 1
    for i, s in enumerate(shape):
        if s == -1:
            if infer is not None:
                raise RuntimeError("only one dimension can be inferred")
            infer = i
        elif s < 0:
            raise RuntimeError(f"invalid shape dimension {s}")
        else:
            known *= s
    if infer is None:
        if known != numel:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        return shape
    if known == 0:
        raise RuntimeError(
            f"cannot reshape tensor of {numel} elements into shape {list(shape)} because the "
            "unspecified dimension size -1 can be any value and is ambiguous"
        )
    if numel % known:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape[:infer] + (numel // known,) + shape[infer + 1 :]


# -- view / reshape -----------------------------------------------------------------------------


class Reshape(Function):
    """Reshape; a view whenever the strides allow it (NumPy's rule is PyTorch's)."""

    is_view = True
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape)


class View(Reshape):
    """Reshape that must not copy: PyTorch's ``view``."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        out = x.reshape(shape)
        if out.size > 1 and not xp_of(x).may_share_memory(out, x):
            raise RuntimeError(
                "view size is not compatible with input tensor's size and stride (at least one "
                "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
            )
        return out


@declared(Reshape)
def reshape(input: Tensor, *shape, **kwargs) -> Tensor:
    r"""Same elements in a new shape (one dim may be -1); a view when possible.

    Example::

        >>> ember.arange(6).reshape(2, -1).shape
        ember.Size([2, 3])
    """
    shape = _infer_shape(_shape_arg(_keyword("reshape", shape, kwargs, "shape")), input._array.size)
    if shape == input._array.shape:
        return Reshape.apply(input, shape=shape) if input.requires_grad else _alias(input)
    return Reshape.apply(input, shape=shape)


def _alias(x: Tensor) -> Tensor:
    """A new Tensor over the same array, sharing version counter (a no-op view)."""
    t = Tensor._make(x._array, False, None, 0)
    t._version_counter = x._version_counter
    t._base = x._base if x._base is not None else x
    return t


@declared(View)
def view(self: Tensor, *shape) -> Tensor:
    r"""A view with a new shape; raises when the strides make a view impossible.
    ``view(dtype)`` reinterprets the bytes as another dtype of the same size."""
    if len(shape) == 1 and isinstance(shape[0], dtypes.dtype | np.dtype | type | str):
        return _view_dtype(self, dtypes.to_dtype(shape[0]))
    shape = _infer_shape(_shape_arg(shape), self._array.size)
    return View.apply(self, shape=shape)


def _view_dtype(self: Tensor, dt) -> Tensor:
    if dt.itemsize != self._array.itemsize:
        raise RuntimeError(
            f"view(dtype): {self.dtype} and {dt} differ in element size "
            f"({self._array.itemsize} vs {dt.itemsize} bytes)"
        )
    t = Tensor._make(self._array.view(dt.np), False, None, 0)
    t._version_counter = self._version_counter
    t._base = self._base if self._base is not None else self
    return t


@declared(Reshape)
def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    r"""Merge dims ``start_dim..end_dim`` into one (a 0-d tensor becomes 1-d)."""
    shape = input._array.shape
    if not shape:
        return Reshape.apply(input, shape=(1,))
    s, e = wrap_dim(start_dim, len(shape)), wrap_dim(end_dim, len(shape))
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return input
    merged = 1
    for n in shape[s : e + 1]:
        merged *= n
    return Reshape.apply(input, shape=shape[:s] + (merged,) + shape[e + 1 :])


@declared(Reshape)
def unflatten(input: Tensor, dim: int, sizes) -> Tensor:
    r"""Split dim ``dim`` into ``sizes`` (one of which may be -1)."""
    shape = input._array.shape
    d = wrap_dim(dim, len(shape))
    sizes = _shape_arg((sizes,))
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    try:
        sizes = _infer_shape(sizes, shape[d])
    except RuntimeError:
        raise RuntimeError(
            f"unflatten: provided sizes {list(sizes)} don't multiply up to the size of dim "
            f"{dim} ({shape[d]}) in the input tensor"
        ) from None
    return Reshape.apply(input, shape=shape[:d] + sizes + shape[d + 1 :])


@declared(Reshape)
def squeeze(input: Tensor, dim=None) -> Tensor:
    r"""Remove dims of size 1 (all of them, or those in ``dim``, an int or tuple)."""
    shape = input._array.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        drop = {wrap_dim(d, len(shape)) for d in dims}
        new = tuple(s for i, s in enumerate(shape) if not (i in drop and s == 1))
    if new == shape:
        return _alias(input) if not input.requires_grad else Reshape.apply(input, shape=new)
    return Reshape.apply(input, shape=new)


@declared(Reshape)
def unsqueeze(input: Tensor, dim: int) -> Tensor:
    r"""Insert a dim of size 1 at ``dim`` (in ``[-ndim-1, ndim]``)."""
    shape = input._array.shape
    d = wrap_dim(dim, len(shape) + 1)
    return Reshape.apply(input, shape=shape[:d] + (1,) + shape[d:])


# -- permutations -------------------------------------------------------------------------------


class Permute(Function):
    is_view = True
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        inverse = tuple(np.argsort(ctx.dims))
        if isinstance(grad, Tensor):
            return Permute.apply(grad, dims=inverse)
        return grad.transpose(inverse)


@declared(Permute)
def permute(input: Tensor, *dims, **kwargs) -> Tensor:
    r"""A view with the dims reordered: ``out.shape[i] == input.shape[dims[i]]``."""
    dims = _shape_arg(_keyword("permute", dims, kwargs, "dims"))
    n = input._array.ndim
    if len(dims) != n:
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {n} is not equal "
            f"to len(dims) = {len(dims)}"
        )
    dims = tuple(wrap_dim(d, n) for d in dims)
    if len(set(dims)) != n:
        raise RuntimeError(f"permute(): duplicate dims are not allowed, got {list(dims)}")
    return Permute.apply(input, dims=dims)


@declared(Permute, aliases=("swapaxes", "swapdims"))
def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    r"""A view with dims ``dim0`` and ``dim1`` swapped."""
    n = input._array.ndim
    if n == 0:
        wrap_dim(dim0, 0), wrap_dim(dim1, 0)
        return _alias(input) if not input.requires_grad else Reshape.apply(input, shape=())
    d0, d1 = wrap_dim(dim0, n), wrap_dim(dim1, n)
    dims = list(range(n))
    dims[d0], dims[d1] = d1, d0
    return Permute.apply(input, dims=tuple(dims))


@declared(Permute, aliases=("moveaxis",))
def movedim(input: Tensor, source, destination) -> Tensor:
    r"""Move dims ``source`` to positions ``destination`` (ints or sequences)."""
    n = input._array.ndim
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(
            f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
            f"contain the same number of dims as destination ({list(dst)} dims)"
        )
    src = [wrap_dim(d, n) for d in src]
    dst = [wrap_dim(d, n) for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError("movedim: repeated dim in source or destination")
    order = [d for d in range(n) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return Permute.apply(input, dims=tuple(order))


@declared(Permute, method="T", as_property=True)
def _T(self: Tensor) -> Tensor:
    n = self._array.ndim
    return Permute.apply(self, dims=tuple(range(n - 1, -1, -1)))


@declared(Permute, method="mT", as_property=True)
def _mT(self: Tensor) -> Tensor:
    if self._array.ndim < 2:
        raise RuntimeError(
            f"tensor.mT is only supported on matrices or batches of matrices. Got {self._array.ndim}-D tensor."
        )
    return transpose(self, -2, -1)


# -- expand -------------------------------------------------------------------------------------


class Expand(Function):
    """Broadcast to a larger shape without copying (read-only memory, like PyTorch's
    stride-0 views that refuse in-place writes)."""

    is_view = True
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return xp_of(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return sum_to(grad, ctx.in_shape)


@declared(Expand)
def expand(input: Tensor, *sizes) -> Tensor:
    r"""A view broadcasting size-1 dims to ``sizes`` (-1 keeps a dim's size)."""
    sizes = _shape_arg(sizes)
    shape = input._array.shape
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to "
            f"the number of dimensions in the tensor ({len(shape)})"
        )
    target = list(sizes)
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                    f"non-existing dimension {i}"
                )
            continue
        have = shape[i - lead]
        if s == -1:
            target[i] = have
        elif have != s and have != 1:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({have}) "
                f"at non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(shape)}"
            )
    target = tuple(target)
    if target == shape:
        return _alias(input) if not input.requires_grad else Reshape.apply(input, shape=shape)
    return Expand.apply(input, shape=target)


@declared(Expand)
def broadcast_to(input: Tensor, size) -> Tensor:
    r"""``input.expand(size)``."""
    return expand(input, tuple(size))


# -- narrow --------------------------------------------------------------------------------------


@declared(None)
def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    r"""A view of ``length`` elements of dim ``dim`` starting at ``start``."""
    from .indexing import basic_index

    n = input._array.ndim
    if n == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, n)
    size = input._array.shape[d]
    start, length = int(start), int(length)
    if not -size <= start <= size:
        raise IndexError(
            f"start out of range (expected to be in range of [{-size}, {size}], but got {start})"
        )
    start %= max(size, 1)
    if length < 0 or start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return basic_index(input, (slice(None),) * d + (slice(start, start + length),))


class Diagonal(Function):
    """The diagonal (``offset``) of the plane (``dim1``, ``dim2``), as a writable view
    whose new last dim runs along the diagonal."""

    is_view = True
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, offset, dim1, dim2):
        ctx.shape, ctx.args = x.shape, (offset, dim1, dim2)
        return _writable_diagonal(x, offset, dim1, dim2)

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            return DiagonalGrad.apply(grad, shape=ctx.shape, args=ctx.args)
        return DiagonalGrad.forward(None, grad, ctx.shape, ctx.args)


class DiagonalGrad(Function):
    """zeros with ``grad`` on the diagonal: Diagonal's backward, differentiable in turn."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, grad, shape, args):
        if ctx is not None:
            ctx.args = args
        out = xp_of(grad).zeros(shape, grad.dtype)
        _writable_diagonal(out, *args)[...] = grad
        return out

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            offset, dim1, dim2 = ctx.args
            return Diagonal.apply(grad, offset=offset, dim1=dim1, dim2=dim2)
        return _writable_diagonal(grad, *ctx.args)


def _writable_diagonal(x, offset, dim1, dim2):
    d = x.diagonal(offset, dim1, dim2)
    if isinstance(d, np.ndarray) and x.flags.writeable:
        d.flags.writeable = True  # NumPy marks diagonal views read-only; PyTorch's are not
    return d


@declared(Diagonal)
def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    r"""A view of the diagonal ``offset`` (above the main one when positive) of the plane
    (``dim1``, ``dim2``); that plane's dims are removed and the diagonal becomes the last.

    Example::

        >>> ember.arange(9).reshape(3, 3).diagonal()
        tensor([0, 4, 8])
    """
    n = input._array.ndim
    if n < 2:
        raise RuntimeError(f"diagonal(): expected a tensor with at least 2 dimensions, got {n}")
    d1, d2 = wrap_dim(dim1, n), wrap_dim(dim2, n)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return Diagonal.apply(input, offset=int(offset), dim1=d1, dim2=d2)


class Unfold(Function):
    """Sliding windows of dim ``dim``: a read-only view with the window as a new last dim."""

    is_view = True

    @staticmethod
    def forward(ctx, x, dim, size, step):
        ctx.shape, ctx.args = x.shape, (dim, size, step)
        windows = xp_of(x).lib.stride_tricks.sliding_window_view(x, size, axis=dim)
        return windows[(slice(None),) * dim + (slice(None, None, step),)]

    @staticmethod
    def backward(ctx, grad):
        dim, size, step = ctx.args
        xp = xp_of(grad)
        n = grad.shape[dim]
        starts = xp.arange(n)[:, None] * step + xp.arange(size)[None, :]
        out = xp.zeros(ctx.shape, grad.dtype)
        xp.add.at(out, (slice(None),) * dim + (starts,), xp.moveaxis(grad, -1, dim + 1))
        return out


@declared(Unfold)
def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
    r"""All windows of ``size`` elements along ``dimension``, ``step`` apart, as a view
    whose new last dim holds each window (``Tensor.unfold``)."""
    n = self._array.ndim
    d = wrap_dim(dimension, n)
    length = self._array.shape[d] if n else 1
    if size < 0 or size > length:
        raise RuntimeError(
            f"maximum size for tensor at dimension {d} is {length} but size is {size}"
        )
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if n == 0:
        return Reshape.apply(self, shape=(1,))
    return Unfold.apply(self, dim=d, size=int(size), step=int(step))


@declared(None, method=False)
def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    r"""Coordinate grids from 1-d tensors (views via expand); ``indexing='xy'`` swaps the
    first two dims, as NumPy's default.

    Example::

        >>> gx, gy = ember.meshgrid(ember.arange(2), ember.arange(3), indexing="ij")
        >>> gx.shape
        ember.Size([2, 3])
    """
    if len(tensors) == 1 and isinstance(tensors[0], list | tuple):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f'meshgrid: indexing must be "ij" or "xy", got "{indexing}"')
    for i, t in enumerate(tensors):
        if t._array.ndim > 1:
            raise RuntimeError(
                f"meshgrid expects 0-d or 1-d tensors, but tensor {i} has shape {list(t.shape)}"
            )
    sizes = [t._array.size for t in tensors]
    swap = indexing == "xy" and len(tensors) >= 2
    if swap:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(tensors):
        axis = {0: 1, 1: 0}.get(i, i) if swap else i
        shape = [1] * len(tensors)
        shape[axis] = t._array.size
        out.append(expand(reshape(t, tuple(shape)), tuple(sizes)))
    return tuple(out)


@declared(None)
def contiguous(self: Tensor, memory_format=None) -> Tensor:
    r"""``self`` when already C-contiguous, else a contiguous copy."""
    if self._array.flags.c_contiguous:
        return self
    from .elementwise import clone

    return clone(self)


@declared(Permute)
def t(input: Tensor) -> Tensor:
    r"""Transpose a tensor of at most 2 dims (0-d and 1-d tensors come back as they are)."""
    if input._array.ndim > 2:
        raise RuntimeError(
            f"t() expects a tensor with <= 2 dimensions, but self is {input._array.ndim}D"
        )
    return _T(input)


swapaxes = swapdims = transpose


@declared(View)
def view_as(self: Tensor, other: Tensor) -> Tensor:
    r"""``self.view(other.shape)``."""
    return view(self, other.shape)


@declared(Reshape)
def reshape_as(self: Tensor, other: Tensor) -> Tensor:
    r"""``self.reshape(other.shape)``."""
    return reshape(self, other.shape)


@declared(Expand)
def expand_as(self: Tensor, other: Tensor) -> Tensor:
    r"""``self.expand(other.shape)``."""
    return expand(self, other.shape)
