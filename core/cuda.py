"""``ember.cuda``: device queries, memory statistics, streams and events.

Everything here answers sensibly on a machine without CuPy or a GPU
(``is_available()`` is False, counts are 0); only calls that need a GPU raise.
"""

from __future__ import annotations

from . import backend, dtypes
from .random import default_generator


def is_available() -> bool:
    return backend.is_cuda_available()


def device_count() -> int:
    cupy = backend.cupy_or_none()
    return cupy.cuda.runtime.getDeviceCount() if cupy is not None else 0


def _require():
    cupy = backend.cupy_or_none()
    if cupy is None:
        raise RuntimeError("CUDA is not available: no CuPy installation or no visible GPU")
    return cupy


def current_device() -> int:
    return _require().cuda.runtime.getDevice()


def set_device(device) -> None:
    dev = backend.normalize_device(device)
    if dev.type != "cuda":
        raise ValueError(f"set_device expects a CUDA device, got {dev}")
    _require().cuda.Device(dev.index).use()


def get_device_name(device=None) -> str:
    cupy = _require()
    index = backend.normalize_device(device or "cuda").index
    return cupy.cuda.runtime.getDeviceProperties(index)["name"].decode()


def synchronize(device=None) -> None:
    cupy = _require()
    index = backend.normalize_device(device or "cuda").index
    with cupy.cuda.Device(index):
        cupy.cuda.Device(index).synchronize()


def memory_allocated(device=None) -> int:
    """Bytes held by tensors in CuPy's memory pool (0 without CUDA)."""
    cupy = backend.cupy_or_none()
    return cupy.get_default_memory_pool().used_bytes() if cupy is not None else 0


def memory_reserved(device=None) -> int:
    cupy = backend.cupy_or_none()
    return cupy.get_default_memory_pool().total_bytes() if cupy is not None else 0


_peak = 0


def max_memory_allocated(device=None) -> int:
    """The largest ``memory_allocated`` seen at any call of this function or of
    ``reset_peak_memory_stats``; CuPy keeps no peak of its own."""
    global _peak
    _peak = max(_peak, memory_allocated(device))
    return _peak


def reset_peak_memory_stats(device=None) -> None:
    global _peak
    _peak = memory_allocated(device)


def empty_cache() -> None:
    cupy = backend.cupy_or_none()
    if cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


def manual_seed(seed: int) -> None:
    """Seed the current GPU's generator; silently nothing without CUDA, as in PyTorch."""
    if is_available():
        default_generator("cuda").manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """Seed every GPU's generator; silently nothing without CUDA, as in PyTorch."""
    if is_available():
        for i in range(device_count()):
            default_generator(f"cuda:{i}").manual_seed(seed)


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """Whether the current GPU computes in bfloat16 natively (compute capability 8.0 or
    newer, with a CuPy that has bfloat16 arrays); False without CUDA."""
    if not is_available():
        return False
    cupy = backend.cupy_or_none()
    if not _cupy_has_bfloat16(cupy):
        return False
    major = int(cupy.cuda.Device().compute_capability[:-1] or 0)
    return major >= 8 or including_emulation


def _cupy_has_bfloat16(cupy) -> bool:
    try:
        cupy.zeros(1, dtype=dtypes.bfloat16.np)
    except (TypeError, ValueError):
        return False
    return True


class Stream:
    r"""A CUDA stream (CuPy's), usable as a context manager like ``torch.cuda.Stream``."""

    def __init__(self, device=None, priority: int = 0):
        cupy = _require()
        self._stream = cupy.cuda.Stream(non_blocking=True)

    def __enter__(self):
        self._stream.__enter__()
        return self

    def __exit__(self, *exc):
        return self._stream.__exit__(*exc)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def wait_stream(self, other: Stream) -> None:
        self._stream.wait_event(other._stream.record())

    def record_event(self, event: Event | None = None) -> Event:
        event = event or Event()
        event._event.record(self._stream)
        return event


class Event:
    def __init__(self, enable_timing: bool = False):
        self._event = _require().cuda.Event(disable_timing=not enable_timing)

    def record(self, stream: Stream | None = None) -> None:
        self._event.record(stream._stream if stream is not None else None)

    def synchronize(self) -> None:
        self._event.synchronize()

    def query(self) -> bool:
        return self._event.done

    def elapsed_time(self, end: Event) -> float:
        return _require().cuda.get_elapsed_time(self._event, end._event)


def current_stream(device=None) -> Stream:
    s = Stream.__new__(Stream)
    s._stream = _require().cuda.get_current_stream()
    return s
