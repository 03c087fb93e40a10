"""``EMBER_DISTRIBUTED_DEBUG=DETAIL``: before every collective all ranks all-gather what
they are about to call and compare it, so a mismatch raises on every rank while the ranks
stay in step (the always-on check of the progress board, :mod:`.board`, compares ring
neighbours instead and leaves the group unusable after a mismatch)."""

from __future__ import annotations

import ast

import numpy as np

from .backends.base import Work


def check_fingerprints(pg, op: str, fingerprint: dict) -> None:
    """All-gather (op, fields) and raise on every rank if any rank differs."""
    fields = tuple(
        sorted((k, str(v) if isinstance(v, np.dtype) else v) for k, v in fingerprint.items())
    )
    mine = repr((op, fields)).encode()
    everyone = [ast.literal_eval(b.decode()) for b in _exchange_bytes(pg, op, mine)]
    problem = describe_mismatch(everyone, pg.ranks)
    if problem is not None:
        other = next(r for r, call in enumerate(everyone) if call != everyone[0])
        sides = "; ".join(f"rank {pg.ranks[r]} called {_call(*everyone[r])}" for r in (0, other))
        raise RuntimeError(
            f"Detected mismatch between collectives on ranks (collective #{pg._seq}, "
            f"{op} on this rank {pg.ranks[pg._rank]}): {problem} ({sides})"
        )


def _call(op: str, fields: tuple) -> str:
    return f"{op}({', '.join(f'{k}={v}' for k, v in fields)})"


def _exchange_bytes(pg, op: str, mine: bytes) -> list[bytes]:
    """Every rank's ``mine``, through the same polled, timed path as collectives (a
    rank that never arrives aborts the job instead of hanging the check)."""
    stall = (pg.timeout, pg._on_stall, None)
    name = f"debug check before {op}"
    lengths = np.zeros(pg.size(), np.int64)
    req = pg.host_backend.all_gather(lengths, np.array([len(mine)], np.int64))
    Work([req], None, stall=stall, op=name, seq=pg._seq).wait()
    width = int(lengths.max())
    padded = np.zeros(width, np.uint8)
    padded[: len(mine)] = np.frombuffer(mine, np.uint8)
    gathered = np.zeros((pg.size(), width), np.uint8)
    Work(
        [pg.host_backend.all_gather(gathered, padded)], None, stall=stall, op=name, seq=pg._seq
    ).wait()
    return [gathered[r, : lengths[r]].tobytes() for r in range(pg.size())]


def describe_mismatch(everyone: list, ranks: list[int]) -> str | None:
    """How the first rank whose (op, fields) differs from the first rank's differs."""
    ref = everyone[0]
    for r, other in enumerate(everyone):
        if other == ref:
            continue
        if ref[0] != other[0]:
            return f"rank {ranks[0]} called {ref[0]} but rank {ranks[r]} called {other[0]}"
        fa, fb = dict(ref[1]), dict(other[1])
        fields = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
        return "; ".join(
            f"{k}: rank {ranks[0]} has {fa.get(k)} but rank {ranks[r]} has {fb.get(k)}"
            for k in fields
        )
    return None
