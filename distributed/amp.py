"""Mixed precision across ranks: every rank takes the same GradScaler decision."""

from __future__ import annotations

import numpy as np

from ..core import amp as core_amp
from ..core.tensor import wrap_array
from .backends.base import ReduceOp
from .collectives import all_reduce
from .process_group import get_world_size, is_initialized


def sync_found_inf(found: bool) -> bool:
    r"""True on every rank of the default group if ``found`` is True on any of them
    (one MAX all-reduce of one element). ``GradScaler`` calls it while a process group of
    several ranks exists, so that ``step`` skips the same steps and ``update`` keeps the
    same scale everywhere.

    Example::

        >>> sync_found_inf(dist.get_rank() == 1)  # True on every rank
        True
    """
    flag = wrap_array(np.array([1 if found else 0], dtype=np.int32))
    all_reduce(flag, ReduceOp.MAX)
    return bool(flag._array[0])


def _sync_across_ranks(found: bool) -> bool:
    if not is_initialized() or get_world_size() == 1:
        return found
    return sync_found_inf(found)


core_amp.register_found_inf_sync(_sync_across_ranks)
