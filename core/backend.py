"""Devices and the array module behind them: NumPy on CPU, CuPy on CUDA.

This is the only module that imports CuPy, and it does so lazily, so everything
else works on a machine without it.
"""

from __future__ import annotations

import functools

import numpy as np


class device:
    r"""Where a tensor's data lives: ``cpu`` or ``cuda[:index]``.

    Example::

        >>> ember.device("cuda:1")
        device(type='cuda', index=1)
    """

    __slots__ = ("type", "index")

    def __init__(self, type: str | device, index: int | None = None):
        if isinstance(type, device):
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise TypeError(f"device must be a string or ember.device, got {type!r}")
        name, _, idx = type.partition(":")
        if name not in ("cpu", "cuda"):
            raise RuntimeError(f"unknown device type {name!r}; expected 'cpu' or 'cuda[:n]'")
        if idx:
            if index is not None:
                raise RuntimeError(f"device {type!r} already has an index; got index={index} too")
            if not idx.isdigit():
                raise RuntimeError(f"invalid device string {type!r}")
            index = int(idx)
        if name == "cpu":
            index = None
        self.type, self.index = name, index

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = device("cpu")


@functools.cache
def _cupy():
    try:
        import cupy
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "CUDA tensors need CuPy; install it with `pip install ember[cuda]`"
        ) from err
    return cupy


def cupy_or_none():
    """The cupy module if it imports and sees a GPU, else None."""
    try:
        cupy = _cupy()
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:
        pass
    return None


def is_cuda_available() -> bool:
    return cupy_or_none() is not None


def get_array_module(array):
    """numpy for host arrays, cupy for device arrays (Chainer's idiom)."""
    if isinstance(array, np.ndarray | np.generic):
        return np
    return _cupy()


def device_of(array) -> device:
    if isinstance(array, np.ndarray | np.generic):
        return CPU
    return device("cuda", array.device.id)


def normalize_device(dev) -> device:
    if dev is None:
        return CPU
    if isinstance(dev, device):
        d = dev
    elif isinstance(dev, int):
        d = device("cuda", dev)
    else:
        d = device(dev)
    if d.type == "cuda" and d.index is None:
        d = device("cuda", _cupy().cuda.runtime.getDevice())
    return d


def array_module_for(dev: device):
    return np if dev.type == "cpu" else _cupy()


def move_array(array, dev: device):
    """Copy ``array`` to ``dev`` unless it already lives there."""
    if dev.type == "cpu":
        if isinstance(array, np.ndarray):
            return array
        return array.get()
    cupy = _cupy()
    if not isinstance(array, np.ndarray) and array.device.id == dev.index:
        return array
    with cupy.cuda.Device(dev.index):
        return cupy.asarray(array)


def device_context(dev: device):
    """A context that makes ``dev`` current for CuPy allocations (no-op on CPU)."""
    if dev.type == "cpu":
        return _NULL_CONTEXT
    return _cupy().cuda.Device(dev.index)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL_CONTEXT = _NullContext()
