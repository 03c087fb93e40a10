"""Keep freed large arrays' memory for reuse (glibc's malloc only).

glibc gives every allocation above its mmap threshold fresh pages from the kernel and
returns the heap's free top above its trim threshold, so a training step that allocates
and frees the same multi-megabyte activations each time pays a page fault for every 4 KiB
of them, every step: a third of a 2-layer LSTM's forward pass on two cores. Raising both
thresholds to 256 MiB lets freed blocks of that size be reused from the heap, as caching
allocators (jemalloc, tcmalloc) do. The process keeps up to that much freed memory mapped.

NumPy also asks the kernel for transparent huge pages on every array of 4 MiB and more
(``madvise``); PyTorch's CPU allocator does not, unless ``C10_THP_MEM_ALLOC_ENABLE=1``. Where
the kernel compacts memory synchronously for such regions (THP ``defrag=madvise``, a common
default) and then fails to find huge pages, every first touch of a large array stalls: on
the 2-core CI machine (2026-12-07, AnonHugePages staying 0) the MNIST convnet's first step
read 85-99 ms with the advice and 62-82 ms without, steady steps alike. ember follows
PyTorch: the advice is off unless ``C10_THP_MEM_ALLOC_ENABLE`` is set to a non-zero number.
"""

from __future__ import annotations

import ctypes
import os
import platform

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
THRESHOLD = 256 << 20
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def huge_pages(environ=None) -> bool | None:
    """Turn NumPy's huge-page advice on or off as PyTorch has it (off unless
    ``C10_THP_MEM_ALLOC_ENABLE`` is a non-zero number); returns the setting, or None when
    ``EMBER_MALLOC_TUNING=0`` leaves NumPy as it was or this NumPy has no such setting."""
    env = os.environ if environ is None else environ
    if env.get("EMBER_MALLOC_TUNING", "1") == "0":
        return None
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return None
    try:
        enabled = int(env.get("C10_THP_MEM_ALLOC_ENABLE", "0")) != 0
    except ValueError:  # PyTorch reads it with atoi: not a number is 0
        enabled = False
    _set_madvise_hugepage(enabled)
    return enabled


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
