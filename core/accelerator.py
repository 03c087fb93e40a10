"""``torch.accelerator``: the current accelerator, whichever it is. ember's only
accelerator is CUDA (through CuPy); on a host without one these say so."""

from __future__ import annotations

from . import backend, cuda


def is_available() -> bool:
    """Whether an accelerator (a CUDA device) can be used."""
    return cuda.is_available()


def current_accelerator(check_available: bool = False):
    """``ember.device("cuda")`` where CUDA can be used, else None."""
    if cuda.is_available():
        return backend.device("cuda")
    return None


def device_count() -> int:
    """The number of accelerator devices (0 without one)."""
    return cuda.device_count() if cuda.is_available() else 0


def _require() -> None:
    if not cuda.is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")


def current_device_index() -> int:
    """The index of the current accelerator device."""
    _require()
    return cuda.current_device()


def set_device_index(device) -> None:
    """Make ``device`` (an index or a device) the current accelerator device."""
    _require()
    cuda.set_device(device)


current_device_idx, set_device_idx = current_device_index, set_device_index


def synchronize(device=None) -> None:
    """Wait for all work on the accelerator to finish (nothing to wait for without one)."""
    if cuda.is_available():
        cuda.synchronize(device)
