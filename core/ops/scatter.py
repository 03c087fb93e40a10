"""Gather/scatter family: gather, scatter (src or value, optional reduce), scatter_add,
take_along_dim, index_select, index_add/index_copy/index_fill and their in-place forms.
Gradients through integer indices accumulate over repeated indices."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import attach, inplace, wrap_dim, xp_of
from .indexing import _place

# -- gather / scatter -------------------------------------------------------------------------


def _check_index(op: str, index: Tensor, size: int, dim: int):
    """Index dtype is integer and values lie in [0, size) (checked on the host only)."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}(): index must be a Tensor, got {type(index).__name__}")
    if index._array.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int64 for index, got {index.dtype}")
    arr = index._array
    if arr.size and isinstance(arr, np.ndarray):
        lo, hi = int(arr.min()), int(arr.max())
        bad = hi if hi >= size else (lo if lo < 0 else None)
        if bad is not None:
            raise IndexError(
                f"{op}(): index {bad} is out of bounds for dimension {dim} with size {size}"
            )


def _along(index, dim):
    """Full integer index tuple for ``out[i][index[i][j][k]][k]``-style access."""
    xp = xp_of(index)
    n = index.ndim
    out = []
    for d in range(n):
        if d == dim:
            out.append(index)
        else:
            shape = [1] * n
            shape[d] = index.shape[d]
            out.append(xp.arange(index.shape[d]).reshape(shape))
    return tuple(out)


def _check_gather_shapes(op, input, dim, index, src=None):
    if index._array.ndim != input._array.ndim and not (
        index._array.ndim <= 1 and input._array.ndim <= 1
    ):
        raise RuntimeError(
            f"{op}(): Index tensor must have the same number of dimensions as input tensor "
            f"(index shape {list(index.shape)}, input shape {list(input.shape)})"
        )
    for d, (i, s) in enumerate(zip(index._array.shape, input._array.shape)):
        if d != dim and i > s:
            raise RuntimeError(
                f"{op}(): Size does not match at dimension {d} expected index "
                f"{list(index.shape)} to be no larger than self {list(input.shape)} apart from "
                f"dimension {dim}"
            )
    if src is not None:
        for d, (i, s) in enumerate(zip(index._array.shape, src._array.shape)):
            if i > s:
                raise RuntimeError(
                    f"{op}(): Expected index {list(index.shape)} to be no larger than src "
                    f"{list(src.shape)} at dimension {d}"
                )


class Gather(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.shape, ctx.dim = x.shape, dim
        key = _along(index, dim)
        ctx.key = key
        return x[key]

    @staticmethod
    def backward(ctx, grad):
        return _place(grad, ctx.shape, ctx.key, True), None


def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    r"""``out[i][j][k] = input[i][index[i][j][k]][k]`` for ``dim == 1`` (and likewise).

    Example::

        >>> ember.tensor([[1, 2], [3, 4]]).gather(1, ember.tensor([[0, 0], [1, 0]]))
        tensor([[1, 1],
                [4, 3]])
    """
    d = wrap_dim(dim, input._array.ndim)
    _check_index("gather", index, input._array.shape[d] if input._array.ndim else 1, d)
    _check_gather_shapes("gather", input, d, index)
    if input._array.ndim == 0:
        return Gather.apply(input.reshape(1), index.reshape(1), dim=0).reshape(index.shape)
    return Gather.apply(input, index, dim=d)


class Scatter(Function):
    """``out = input.clone(); out[index along dim] = src`` (or += / *= with ``reduce``)."""

    @staticmethod
    def forward(ctx, x, index, src, dim, reduce):
        xp = xp_of(x)
        key = _along(index, dim)
        if np.ndim(src):
            part = src[tuple(slice(0, s) for s in index.shape)]
        else:
            part = xp.asarray(src, dtype=x.dtype)
        out = x.copy()
        if reduce is None:
            out[key] = part
        elif reduce == "add":
            xp.add.at(out, key, part)
        else:
            xp.multiply.at(out, key, part)
        ctx.key, ctx.reduce = key, reduce
        ctx.src_shape = np.shape(src)
        ctx.index_shape = index.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.reduce == "multiply":
            raise RuntimeError("scatter(): backward with reduce='multiply' is not implemented")
        gx = gsrc = None
        if ctx.needs_input_grad[0]:
            gx = grad
            if ctx.reduce is None:
                gx = grad.copy()
                gx[ctx.key] = 0
        if ctx.needs_input_grad[2]:
            gsrc = xp_of(grad).zeros(ctx.src_shape, grad.dtype)
            gsrc[tuple(slice(0, s) for s in ctx.index_shape)] = grad[ctx.key]
        return gx, None, gsrc


def scatter(input: Tensor, dim: int, index: Tensor, src=None, value=None, *, reduce=None) -> Tensor:
    r"""Out-of-place ``scatter_``: write ``src`` (a tensor) or ``value`` (a scalar) into a
    copy of ``input`` at ``index`` along ``dim``; ``reduce`` is None, 'add' or 'multiply'."""
    if src is None and value is None:
        raise TypeError("scatter() missing 1 required argument: 'src' or 'value'")
    if not isinstance(src, Tensor):  # a scalar, given as src or as value
        src = value if src is None else src
    if reduce not in (None, "add", "multiply"):
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce!r}")
    return _scatter("scatter", input, dim, index, src, reduce)


def _scatter(op, input, dim, index, src, reduce):
    d = wrap_dim(dim, input._array.ndim)
    _check_index(op, index, input._array.shape[d] if input._array.ndim else 1, d)
    if isinstance(src, Tensor):
        if src._array.ndim != index._array.ndim:
            raise RuntimeError(
                f"{op}(): Index tensor must have the same number of dimensions as src tensor "
                f"(index shape {list(index.shape)}, src shape {list(src.shape)})"
            )
        _check_gather_shapes(op, input, d, index, src)
        if src.dtype is not input.dtype:
            raise RuntimeError(
                f"{op}(): Expected self.dtype to be equal to src.dtype (got {input.dtype} and "
                f"{src.dtype})"
            )
    else:
        _check_gather_shapes(op, input, d, index)
    return Scatter.apply(input, index, src, dim=d, reduce=reduce)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    r"""Out-of-place ``scatter_add_``: sum ``src`` into a copy of ``input`` at ``index``
    along ``dim`` (repeated indices accumulate)."""
    return _scatter("scatter_add", input, dim, index, src, "add")


def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    r"""Pick values along ``dim`` at ``indices`` (broadcast against ``input`` elsewhere);
    with ``dim=None`` both are flattened."""
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    n = input._array.ndim
    if indices._array.ndim != n:
        raise RuntimeError(
            f"take_along_dim(): input and indices should have the same number of dimensions, "
            f"but got {n} dimensions for input, and {indices._array.ndim} dimensions for indices"
        )
    d = wrap_dim(dim, n)
    a = list(input._array.shape)
    b = list(indices._array.shape)
    a[d] = b[d] = 1
    try:
        common = list(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise RuntimeError(
            f"take_along_dim(): shapes {list(input.shape)} and {list(indices.shape)} are not "
            f"broadcastable outside dimension {d}"
        ) from None
    common[d] = input._array.shape[d]
    x = input.expand(tuple(common))
    common[d] = indices._array.shape[d]
    return gather(x, d, indices.expand(tuple(common)))


# -- index_select / index_add / index_copy / index_fill -----------------------------------------


def _vector_index(op, input, dim, index):
    if not isinstance(index, Tensor) or index._array.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index")
    if index._array.ndim > 1:
        raise IndexError(f"{op}(): Index is supposed to be a vector, got shape {list(index.shape)}")
    if input._array.ndim == 0:
        raise IndexError(f"{op}(): expected a tensor with at least 1 dimension, got a 0-d tensor")
    d = wrap_dim(dim, input._array.ndim)
    _check_index(op, index, input._array.shape[d], d)
    idx = index._array.reshape(-1)
    return d, idx, (slice(None),) * d + (idx,)


class IndexSelect(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, key):
        ctx.shape, ctx.key = x.shape, key
        return x[key]

    @staticmethod
    def backward(ctx, grad):
        return _place(grad, ctx.shape, ctx.key, True)


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    r"""The entries of ``input`` at positions ``index`` (a vector) along ``dim``."""
    _, _, key = _vector_index("index_select", input, dim, index)
    return IndexSelect.apply(input, key=key)


class IndexUpdate(Function):
    """index_add (mode 'add'), index_copy ('copy') and index_fill ('fill') along a dim."""

    @staticmethod
    def forward(ctx, x, source, key, mode, alpha):
        ctx.key, ctx.mode, ctx.alpha = key, mode, alpha
        out = x.copy()
        if mode == "add":
            xp_of(x).add.at(out, key, source if alpha == 1 else source * alpha)
        else:
            out[key] = source
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = grad
            if ctx.mode != "add":
                gx = grad.copy()
                gx[ctx.key] = 0
        if ctx.needs_input_grad[1]:
            gs = grad[ctx.key] if ctx.mode != "fill" else grad[ctx.key].sum()
            if ctx.alpha != 1:
                gs = gs * ctx.alpha
        return gx, gs


def _index_update(op, input, dim, index, source, mode, alpha=1):
    d, idx, key = _vector_index(op, input, dim, index)
    if mode != "fill":
        expected = list(input._array.shape)
        if expected:
            expected[d] = idx.size
        if list(source._array.shape) != expected and source._array.size != 0:
            raise RuntimeError(
                f"{op}(): source shape {list(source.shape)} does not match the expected "
                f"{expected} (input {list(input.shape)} with {idx.size} indices along dim {d})"
            )
    if source.dtype is not input.dtype and mode != "fill":
        raise RuntimeError(
            f"{op}(): self ({input.dtype}) and source ({source.dtype}) must have the same "
            "scalar type"
        )
    return IndexUpdate.apply(input, source, key=key, mode=mode, alpha=alpha)


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    r"""A copy of ``input`` with ``alpha * source`` summed in at ``index`` along ``dim``."""
    return _index_update("index_add", input, dim, index, source, "add", alpha)


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    r"""A copy of ``input`` with slices ``index`` along ``dim`` replaced by ``source``."""
    return _index_update("index_copy", input, dim, index, source, "copy")


def index_fill(input: Tensor, dim: int, index: Tensor, value) -> Tensor:
    r"""A copy of ``input`` with slices ``index`` along ``dim`` set to ``value``."""
    if not isinstance(value, Tensor):
        value = Tensor._make(
            xp_of(input._array).asarray(value, dtype=input._array.dtype), False, None, 0
        )
    elif value._array.ndim:
        raise RuntimeError(
            f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
            f"{value._array.ndim} dimension(s)."
        )
    return _index_update("index_fill", input, dim, index, value.to(input.dtype), "fill")


attach(
    gather=lambda self, dim, index, *, sparse_grad=False: gather(self, dim, index),
    scatter=scatter,
    scatter_=inplace(scatter),
    scatter_add=scatter_add,
    scatter_add_=inplace(scatter_add),
    take_along_dim=take_along_dim,
    index_select=index_select,
    index_add=index_add,
    index_add_=inplace(index_add),
    index_copy=index_copy,
    index_copy_=inplace(index_copy),
    index_fill=index_fill,
    index_fill_=inplace(index_fill),
)
