"""``Tensor.to``: the argument forms PyTorch accepts, down to one ``to_copy`` (the
differentiable device/dtype copy, in ``cast.py``); ``cpu()``, ``cuda()``,
``float()`` and the other conversions in ``core/tensor.py`` go through it."""

from __future__ import annotations

from .. import backend, dtypes
from ..tensor import Tensor
from .cast import ToCopy, to_copy
from .declare import declared


@declared(ToCopy)
def to(self: Tensor, *args, **kwargs) -> Tensor:
    r"""``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other)``;
    returns ``self`` when nothing changes, like PyTorch."""
    dev = kwargs.pop("device", None)
    dt = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    copy = kwargs.pop("copy", False)
    if kwargs:
        raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dev, dt = a.device, a.dtype
        elif isinstance(a, dtypes.dtype) or (a in (float, int, bool)):
            dt = a
        elif a is not None:
            dev = a
    target_dev = backend.normalize_device(dev) if dev is not None else None
    target_dt = dtypes.to_dtype(dt) if dt is not None else None
    if target_dev == self.device:
        target_dev = None
    if target_dt is self.dtype:
        target_dt = None
    if target_dev is None and target_dt is None:
        return self.clone() if copy else self
    return to_copy(self, target_dev, target_dt)
