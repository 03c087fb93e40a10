"""Collectives that wait for their ring neighbours' fingerprints (see :mod:`.board`): a
queue per process group, started in order as the neighbours agree."""

from __future__ import annotations

import os
import time


def queue(pg, work, start, rec: tuple, async_op: bool) -> None:
    """Start `work` (``start()``) once its neighbours agree with fingerprint `rec`, after
    those queued before it; block until then unless `async_op`."""
    pg._unstarted.append((work, start, rec))
    work._group = pg  # its polls start it (and those before it) in order
    if not async_op:
        start_through(pg, work, block=True)


def start_through(pg, work, block: bool = False) -> bool:
    """Start the waiting collectives of `pg` in order, up to `work`, as far as their
    neighbours agree (all of them when `block`); True once `work` has started."""
    begun = None
    while pg._unstarted:
        head, start, rec = pg._unstarted[0]
        if not pg._guard(pg.board.compare, head.seq, rec):
            if not block:
                return False
            begun = begun or time.perf_counter()
            waited = time.perf_counter() - begun
            pg._waiting(waited)
            if waited > 2.0:
                time.sleep(1e-3)
            elif waited > 1e-4:
                os.sched_yield()  # let a neighbour sharing this core run
            continue
        pg._unstarted.popleft()
        head._requests = start()
        if not isinstance(head._requests, list):
            head._requests = [head._requests]
        head._group = None
        if head is work:
            return True
    return True
