"""Keep freed large arrays' memory for reuse (glibc's malloc only).

glibc gives every allocation above its mmap threshold fresh pages from the kernel and
returns the heap's free top above its trim threshold, so a training step that allocates
and frees the same multi-megabyte activations each time pays a page fault for every 4 KiB
of them, every step: a third of a 2-layer LSTM's forward pass on two cores. Raising both
thresholds to 256 MiB lets freed blocks of that size be reused from the heap, as caching
allocators (jemalloc, tcmalloc) do. The process keeps up to that much freed memory mapped.
"""

from __future__ import annotations

import ctypes
import os
import platform

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
THRESHOLD = 256 << 20
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune(environ=None) -> bool:
    """Raise glibc's mmap and trim thresholds once, unless ``EMBER_MALLOC_TUNING=0`` or the
    user set glibc's own variables; returns whether it did."""
    env = os.environ if environ is None else environ
    if env.get("EMBER_MALLOC_TUNING", "1") == "0" or any(v in env for v in _USER_SETTINGS):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, THRESHOLD)
    )
