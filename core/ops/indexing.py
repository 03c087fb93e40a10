"""Indexing ops: ``tensor[key]`` and ``tensor[key] = value``, index_put, take, select,
masked_select/masked_scatter, nonzero and one_hot. The gather/scatter family lives in
``scatter.py``; in-place writes through views (CopySlices) in ``core/inplace_views.py``.

Basic indexing (ints, slices, None, Ellipsis) returns a view; advanced indexing (integer
or boolean tensors, lists) returns a copy, as in PyTorch. Gradients of integer indexing
accumulate over repeated indices.
"""

from __future__ import annotations

import operator

import numpy as np

from .. import autograd, backend
from ..autograd import Function, traceable
from ..tensor import Tensor
from ._util import sum_to, wrap_dim, xp_of
from .declare import declared

# -- keys ---------------------------------------------------------------------------------------


def _index_array(x: Tensor, k):
    """An index given as a Tensor, list or array, as an array on ``x``'s device."""
    arr = k._array if isinstance(k, Tensor) else k
    if not hasattr(arr, "dtype"):
        arr = np.asarray(arr)
        if arr.dtype.kind == "f" or (arr.size == 0 and arr.dtype.kind not in "iub"):
            if arr.size:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            arr = arr.astype(np.int64)
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        arr = arr.astype(np.bool_)
    elif kind not in "iub":
        raise IndexError(
            f"tensors used as indices must be long, int, byte or bool tensors, got {arr.dtype}"
        )
    if type(arr) is not type(x._array):
        arr = backend.move_array(arr, x.device)
    return arr


def _normalize_key(x: Tensor, key):
    """Key as a tuple NumPy/CuPy understand, and whether it needs advanced indexing."""
    if not isinstance(key, tuple):
        key = tuple(key) if _sequence_as_tuple(key) else (key,)
    out = []
    advanced = False
    for k in key:
        if k is None or k is Ellipsis:
            out.append(k)
        elif isinstance(k, slice):
            if k.step is not None and operator.index(k.step) <= 0:
                raise ValueError("step must be greater than zero")
            out.append(k)
        elif isinstance(k, bool):
            out.append(k)
            advanced = True
        elif isinstance(k, int):
            out.append(k)
        elif isinstance(k, Tensor | list | tuple | np.ndarray) or hasattr(
            k, "__cuda_array_interface__"
        ):  # a tuple inside the key is a sequence of indices, as in PyTorch
            arr = _index_array(x, k)
            if arr.ndim == 0 and arr.dtype.kind in "iu":
                out.append(int(arr))
            else:
                out.append(arr)
                advanced = True
        elif hasattr(k, "__index__"):
            out.append(operator.index(k))
        else:
            raise IndexError(
                "only integers, slices (`:`), ellipsis (`...`), None and long or byte "
                f"Variables are valid indices (got {type(k).__name__})"
            )
    return tuple(out), advanced


def _sequence_as_tuple(key) -> bool:
    """PyTorch's rule: a short list holding a slice, None, ``...``, a tensor or another
    sequence is read as a tuple of indices (``x[[[0, 1], [1, 2]]]`` is ``x[[0, 1], [1, 2]]``)."""
    if not isinstance(key, list) or len(key) >= 32:
        return False
    return any(
        k is None or k is Ellipsis or isinstance(k, slice | Tensor | list | tuple | np.ndarray)
        for k in key
    )


def _apply_key(array, key):
    try:
        return array[key]
    except IndexError as err:
        raise IndexError(str(err).replace("axis", "dimension")) from None


def _place(grad, shape, key, accumulate):
    """zeros(shape) with ``grad`` written (or, for repeated indices, summed) at ``key``."""
    if isinstance(grad, Tensor):
        return IndexGrad.apply(grad, shape=shape, key=key, accumulate=accumulate)
    out = xp_of(grad).zeros(shape, grad.dtype)
    if accumulate:
        xp_of(grad).add.at(out, _ints_only(key), grad)
    else:
        out[key] = grad
    return out


def _ints_only(key):
    """Boolean masks spelled as integer indices (``ufunc.at`` wants those)."""
    out = []
    for k in key:
        if hasattr(k, "dtype") and k.dtype == np.bool_:
            out.extend(k.nonzero())
        else:
            out.append(k)
    return tuple(out)


def _has_int_arrays(key) -> bool:
    return any(hasattr(k, "dtype") and k.dtype != np.bool_ for k in key)


class Index(Function):
    """Basic indexing: a view."""

    is_view = True
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, key):
        ctx.shape, ctx.key = x.shape, key
        return _apply_key(x, key)

    @staticmethod
    def backward(ctx, grad):
        return _place(grad, ctx.shape, ctx.key, False)


class AdvancedIndex(Function):
    """Indexing with integer or boolean arrays: a copy."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, key):
        ctx.shape, ctx.key = x.shape, key
        return _apply_key(x, key)

    @staticmethod
    def backward(ctx, grad):
        return _place(grad, ctx.shape, ctx.key, _has_int_arrays(ctx.key))


class IndexGrad(Function):
    """The backward of indexing as an op of its own, so double backward works."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, grad, shape, key, accumulate):
        ctx.key, ctx.advanced = key, accumulate or any(hasattr(k, "dtype") for k in key)
        return _place(grad, shape, key, accumulate)

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            return (AdvancedIndex if ctx.advanced else Index).apply(grad, key=ctx.key)
        return grad[ctx.key]


def basic_index(x: Tensor, key: tuple) -> Tensor:
    return Index.apply(x, key=key)


@declared(Index, method="__getitem__")
def getitem(self: Tensor, key) -> Tensor:
    if type(key) is int or (type(key) is slice and (key.step is None or key.step > 0)):
        return Index.apply(self, key=(key,))  # the common cases, without the key walk
    key, advanced = _normalize_key(self, key)
    return (AdvancedIndex if advanced else Index).apply(self, key=key)


class IndexPut(Function):
    """``out = x.clone(); out[key] = value`` (the recorded form of ``x[key] = value``);
    with ``accumulate``, ``out[key] += value`` summing over repeated indices."""

    @staticmethod
    def forward(ctx, x, value, key, accumulate=False, inplace=False):
        ctx.key, ctx.accumulate = key, accumulate
        ctx.value_meta = (np.shape(value), getattr(value, "dtype", None))
        out = x if inplace else x.copy()
        if accumulate:
            xp_of(x).add.at(out, _ints_only(key), value)
        else:
            out[key] = value
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = grad
            if not ctx.accumulate:
                gx = grad.copy()
                gx[ctx.key] = 0
        if ctx.needs_input_grad[1]:
            shape, dt = ctx.value_meta
            gv = sum_to(grad[ctx.key], shape).astype(dt, copy=False)
        return gx, gv


@declared(IndexPut, autocast="cuda:promote", inplace=True)
def index_put(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    r"""Out-of-place ``input[indices] = values`` (``+=`` with ``accumulate``, where repeated
    indices add up); ``indices`` is a tuple of integer or boolean tensors."""
    if not isinstance(indices, tuple | list):
        raise TypeError(
            f"index_put(): indices must be a tuple of tensors, got {type(indices).__name__}"
        )
    key, _ = _normalize_key(input, tuple(indices))
    if not isinstance(values, Tensor):
        values = Tensor._make(
            xp_of(input._array).asarray(values, dtype=input._array.dtype), False, None, 0
        )
    elif values.dtype is not input.dtype:
        raise RuntimeError(
            f"index_put(): values ({values.dtype}) must have the same dtype as self ({input.dtype})"
        )
    try:
        return IndexPut.apply(input, values, key=key, accumulate=bool(accumulate))
    except IndexError as err:
        raise IndexError(str(err).replace("axis", "dimension")) from None
    except ValueError:
        raise RuntimeError(
            f"shape mismatch: value tensor of shape {list(values.shape)} cannot be broadcast to "
            f"indexing result of shape {list(input._array[key].shape)}"
        ) from None


@declared(AdvancedIndex)
def take(input: Tensor, index: Tensor) -> Tensor:
    r"""``input`` read as 1-d at the positions in ``index``; the result has index's shape."""
    if not isinstance(index, Tensor) or index._array.dtype.kind not in "iu":
        raise RuntimeError("take(): Expected a long tensor for index")
    return getitem(input.reshape(-1), index)


@declared(Index)
def select(input: Tensor, dim: int, index: int) -> Tensor:
    r"""The view ``input[..., index, ...]`` at dim ``dim`` (that dim removed)."""
    n = input._array.ndim
    if n == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, n)
    size = input._array.shape[d]
    index = operator.index(index)
    if not -size <= index < size:
        raise IndexError(
            f"select(): index {index} out of range for tensor of size {list(input.shape)} at "
            f"dimension {d}"
        )
    return Index.apply(input, key=(slice(None),) * d + (index,))


@declared(IndexPut, method="__setitem__")
def setitem(self: Tensor, key, value) -> None:
    key, _ = _normalize_key(self, key)
    if isinstance(value, Tensor):
        if value.device != self.device:
            value = value.to(self.device)
        if value._array.ndim and value._array.shape[0] == 1:
            # PyTorch drops the value's leading size-1 dims (x[0] = tensor([3.]) is fine)
            shape = value._array.shape
            lead = next((i for i, n in enumerate(shape) if n != 1), len(shape))
            value = value.reshape(shape[lead:])
    elif not isinstance(value, int | float | bool):
        value = Tensor._make(
            xp_of(self._array).asarray(value, dtype=self._array.dtype), False, None, 0
        )
    grad_value = isinstance(value, Tensor) and value.requires_grad
    try:
        tracing = autograd._tracer is not None  # ONNX export records the write as an op
        if tracing or (autograd._grad_enabled and (self.requires_grad or grad_value)):
            self._check_inplace()
            if self._base is not None:  # a view: _inplace_from may refuse, so write after
                self._inplace_from(IndexPut.apply(self._snapshot(), value, key=key))
                return
            # IndexPut needs self's place in the graph, not its values: write in place
            # (O(size of the slice), not of the tensor) and let self take the new node.
            old = Tensor._make(self._array, self.requires_grad, self.grad_fn, self._output_nr)
            self._inplace_from(IndexPut.apply(old, value, key=key, inplace=True))
            return
        self._array[key] = value._array if isinstance(value, Tensor) else value
    except IndexError as err:
        raise IndexError(str(err).replace("axis", "dimension")) from None
    except ValueError as err:
        if "read-only" in str(err):
            raise RuntimeError(
                "unsupported operation: more than one element of the written-to tensor refers "
                "to a single memory location. Please clone() the tensor before performing the "
                "operation."
            ) from None
        shape = list(np.shape(value._array if isinstance(value, Tensor) else value))
        raise RuntimeError(
            f"shape mismatch: value tensor of shape {shape} cannot be broadcast to indexing "
            f"result of shape {list(self._array[key].shape)}"
        ) from None
    self._bump_version()


# -- masks, nonzero, one_hot --------------------------------------------------------------------


@declared(AdvancedIndex)
@traceable
def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    r"""The 1-d tensor of ``input``'s elements where ``mask`` (broadcast) is True."""
    if mask._array.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {mask.dtype}")
    try:
        shape = np.broadcast_shapes(input._array.shape, mask._array.shape)
    except ValueError:
        raise RuntimeError(
            f"masked_select(): the shape of the mask {list(mask.shape)} is not broadcastable "
            f"with the input shape {list(input.shape)}"
        ) from None
    x = input if input._array.shape == shape else input.expand(shape)
    m = (
        mask._array
        if mask._array.shape == shape
        else xp_of(mask._array).broadcast_to(mask._array, shape)
    )
    return AdvancedIndex.apply(x, key=(m,))


@declared(None)
@traceable
def nonzero(input: Tensor, *, as_tuple: bool = False):
    r"""Indices of the non-zero elements: an int64 ``(n, ndim)`` tensor, or with
    ``as_tuple=True`` one 1-d tensor per dim."""
    xp = xp_of(input._array)
    arr = input._array
    if as_tuple:
        parts = xp.nonzero(arr.reshape(1) if arr.ndim == 0 else arr)
        return tuple(Tensor._make(p.astype(np.int64, copy=False), False, None, 0) for p in parts)
    return Tensor._make(xp.argwhere(arr).astype(np.int64, copy=False), False, None, 0)


@declared(None)
def argwhere(input: Tensor) -> Tensor:
    r"""``nonzero(input)``."""
    return nonzero(input)


@declared(None, method=False)
@traceable
def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    r"""int64 one-hot encoding: a new last dim of size ``num_classes`` (default max+1).

    Example::

        >>> F.one_hot(ember.tensor([0, 2]), 3)
        tensor([[1, 0, 0],
                [0, 0, 1]])
    """
    if tensor._array.dtype != np.int64:
        raise RuntimeError(
            f"one_hot is only applicable to index tensor of type LongTensor, got {tensor.dtype}"
        )
    arr = tensor._array
    xp = xp_of(arr)
    if arr.size == 0:
        if num_classes == -1:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
    else:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            raise RuntimeError(f"Class values must be non-negative (got {lo}).")
        if num_classes == -1:
            num_classes = hi + 1
        elif hi >= num_classes:
            raise RuntimeError(
                f"Class values must be smaller than num_classes (got {hi} for num_classes="
                f"{num_classes})."
            )
    out = arr[..., None] == xp.arange(num_classes)
    return Tensor._make(out.astype(np.int64), False, None, 0)


def _masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    m = (
        mask._array
        if mask._array.shape == input._array.shape
        else xp_of(mask._array).broadcast_to(mask._array, input._array.shape)
    )
    n = int(m.sum())
    if source._array.size < n:
        raise RuntimeError(
            f"masked_scatter: expected source to have at least {n} elements (the number of "
            f"True values in mask), got {source._array.size}"
        )
    src = source.reshape(-1)[:n]
    src = src if src.dtype is input.dtype else src.to(input.dtype)
    return IndexPut.apply(input, src, key=(m,))


@declared(IndexPut, inplace=True)
def masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    r"""A copy of ``input`` whose positions where ``mask`` is True take, in order, the
    leading elements of ``source``."""
    if mask._array.dtype != np.bool_:
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got {mask.dtype}")
    return _masked_scatter(input, mask, source)
