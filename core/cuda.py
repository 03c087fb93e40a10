"""``ember.cuda``: device queries, memory statistics, streams and events.

Everything here answers sensibly on a machine without CuPy or a GPU
(``is_available()`` is False, counts are 0); only calls that need a GPU raise.
"""

from __future__ import annotations

from . import backend
from .random import default_generator


def is_available() -> bool:
    """Whether CuPy (>= 14), a driver and a GPU are there; ``unavailable_reason()`` says
    why not."""
    return backend.is_cuda_available()


def unavailable_reason() -> str | None:
    r"""Why CUDA is unavailable, as a sentence naming what to install or check, or
    ``None`` when ``is_available()``.

    Example::

        >>> if not ember.cuda.is_available():
        ...     print(ember.cuda.unavailable_reason())
    """
    return backend.cuda_unavailable_reason()


def device_count() -> int:
    cupy = backend.cupy_or_none()
    return cupy.cuda.runtime.getDeviceCount() if cupy is not None else 0


def _require():
    return backend._cupy()  # RuntimeError("CUDA is not available: <reason>") without CUDA


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


# -- memory statistics ----------------------------------------------------------------------
# CuPy keeps no peak of its own: a memory hook (backend.peak_memory_hook), installed on the
# thread that first uses CUDA, reads the pool's usage after every allocation. Allocations from
# other threads show in ``memory_allocated`` but raise the peak only when this thread next
# allocates.


def _index(device) -> int:
    return backend.normalize_device("cuda" if device is None else device).index


def _pool_bytes(device, what: str) -> int:
    cupy = backend.cupy_or_none()
    if cupy is None:
        return 0
    with cupy.cuda.Device(_index(device)):
        return getattr(cupy.get_default_memory_pool(), what)()


def memory_allocated(device=None) -> int:
    """Bytes held by tensors in CuPy's memory pool on ``device`` (0 without CUDA)."""
    return _pool_bytes(device, "used_bytes")


def memory_reserved(device=None) -> int:
    """Bytes CuPy's pool holds from the driver on ``device``, used or cached."""
    return _pool_bytes(device, "total_bytes")


def max_memory_allocated(device=None) -> int:
    """The most bytes held by tensors on ``device`` at any moment since the process
    started or since ``reset_peak_memory_stats`` (0 without CUDA)."""
    if backend.cupy_or_none() is None:
        return 0
    now = memory_allocated(device)
    return max(backend.peak_memory_hook().peak.get(_index(device), 0), now)


def reset_peak_memory_stats(device=None) -> None:
    """Make the peak of ``device`` its current usage."""
    if backend.cupy_or_none() is None:
        return
    backend.peak_memory_hook().peak[_index(device)] = memory_allocated(device)


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
    newer); with ``including_emulation`` any CUDA device does. False without CUDA."""
    if not is_available():  # which includes a CuPy too old for bfloat16 arrays
        return False
    major = int(backend.cupy_or_none().cuda.Device().compute_capability[:-1] or 0)
    return major >= 8 or including_emulation


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
