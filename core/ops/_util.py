"""Helpers shared by op families. Helpers used inside ``backward`` accept either raw
arrays or Tensors, so a backward written with them also runs under create_graph."""

from __future__ import annotations

import functools

import numpy as np

from .. import parallel
from ..backend import xp_of
from ..tensor import Tensor, wrap_dim

# For C- or F-contiguous 2-D float operands ``a.dot(b)`` makes the same BLAS call as
# ``np.matmul`` (same bits, checked on 1728 shape/layout pairs) with a third of its
# overhead: 0.33 against 0.96 µs on 8x8 float32, the per-op benchmark's matmul.
_DOT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def array_matmul(a, b, out=None):
    """``a @ b`` of raw arrays: NumPy's (products split over ember's CPU threads, see
    ``core.parallel.matmul``), or on CUDA ``core.gemm.matmul`` (which puts float16/bfloat16
    batches on cuBLAS)."""
    if isinstance(a, np.ndarray):
        if out is not None:
            return np.matmul(a, b, out=out)
        # a.size * b.size bounds the multiply-adds (m*k * k*n >= m*k*n) with cheaper reads
        if a.size * b.size >= parallel.MATMUL_MIN_WORK and b.ndim >= 2:
            if a.size * b.shape[-1] >= parallel.MATMUL_MIN_WORK:
                return parallel.matmul(a, b)
        # a small 2-D float product of contiguous operands: `a.dot(b)`, the same BLAS call
        # and bits as np.matmul at a third of its per-call cost (a strided operand takes
        # np.matmul's own path: dot would copy it and give other bits). A dtype of the same
        # byte order is one object per type, and an array owning its memory is contiguous:
        # `is` tests, cheaper than `==` and than `flags` (an object made per read)
        if (
            a.ndim == 2 == b.ndim
            and (dtype := a.dtype) is b.dtype
            and dtype in _DOT_DTYPES
            and (a.base is None or a.flags.forc)
            and (b.base is None or b.flags.forc)
        ):
            return a.dot(b)
        return np.matmul(a, b)
    from ..gemm import matmul as cuda_matmul

    return cuda_matmul(a, b, out=out)


def sum_to(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape``."""
    if grad.shape == shape or grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and grad.shape[i + lead] != 1
    )
    if isinstance(grad, Tensor):
        out = grad.sum(dim=axes, keepdim=True) if axes else grad
    else:
        out = grad.sum(axis=axes, keepdims=True) if axes else grad
    return out.reshape(shape)


def _address(a) -> int:
    return a.__array_interface__["data"][0]


def _dense_base(arrays):
    """The dense NumPy array every one of ``arrays`` is a view of, or None."""
    base = getattr(arrays[0], "base", None)
    if type(base) is not np.ndarray or not base.flags.c_contiguous:
        return None
    if any(type(a) is not np.ndarray or a.base is not base for a in arrays):
        return None
    return base


def empty_views_like(arrays):
    """Empty arrays of ``arrays``' shapes, strides and relative places in one new buffer,
    when ``arrays`` are views that together cover one dense NumPy array exactly (q, k and v
    split from one projection's output); else None. Gradients allocated so meet again in
    the split's backward as one view (``joined``): no concatenation copies them."""
    base = _dense_base(arrays)
    if base is None or sum(a.size for a in arrays) != base.size or _any_overlap(arrays):
        return None
    buffer, start = np.empty_like(base), _address(base)
    return tuple(
        np.ndarray(a.shape, a.dtype, buffer, _address(a) - start, a.strides) for a in arrays
    )


def _any_overlap(arrays) -> bool:
    """Whether two of ``arrays`` share an element (the same piece passed twice); a layout
    too intricate to decide quickly counts as shared."""
    for i, a in enumerate(arrays):
        for b in arrays[i + 1 :]:
            try:
                if np.shares_memory(a, b, max_work=1000):
                    return True
            except np.exceptions.TooHardError:
                return True
    return False


def joined(arrays, dim: int):
    """``concatenate(arrays, dim)`` as a view, when the arrays already lie side by side
    along ``dim`` in one dense NumPy buffer (gradients from ``empty_views_like``); else
    None."""
    base = _dense_base(arrays)
    if base is None:
        return None
    first = arrays[0]
    rest_of_shape = first.shape[:dim] + first.shape[dim + 1 :]
    address = _address(first)
    for a in arrays:
        if a.strides != first.strides or a.shape[:dim] + a.shape[dim + 1 :] != rest_of_shape:
            return None
        if _address(a) != address:
            return None
        address += a.shape[dim] * first.strides[dim]
    shape = first.shape[:dim] + (sum(a.shape[dim] for a in arrays),) + first.shape[dim + 1 :]
    offset = _address(first) - _address(base)
    return np.ndarray(shape, first.dtype, base, offset, first.strides)


def call(name, x, *args):
    """``x.name(*args)`` on a Tensor, ``xp.name(x, *args)`` on an array."""
    if isinstance(x, Tensor):
        return getattr(x, name)(*args)
    return getattr(xp_of(x), name)(x, *args)


def wrap_dims(dim, ndim: int):
    """Normalise ``dim`` (None, int, or sequence) to a sorted tuple of axes, or None."""
    if dim is None:
        return None
    if isinstance(dim, int):
        return (wrap_dim(dim, ndim),)
    dims = tuple(sorted(wrap_dim(d, ndim) for d in dim))
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"dim {tuple(dim)} appears multiple times in the list of dims")
    return dims or None


def inplace(fn):
    """The in-place Tensor method ``fn_`` of the out-of-place op ``fn``: computes ``fn`` on a
    snapshot of the tensor and writes the result back (autograd records it in place)."""

    def method(self, *args, **kwargs):
        return self._inplace_from(fn(self._snapshot(), *args, **kwargs))

    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place ``{fn.__name__}``."
    return method


def attach(**methods):
    """Attach functions as Tensor methods (the op's one-line delegate)."""
    for name, fn in methods.items():
        setattr(Tensor, name, fn)


def as_tensor_like(value, like: Tensor, dtype=None) -> Tensor:
    """Wrap a scalar or array as a Tensor on ``like``'s device."""
    if isinstance(value, Tensor):
        return value
    xp = xp_of(like._array)
    return Tensor._make(xp.asarray(value, dtype=(dtype or like.dtype).np), False, None, 0)


def check_same_device(op: str, *tensors) -> None:
    first = None
    for t in tensors:
        if isinstance(t, Tensor):
            if first is None:
                first = t
            elif type(t._array) is not type(first._array) or (
                not isinstance(t._array, np.ndarray) and t._array.device != first._array.device
            ):
                raise RuntimeError(
                    f"{op}: expected all tensors to be on the same device, but found at least "
                    f"two devices, {first.device} and {t.device}"
                )


def numpy_names(fn):
    """Accept PyTorch's NumPy-style aliases ``axis=`` (for ``dim``) and ``keepdims=``
    (for ``keepdim``) as keywords of ``fn``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if "axis" in kwargs or "keepdims" in kwargs:
            for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
                if alias in kwargs:
                    if name in kwargs:
                        raise TypeError(
                            f"{fn.__name__}() got both '{name}' and its alias '{alias}'"
                        )
                    kwargs[name] = kwargs.pop(alias)
        return fn(*args, **kwargs)

    return wrapper
