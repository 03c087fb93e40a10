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
    rank that never arrives aborts the job instead of hanging the check), but on the
    backend directly: the check must not check itself."""
    stall = (pg.timeout, pg._on_stall, None)
    name = f"debug check before {op}"

    def all_gather(out, array):
        Work(
            [pg.host_backend.all_gather(out, array)], None, stall=stall, op=name, seq=pg._seq
        ).wait()

    return gather_bytes(mine, pg.size(), all_gather)


def gather_bytes(payload: bytes, size: int, all_gather) -> list[bytes]:
    """Every one of ``size`` ranks' ``payload``: an all-gather of the lengths, then of the
    payloads zero-padded to the longest. ``all_gather(out, array)`` gathers ``array`` from
    every rank into ``out`` (``size`` times as many elements, rank-major) and waits."""
    lengths = np.zeros(size, np.int64)
    all_gather(lengths, np.array([len(payload)], np.int64))
    width = int(lengths.max())
    padded = np.zeros(width, np.uint8)
    padded[: len(payload)] = np.frombuffer(payload, np.uint8)
    gathered = np.zeros((size, width), np.uint8)
    all_gather(gathered, padded)
    return [gathered[r, : lengths[r]].tobytes() for r in range(size)]


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
