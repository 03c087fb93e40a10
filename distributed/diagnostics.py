r"""Diagnostics that make a misbehaving job say what went wrong instead of hanging:

- the startup self-check (:func:`self_check`): one all-gather of ``(host, device)`` per
  rank at ``init_process_group``, kept as the rank table (``dist.get_rank_table()``);
  two ranks on one GPU of one host is an error on every rank;
- the collective flight recorder (:class:`FlightRecorder`, ``dist.flight_recorder()``):
  the last ``EMBER_FLIGHT_RECORDER_SIZE`` (default 64) collectives of this process, with
  their sequence numbers, shapes, dtypes and timings, printed on a stall or a crash.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque

logger = logging.getLogger("ember.distributed")

DEFAULT_RECORDER_SIZE = 64
# test hook: pretend this rank uses that device (e.g. "cuda:0"), as no GPU is needed to
# exercise the duplicate-GPU check
FAKE_DEVICE_ENV = "EMBER_SELF_CHECK_DEVICE"


# -- flight recorder -----------------------------------------------------------------------


class FlightEntry:
    """One recorded collective: ``fields`` the shape/dtype/op/root it was called with (None
    for send/recv), ``start`` and ``end`` wall-clock times (``end`` None while pending)."""

    __slots__ = ("op", "seq", "ranks", "fields", "start", "end")

    def __init__(self, op: str, seq: int, ranks: list[int], fields: dict | None, start: float):
        self.op, self.seq, self.ranks, self.fields = op, seq, ranks, fields
        self.start, self.end = start, None

    def mark_done(self) -> None:
        """Stamp the end time (``Work`` calls it when the collective completes)."""
        self.end = time.time()


class FlightRecorder:
    r"""This process's last ``size`` collectives (a ring of :class:`FlightEntry`; O(1) per
    collective). :meth:`entries` gives them as dicts.
    """

    def __init__(self, size: int):
        self.size = size
        self._ring: deque = deque(maxlen=size)
        self.total = 0

    def record(
        self, op: str, seq: int, ranks: list[int], fields: dict | None
    ) -> FlightEntry | None:
        """Note the start of a collective; returns the entry ``Work`` marks done."""
        if self.size == 0:
            return None
        entry = FlightEntry(op, seq, ranks, fields, time.time())
        self._ring.append(entry)
        self.total += 1
        return entry

    def entries(self) -> list[dict]:
        return [
            {
                "op": e.op,
                "seq": e.seq,
                "group": e.ranks,
                "shape": (e.fields or {}).get("shape"),
                "dtype": (e.fields or {}).get("dtype"),
                "fields": dict(e.fields or {}),
                "start": e.start,
                "end": e.end,
                "state": "pending" if e.end is None else "completed",
            }
            for e in self._ring
        ]

    def report(self, now: float | None = None) -> str:
        """The tail as text, oldest first ("" when nothing was recorded)."""
        if not self._ring:
            return ""
        now = time.time() if now is None else now
        lines = [
            f"flight recorder: last {len(self._ring)} of {self.total} collectives, oldest first:"
        ]
        for e in self._ring:
            op, seq, ranks, fields, start, end = e.op, e.seq, e.ranks, e.fields, e.start, e.end
            clock = time.strftime("%H:%M:%S", time.localtime(start))
            parts = [f"  #{seq} {op}", f"group {ranks}"]
            parts += [f"{k}={v}" for k, v in (fields or {}).items()]
            parts.append(f"started {clock}.{int(start % 1 * 1e3):03d}")
            if end is None:
                parts.append(f"PENDING for {now - start:.1f} s")
            else:
                parts.append(f"took {(end - start) * 1e3:.2f} ms")
            lines.append(" ".join(parts))
        return "\n".join(lines)


def _recorder_size() -> int:
    raw = os.environ.get("EMBER_FLIGHT_RECORDER_SIZE", str(DEFAULT_RECORDER_SIZE))
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"EMBER_FLIGHT_RECORDER_SIZE must be an integer, got {raw!r}") from None
    if size < 0:
        raise ValueError(f"EMBER_FLIGHT_RECORDER_SIZE must be >= 0, got {size}")
    return size


recorder = FlightRecorder(_recorder_size())


def flight_recorder() -> list[dict]:
    r"""This rank's last collectives (``EMBER_FLIGHT_RECORDER_SIZE``, default 64), oldest
    first: dicts with ``op``, ``seq`` (the group's collective number), ``group`` (its global
    ranks), ``shape``, ``dtype``, ``start`` and ``end`` (``time.time()`` stamps; ``end`` is
    None and ``state`` is ``"pending"`` until the collective completes). Collectives of a
    world of one are not recorded (they cannot hang).

    Example::

        >>> dist.all_reduce(t)
        >>> dist.flight_recorder()[-1]["op"], dist.flight_recorder()[-1]["state"]
        ('all_reduce', 'completed')
    """
    return recorder.entries()


# -- startup self-check --------------------------------------------------------------------

_table: list[dict] = []


def _this_device(nccl_device) -> tuple[str, str]:
    """(the device as this rank names it, an identity of the physical device that is the
    same in every process of the host: ``cuda:0`` under two different
    ``CUDA_VISIBLE_DEVICES`` is two GPUs)."""
    fake = os.environ.get(FAKE_DEVICE_ENV)
    if fake:
        return fake, fake
    from ..core.backend import cupy_or_none

    cp = cupy_or_none()
    if cp is None:
        return "cpu", "cpu"
    try:  # pragma: no cover - needs a GPU
        if not cp.cuda.runtime.getDeviceCount():
            return "cpu", "cpu"
        index = cp.cuda.Device().id if nccl_device is None else int(nccl_device)
        return f"cuda:{index}", cp.cuda.runtime.deviceGetPCIBusId(index)
    except Exception:  # pragma: no cover - CuPy without a usable driver
        return "cpu", "cpu"


def self_check(comm, local_rank: int, nccl_device) -> list[dict]:
    r"""Exchange each rank's ``(host, local rank, device)`` (one all-gather), keep it as the
    rank table, log it on rank 0 at debug level, and raise on every rank if two ranks of
    one host use the same GPU. Set ``EMBER_SELF_CHECK=0`` to skip it."""
    device, physical = _this_device(nccl_device)
    mine = {
        "host": socket.gethostname(),
        "local_rank": local_rank,
        "device": device,
        "physical_device": physical,
    }
    if device.startswith("cuda") and FAKE_DEVICE_ENV not in os.environ:  # pragma: no cover
        from .backends.mpi import _cuda_aware

        mine["cuda_aware_mpi"] = _cuda_aware()
    everyone = [mine] if comm is None else comm.allgather(mine)
    table = [{"rank": r, **rec} for r, rec in enumerate(everyone)]
    _table[:] = table
    me = 0 if comm is None else comm.Get_rank()
    if me == 0:
        logger.debug("rank table:\n%s", format_rank_table(table))
    problem = duplicate_devices(table)
    if problem is not None:
        raise RuntimeError(problem)
    return table


def duplicate_devices(table: list[dict]) -> str | None:
    """The first GPU that more than one rank of a host uses, described; None if none."""
    users: dict = {}
    for row in table:
        physical = row.get("physical_device", row["device"])
        if physical != "cpu":
            users.setdefault((row["host"], physical), []).append(row)
    for (host, physical), rows in users.items():
        if len(rows) > 1:
            ranks = [row["rank"] for row in rows]
            who = ", ".join(map(str, ranks[:-1])) + f" and {ranks[-1]}"
            device = rows[0]["device"]
            if physical != device:
                device += f" (PCI bus {physical})"
            return (
                f"ranks {who} on host {host} both use {device}; bind one rank per GPU "
                "(ember-launch does)"
            )
    return None


def format_rank_table(table: list[dict]) -> str:
    rows = [("rank", "host", "local", "device")]
    rows += [(str(r["rank"]), r["host"], str(r["local_rank"]), r["device"]) for r in table]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def host_of(rank: int) -> str:
    """The host of global `rank` from the rank table ("?" without one)."""
    return _table[rank]["host"] if rank < len(_table) else "?"


def rank_table_clear() -> None:
    _table.clear()


def get_rank_table() -> list[dict]:
    r"""The startup self-check's table: one dict per global rank with ``rank``, ``host``,
    ``local_rank``, ``device`` (``"cuda:N"`` as that rank numbers its GPUs, or ``"cpu"``)
    and ``physical_device`` (the GPU's PCI bus id, or ``"cpu"``). Empty before
    ``init_process_group`` (or with ``EMBER_SELF_CHECK=0``).

    Example::

        >>> [row["device"] for row in dist.get_rank_table()]
        ['cpu', 'cpu']
    """
    return [dict(row) for row in _table]
