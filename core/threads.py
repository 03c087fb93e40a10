"""``torch.set_num_threads``/``get_num_threads``: one thread count for ember's CPU work and
the BLAS under NumPy, so a process never runs more threads than it was given."""

from __future__ import annotations

import os

_num_threads: int | None = None
_num_interop_threads: int | None = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _from_environment() -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    try:
        n = int(value.split(",")[0])
    except ValueError:
        n = 0
    return n if n > 0 else _cores()


def get_num_threads() -> int:
    """The number of threads ember uses for CPU work (``OMP_NUM_THREADS`` at start-up,
    else the cores this process may run on)."""
    global _num_threads
    if _num_threads is None:  # read once, as PyTorch does: every large op asks
        _num_threads = _from_environment()
    return _num_threads


def set_num_threads(num: int) -> None:
    r"""Use ``num`` threads for CPU work: ember's own kernels and the BLAS (OpenBLAS, MKL,
    BLIS, through threadpoolctl) together.

    Example::

        >>> ember.set_num_threads(1)
    """
    global _num_threads
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {num!r}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=num)
    _num_threads = num


def get_num_interop_threads() -> int:
    """Threads for running independent ops in parallel; ember runs ops in order, so this
    is only recorded, as PyTorch's value would be."""
    return _num_interop_threads if _num_interop_threads is not None else get_num_threads()


def set_num_interop_threads(num: int) -> None:
    global _num_interop_threads
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise ValueError(f"set_num_interop_threads expects a positive integer, got {num!r}")
    _num_interop_threads = num
