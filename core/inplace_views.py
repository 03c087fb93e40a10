"""In-place writes through views, recorded as PyTorch records them: the write goes on the
base's graph (``CopySlices``) and the view becomes a view of that new base (``ViewOf``).

``Tensor._inplace_from`` calls ``rebase_view`` when an in-place op writes a result that
requires grad into a view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .autograd import Function
from .backend import xp_of

if TYPE_CHECKING:  # tensor.py imports this module
    from .tensor import Tensor


def _data_ptr(array) -> int:
    return array.ctypes.data if isinstance(array, np.ndarray) else array.data.ptr


def _view_geometry(view, base):
    """Where ``view``'s elements sit in ``base`` (a C-contiguous array): offset, shape and
    strides, in elements; None when that cannot be replayed on another array."""
    if not base.flags.c_contiguous or view.dtype != base.dtype:
        return None
    size = base.itemsize
    offset = _data_ptr(view) - _data_ptr(base)
    if offset % size or any(s < 0 or s % size for s in view.strides):
        return None
    return offset // size, view.shape, tuple(s // size for s in view.strides)


def _region(array, geometry):
    """The view described by ``geometry`` on a C-contiguous array shaped like the base
    (of any dtype: a gradient may be wider than the base)."""
    offset, shape, strides = geometry
    xp = xp_of(array)
    flat = xp.ascontiguousarray(array).reshape(-1)[offset:]
    size = flat.itemsize
    return xp.lib.stride_tricks.as_strided(flat, shape, tuple(s * size for s in strides))


class CopySlices(Function):
    """The base after an in-place change to one of its views: the view's region now holds
    ``result``; the rest of the base is unchanged (PyTorch's CopySlices)."""

    @staticmethod
    def forward(ctx, base, result, geometry):
        ctx.geometry, ctx.result_dtype = geometry, result.dtype
        return base  # already written through the view

    @staticmethod
    def backward(ctx, grad):
        g_base = g_result = None
        if ctx.needs_input_grad[1]:
            g_result = _region(grad, ctx.geometry).astype(ctx.result_dtype, copy=True)
        if ctx.needs_input_grad[0]:
            g_base = xp_of(grad).array(grad, order="C")
            _region(g_base, ctx.geometry)[...] = 0
        return g_base, g_result


class ViewOf(Function):
    """A view re-derived from its (rebased) base: the view's new place in the graph."""

    @staticmethod
    def forward(ctx, base, geometry):
        ctx.geometry, ctx.shape = geometry, base.shape
        return _region(base, geometry)

    @staticmethod
    def backward(ctx, grad):
        out = xp_of(grad).zeros(ctx.shape, grad.dtype)
        _region(out, ctx.geometry)[...] = grad
        return out


def rebase_view(view: Tensor, result: Tensor) -> None:
    """After ``result`` was written into ``view``'s memory, record the write on the base
    (CopySlices) and make the view a view of that new base, as PyTorch does."""
    base = view._base
    geometry = _view_geometry(view._array, base._array)
    if geometry is None:
        raise RuntimeError(
            "ember does not support in-place changes to this view of a tensor that requires "
            "grad (its base is not contiguous); call .clone() on the view first"
        )
    new_base = CopySlices.apply(base, result, geometry=geometry)
    base.requires_grad, base.grad_fn, base._output_nr = True, new_base.grad_fn, 0
    new_view = ViewOf.apply(base, geometry=geometry)
    view.requires_grad, view.grad_fn, view._output_nr = True, new_view.grad_fn, 0
