"""Devices and the array module behind them: NumPy on CPU, CuPy on CUDA.

This is the only module that imports CuPy, and it does so lazily, so everything
else works on a machine without it.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

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


MIN_CUPY = (14, 0)  # bfloat16 arrays (ml_dtypes) arrived in CuPy 14
_INSTALL = "pip install 'ember[cuda13]' (CUDA 13 driver) or 'ember[cuda12]' (CUDA 12 driver)"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _explain_runtime_error(err: Exception) -> str:
    """A user's next step for a failed ``getDeviceCount`` (CUDA runtime error names)."""
    text = f"{type(err).__name__}: {err}"
    if "InsufficientDriver" in text or "NoDriver" in text or "libcuda" in text:
        return (
            f"no usable NVIDIA driver ({text}); install or update the NVIDIA driver, or pick "
            "the CuPy build for the CUDA version the driver supports (nvidia-smi shows it): "
            + _INSTALL
        )
    if "NoDevice" in text:
        return _no_device(text)
    return f"the CUDA runtime failed to start ({text})"


def _no_device(detail: str = "") -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hint = f" CUDA_VISIBLE_DEVICES={visible!r} hides devices;" if visible is not None else ""
    detail = f" ({detail})" if detail else ""
    return f"no CUDA device is visible{detail};{hint} check nvidia-smi"


def _probe_cuda() -> str | None:
    """Why CUDA can't be used here, or None when it can."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return f"CuPy is not installed; install it with {_INSTALL}"
    except Exception as err:  # a broken install raises more than ImportError
        return f"CuPy failed to import ({type(err).__name__}: {err}); reinstall it with {_INSTALL}"
    if _version_tuple(cupy.__version__) < MIN_CUPY:
        need = ".".join(map(str, MIN_CUPY))
        return f"CuPy {cupy.__version__} is installed but ember needs CuPy >= {need}: {_INSTALL}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        return _explain_runtime_error(err)
    if count == 0:
        return _no_device()
    return None


@functools.cache
def cuda_unavailable_reason() -> str | None:
    """Why CUDA is unavailable (probed once per process), or None when it is available."""
    return _probe_cuda()


_cupy_module = None  # set once CUDA proved usable
_peak_hook = None  # see _install_memory_hook


def _install_memory_hook(cupy) -> None:
    """Start tracking peak pool usage (called once, when CUDA is first used)."""
    global _peak_hook

    class _PeakMemoryHook(cupy.cuda.MemoryHook):
        name = "ember_peak_memory"

        def __init__(self, pool):
            self.pool, self.peak = pool, {}

        def malloc_postprocess(self, device_id, size, mem_size, mem_ptr, pmem_id):
            used = self.pool.used_bytes()  # the allocating device is the current one
            if used > self.peak.get(device_id, 0):
                self.peak[device_id] = used

    hook = _PeakMemoryHook(cupy.get_default_memory_pool())
    hook.__enter__()  # stays registered for the life of the process
    _peak_hook = hook


def peak_memory_hook():
    """The CuPy memory hook that records each device's peak pool usage (``ember.cuda``'s
    ``max_memory_allocated``); None until CUDA is first used."""
    return _peak_hook


def _cupy():
    """The cupy module; RuntimeError saying why when CUDA can't be used."""
    global _cupy_module
    if _cupy_module is None:
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"CUDA is not available: {reason}")
        cupy = sys.modules["cupy"]
        _install_memory_hook(cupy)
        _cupy_module = cupy
    return _cupy_module


def cupy_or_none():
    """The cupy module if CUDA is available, else None."""
    return None if cuda_unavailable_reason() is not None else _cupy()


def is_cuda_available() -> bool:
    return cuda_unavailable_reason() is None


_HOST_ARRAYS = (np.ndarray, np.generic)  # a tuple built once: `A | B` makes a new union per call


def xp_of(x):
    """The array module of ``x``: numpy for host arrays and the CPU device, cupy for device
    arrays and CUDA devices (Chainer's ``get_array_module``), so an op is written once."""
    if type(x) is np.ndarray or isinstance(x, _HOST_ARRAYS):
        return np
    if isinstance(x, device):
        return np if x.type == "cpu" else _cupy()
    return _cupy()


def device_of(array) -> device:
    if type(array) is np.ndarray or isinstance(array, _HOST_ARRAYS):
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
