"""Mixed precision across ranks: every rank takes the same GradScaler decision."""

from __future__ import annotations

import numpy as np

from ..core.tensor import wrap_array
from .backends.base import ReduceOp
from .collectives import all_reduce


def sync_found_inf(found: bool) -> bool:
    r"""True on every rank of the default group if ``found`` is True on any of them
    (one MAX all-reduce of one element). ``ember.core.amp.sync_found_inf`` is set to
    this while a process group of several ranks exists, so that ``GradScaler.step``
    skips the same steps and ``update`` keeps the same scale everywhere.

    Example::

        >>> sync_found_inf(dist.get_rank() == 1)  # True on every rank
        True
    """
    flag = wrap_array(np.array([1 if found else 0], dtype=np.int32))
    all_reduce(flag, ReduceOp.MAX)
    return bool(flag._array[0])
