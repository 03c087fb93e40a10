"""dtype and device casts (``ToCopy``) and PyTorch's type promotion of op operands: the
``promotes`` policy an op declares (see ``declare.py``) is carried out here."""

from __future__ import annotations

import numpy as np

from .. import backend, dtypes
from ..autograd import Function
from ..tensor import Tensor
from ._util import as_tensor_like, check_same_device

# -- casts --------------------------------------------------------------------------------------


class ToCopy(Function):
    """dtype and/or device change; the gradient flows back with the original type."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, device=None, dtype=None):
        ctx.src = (backend.device_of(x), dtypes.from_numpy(x.dtype))
        out = x
        if device is not None:
            out = backend.move_array(out, device)
        if dtype is not None:
            with backend.device_context(device or ctx.src[0]):
                out = out.astype(dtype.np)
        if out is x:
            out = x.copy()
        return out

    @staticmethod
    def backward(ctx, grad):
        dev, dt = ctx.src
        if isinstance(grad, Tensor):
            return grad.to(dev, dt)
        grad = backend.move_array(grad, dev)
        return grad.astype(dt.np, copy=False)


def to_copy(x: Tensor, device=None, dtype=None) -> Tensor:
    if dtype is not None and x.requires_grad and not dtype.is_floating_point:
        return ToCopy.apply(x.detach(), device=device, dtype=dtype)
    return ToCopy.apply(x, device=device, dtype=dtype)


# -- promotion ----------------------------------------------------------------------------------


def operands(op: str, a, b):
    """``promotes = "common"``: cast tensor operands to their promoted dtype; Python
    scalars stay scalars."""
    # Fast paths: two NumPy tensors of one dtype (one object per native dtype: `is`); a
    # float tensor and a Python number, which keep the tensor's dtype.
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            xa, xb = a._array, b._array
            if xa.dtype is xb.dtype and type(xa) is np.ndarray and type(xb) is np.ndarray:
                return a, b
        elif type(b) in (float, int) and a._array.dtype.kind == "f":
            return a, b
    if type(a) in (float, int) and isinstance(b, Tensor) and b._array.dtype.kind == "f":
        return a, b
    if not isinstance(a, Tensor):
        a = _scalar_or_tensor(op, a, b)
    if not isinstance(b, Tensor):
        b = _scalar_or_tensor(op, b, a)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a._array.dtype == b._array.dtype:
            if type(a._array) is not np.ndarray or type(b._array) is not np.ndarray:
                check_same_device(op, a, b)
            return a, b
        check_same_device(op, a, b)
    rt = dtypes.result_type(a, b)
    if isinstance(a, Tensor) and a._array.dtype != rt.np:
        a = to_copy(a, None, rt)
    if isinstance(b, Tensor) and b._array.dtype != rt.np:
        b = to_copy(b, None, rt)
    return a, b


def float_operands(op: str, a, b):
    """``promotes = "float"``: ``operands``, then an integer or bool result goes to the
    default float dtype (PyTorch's rule for ``div``, ``atan2``, ...)."""
    a, b = operands(op, a, b)
    like = a if isinstance(a, Tensor) else b
    if isinstance(like, Tensor) and not like.is_floating_point():
        dt = dtypes.get_default_dtype()
        a = to_copy(a, None, dt) if isinstance(a, Tensor) else a
        b = to_copy(b, None, dt) if isinstance(b, Tensor) else b
    return a, b


def float_input(input: Tensor) -> Tensor:
    """``promotes = "float"`` for one operand: integer and bool tensors go to the default
    float dtype."""
    if not input.is_floating_point():
        return to_copy(input, None, dtypes.get_default_dtype())
    return input


def tensor_operands(a, b):
    """Both operands as Tensors (a Python number takes the other operand's dtype)."""
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, a)
    return a, b


_ARRAY_LIKES = (np.ndarray, list, tuple)  # a tuple: `A | B` builds a union per call


def _scalar_or_tensor(op, value, other):
    if isinstance(value, dtypes.PYTHON_NUMBERS):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _ARRAY_LIKES):
        like = other if isinstance(other, Tensor) else None
        arr = np.asarray(value)
        if like is not None and not isinstance(like._array, np.ndarray):
            arr = backend.move_array(arr, like.device)
        if arr.dtype == np.float64 and not isinstance(value, np.ndarray):
            arr = arr.astype(dtypes.get_default_dtype().np)
        return Tensor._make(arr, False, None, 0)
    raise TypeError(f"unsupported operand type(s) for {op}: 'Tensor' and '{type(value).__name__}'")
