"""``DistributedDataParallel.join``: ranks with uneven inputs keep the others' collectives
matched until every rank has run out."""

from __future__ import annotations

import numpy as np

from ..core.tensor import wrap_array
from .collectives import all_reduce


class JoinState:
    """Per-iteration bookkeeping of ``DistributedDataParallel.join``: every synced
    forward first all-reduces [ranks still training, ranks syncing this iteration]."""

    def __init__(self, divide_by_initial_world_size: bool, throw: bool):
        self.divide_by_initial_world_size = divide_by_initial_world_size
        self.throw = throw
        self.active = 0
        self.iterations = 0

    def step(self, ddp, active: int, sync: int) -> int:
        pg = ddp.process_group
        flags = wrap_array(np.array([active, sync], np.int64))
        all_reduce(flags, group=pg)
        self.active, syncing = int(flags._array[0]), int(flags._array[1])
        self.iterations += active
        if self.throw and 0 < self.active < pg.size():
            raise RuntimeError(
                f"DistributedDataParallel.join: {pg.size() - self.active} rank(s) ran out of "
                "inputs early (throw_on_early_termination=True)"
            )
        return syncing

    def drain(self, ddp) -> None:
        """Shadow the others' iterations until every rank is done, then take the
        parameters and buffers of the rank that trained longest."""
        pg = ddp.process_group
        while True:
            syncing = self.step(ddp, active=0, sync=0)
            if self.active == 0:
                break
            if self.throw:
                raise RuntimeError(
                    "DistributedDataParallel.join: this rank ran out of inputs early "
                    "(throw_on_early_termination=True)"
                )
            if syncing:
                ddp._shadow_iteration()
        counts = wrap_array(np.zeros(pg.size(), np.int64))
        counts._array[pg.rank()] = self.iterations
        all_reduce(counts, group=pg)
        longest = int(np.flatnonzero(counts._array == counts._array.max())[-1])
        module = ddp.module
        ddp._broadcast_coalesced(
            [p for _, p in module.named_parameters()] + ddp._buffers_list, pg.ranks[longest]
        )
