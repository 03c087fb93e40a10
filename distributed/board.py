r"""The progress board: what each rank of a group is doing, readable by every other rank
without their help (an MPI window, ``MPI_Win_allocate``, held open for passive access).

Each rank's part of the window holds

- a header: its status (running, found a mismatch, exited, destroyed its group), the exit
  code (or the neighbour of a mismatch) and the collective number that go with it, its pid;
- a ring of the fingerprints of its last :data:`RING` collectives: (sequence number, op,
  reduce op, dtype, src/dst, shape). Each rank compares its fingerprint with those of its
  ring neighbours (rank r with ranks r - 1 and r + 1): a mismatch anywhere is a mismatch
  between some pair of neighbours, so checking every pair catches every difference,
  without an extra collective;
- the two fingerprints of a mismatch it found, so every other rank can name both sides.

No rank waits for the check where it need not (:meth:`ProgressBoard.check`): a rank
publishes its fingerprint (a local write, then a memory barrier) and compares it with
those its neighbours on the same host have already published (plain loads from shared
memory, ``MPI_Win_shared_query``). Of two neighbours arriving together, at least one sees
the other's fingerprint (each writes, fences, then reads: Dekker's argument), so every pair
is compared by its later arrival *before that rank starts the collective*; a mismatch
raises there, and since a collective in which every rank's data reaches every other rank
(all_reduce, all_gather, reduce_scatter, barrier) cannot complete without it, no rank
completes a mismatched one: the ranks that started it find the mismatch on the board
while they wait (:meth:`ProgressBoard.raise_if_mismatch`) and raise too. Where that
argument does not hold, the rank still waits for its neighbour before starting: rooted
collectives (broadcast, reduce, gather, scatter, all_to_all, which some ranks may complete
before others arrive) wait for both neighbours, and a neighbour on another host, read
with ``MPI_Rget``, is waited for (one round trip).
"""

from __future__ import annotations

import atexit
import math
import os
import struct
import time

import numpy as np

RING = 16  # fingerprints kept per rank: how far a rank may run ahead of its neighbour
RUNNING, MISMATCH, EXITED, DESTROYED = 0, 1, 2, 3
STATUS_NAMES = {RUNNING: "running", MISMATCH: "mismatch", EXITED: "exited", DESTROYED: "destroyed"}

_HEAD = struct.Struct("4q")  # status, code, the collective it concerns, pid
# op, redop, dtype num, itemsize, root, ndim, numel, d0-d2, shape hash, then seq: written in
# one pass from low to high addresses, so a reader that sees `seq` sees the fields too
_REC = struct.Struct("12q")
_STATUS = struct.Struct("3q")
_MINE_AT = _HEAD.size
_THEIRS_AT = _MINE_AT + _REC.size
_RING_AT = _THEIRS_AT + _REC.size
_BYTES = _RING_AT + RING * _REC.size
_SCAN_AFTER_S = 0.05  # a wait this long starts looking at the other ranks' status
_SCAN_EVERY_S = 0.1

OPS = (
    "?",
    "barrier",
    "all_reduce",
    "broadcast",
    "reduce",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter_tensor",
    "reduce_scatter",
    "all_to_all_single",
    "all_to_all",
    "gather",
    "scatter",
)
_OP_CODES = {name: i for i, name in enumerate(OPS)}
REDOPS = ("", "SUM", "AVG", "PRODUCT", "MIN", "MAX")
_REDOP_CODES = {name: i for i, name in enumerate(REDOPS)}
# collectives that complete on no rank before every rank has started them
_ALL_ENTER = frozenset(
    _OP_CODES[op]
    for op in (
        "barrier",
        "all_reduce",
        "all_gather",
        "all_gather_into_tensor",
        "reduce_scatter_tensor",
        "reduce_scatter",
    )
)
_NO_REC = (0,) * 11
_encoded: dict = {}
_dtype_names: dict = {}


def encode(op: str, fields: dict) -> tuple:
    """The 11 integers (all but the sequence number) that fingerprint a collective."""
    shape = fields.get("shape")
    dtype = fields.get("dtype")
    root = fields.get("src", fields.get("dst", -1))
    key = (op, None if shape is None else tuple(shape), dtype, fields.get("op"), root)
    rec = _encoded.get(key)
    if rec is None:
        if dtype is not None:
            _dtype_names.setdefault(dtype.num, str(dtype))
        dims = [] if shape is None else list(shape)
        rec = (
            _OP_CODES.get(op, 0),
            _REDOP_CODES.get(fields.get("op", ""), 0),
            -1 if dtype is None else dtype.num,
            -1 if dtype is None else dtype.itemsize,
            root,
            -1 if shape is None else len(dims),
            -1 if shape is None else math.prod(dims),
            *(dims + [-1, -1, -1])[:3],
            0 if shape is None else hash(tuple(dims)),
        )
        if len(_encoded) > 4096:  # shapes that change every step (variable batches)
            _encoded.clear()
        _encoded[key] = rec
    return rec


def describe(rec: tuple) -> tuple[str, dict]:
    """(op name, fields) of a published fingerprint ``(*encode(...), seq)``, for messages."""
    op, redop, dtype, _, root, ndim, numel, d0, d1, d2, _, _ = rec
    fields = {}
    if dtype >= 0:
        fields["dtype"] = _dtype_name(dtype)
    if redop:
        fields["op"] = REDOPS[redop]
    if ndim >= 0:
        dims = [d for d in (d0, d1, d2)][:ndim]
        fields["shape"] = str(dims) if ndim <= 3 else f"[{d0}, {d1}, {d2}, ...] ({numel} elements)"
    name = OPS[op] if 0 <= op < len(OPS) else f"op#{op}"
    if root >= 0:
        fields["dst" if name in ("reduce", "gather") else "src"] = root
    return name, fields


def _dtype_name(num: int) -> str:
    """The name of another rank's dtype from its number (dtypes this rank never sent
    included)."""
    if not _dtype_names.get("filled"):
        for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"):
            _dtype_names.setdefault(np.dtype(name).num, name)
        for name in ("uint64", "float16", "float32", "float64", "complex64", "complex128"):
            _dtype_names.setdefault(np.dtype(name).num, name)
        _dtype_names["filled"] = True
    return _dtype_names.get(num, f"dtype#{num}")


def mismatch_message(seq: int, here: int, ranks: list[int], a: int, rec_a, b: int, rec_b) -> str:
    """Every rank's error for collective `seq` when group ranks `a` and `b` disagree."""
    op_a, fa = describe(rec_a)
    op_b, fb = describe(rec_b)
    ga, gb = ranks[a], ranks[b]
    if op_a != op_b:
        problem = f"rank {ga} called {op_a} but rank {gb} called {op_b}"
    else:
        keys = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
        problem = "; ".join(
            f"{k}: rank {ga} has {fa.get(k)} but rank {gb} has {fb.get(k)}" for k in keys
        )
    sides = "; ".join(
        f"rank {g} called {op}({', '.join(f'{k}={v}' for k, v in sorted(f.items()))})"
        for g, op, f in ((ga, op_a, fa), (gb, op_b, fb))
    )
    return (
        f"Detected mismatch between collectives on ranks (collective #{seq}, on this rank "
        f"{ranks[here]}): {problem} ({sides})"
    )


class PeerLost(RuntimeError):
    """Another rank's part of the board cannot be read any more: its process is gone."""

    def __init__(self, rank: int, why: str):
        super().__init__(f"rank {rank}: {why}")
        self.rank, self.why = rank, why


class MismatchError(RuntimeError):
    """Ranks of one group called different collectives (or with different arguments)."""


class ProgressBoard:
    r"""Each rank's status, last collective and recent fingerprints; creating it is
    collective over `comm`.

    Example::

        >>> board = ProgressBoard(comm)
        >>> board.check(seq, rec)     # before each collective: True to start it now
        >>> board.laggards(seq)       # after waiting too long: [1]
    """

    def __init__(self, comm, ranks: list[int] | None = None, close_at_exit: bool = True):
        from mpi4py import MPI

        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.ranks = list(range(self.size)) if ranks is None else list(ranks)
        self._win = MPI.Win.Allocate(_BYTES, 1, comm=comm)
        self._mine = memoryview(self._win.tomemory()).cast("B")
        self._mine[:] = bytes(_BYTES)
        _HEAD.pack_into(self._mine, 0, RUNNING, 0, 0, os.getpid())
        self._win.Lock_all()
        self._right = (self.rank + 1) % self.size
        self._views = {}  # rank -> memoryview of its part, for ranks sharing this host
        for r in range(self.size):
            view = self._shared(r)
            if view is not None:
                self._views[r] = view
        self._left = (self.rank - 1) % self.size
        self._right_view = self._views.get(self._right)
        # the left-hand neighbour is peeked at only when it is another rank on this host
        self._left_view = self._views.get(self._left) if self._left != self._right else None
        self._last_scan = 0.0
        self._late: list = []  # (request, buffer) of remote reads given up on
        if close_at_exit:  # a window left to MPI_Finalize leaks UCX remote keys
            atexit.register(self.close)
        comm.Barrier()  # every part initialised before anyone reads one

    def _shared(self, r: int):
        if r == self.rank:
            return self._mine
        try:
            mem, _ = self._win.Shared_query(r)
        except Exception:  # another host (or an MPI without shared windows)
            return None
        view = memoryview(mem).cast("B")
        return view if len(view) >= _BYTES else None

    # -- reading another rank's part -----------------------------------------------------
    def _read(self, r: int, offset: int, nbytes: int, timeout: float = 5.0) -> bytes | None:
        view = self._views.get(r)
        if view is not None:
            return bytes(view[offset : offset + nbytes])
        from mpi4py import MPI

        if self._late:
            self._settle_late()

        buf = bytearray(nbytes)
        try:
            req = self._win.Rget(buf, r, (offset, nbytes, self._byte()))
            deadline = time.monotonic() + timeout
            while not req.Test():
                if time.monotonic() > deadline:
                    self._late.append((req, buf))
                    return None
        except MPI.Exception as err:  # its process is gone (its host died)
            raise PeerLost(r, str(err).strip().splitlines()[-1].strip()) from None
        return bytes(buf)

    def _settle_late(self, timeout: float = 0.0) -> None:
        r"""Test the reads given up on (a slow or lossy link): MPI still writes their
        answers into their buffers, so those must live until the reads complete, and
        the window may be freed only after that."""
        from mpi4py import MPI

        deadline = time.monotonic() + timeout
        while self._late:
            try:
                self._late = [(req, buf) for req, buf in self._late if not req.Test()]
            except MPI.Exception:  # a peer is gone: its read never completes
                self._late = []
            if not self._late or time.monotonic() > deadline:
                return

    @staticmethod
    def _byte():
        from mpi4py import MPI

        return MPI.BYTE

    def header(self, r: int) -> tuple | None:
        raw = self._read(r, 0, _HEAD.size)
        return None if raw is None else _HEAD.unpack(raw)

    # -- this rank's part -----------------------------------------------------------------
    def enter(self, seq: int) -> None:
        """Publish that this rank enters collective `seq` (with no fingerprint to check)."""
        self.publish(seq, _NO_REC)

    def set_status(self, status: int, code: int, seq: int) -> None:
        _STATUS.pack_into(self._mine, 0, status, code, seq)
        self._win.Sync()

    # -- the neighbour check ----------------------------------------------------------------
    def publish(self, seq: int, rec: tuple) -> None:
        """Publish this rank's fingerprint `rec` of collective `seq`."""
        _REC.pack_into(self._mine, _RING_AT + (seq % RING) * _REC.size, *rec, seq)

    def check(self, seq: int, rec: tuple) -> bool:
        r"""Publish fingerprint `rec` of collective `seq` and compare it with the ones the
        neighbours on this host have already published, without waiting. True when the
        collective may start now; False when it must wait until :meth:`compare` says the
        neighbours agree (a rooted collective whose neighbours have not published yet, or
        a right-hand neighbour on another host). Raises :class:`MismatchError` on a
        mismatch."""
        at = _RING_AT + (seq % RING) * _REC.size
        mine = (*rec, seq)
        _REC.pack_into(self._mine, at, *mine)
        self._win.Sync()  # a full memory barrier between that store and the loads below
        if self._left_view is not None:  # unseen: it compares with this rank's on arrival
            self._peek(self._left_view, at, mine, self._left)
        if self._right_view is None:
            return False
        if self._peek(self._right_view, at, mine, self._right):
            return True
        return rec[0] in _ALL_ENTER and rec[6] != 0  # numel 0 may complete alone

    def _peek(self, view, at: int, mine: tuple, r: int) -> bool:
        """Compare with group rank `r`'s fingerprint of the same collective in shared
        memory `view`: False while `r` has not published it, True when they agree (or
        `r` ran so far ahead that its ring no longer holds it); raises when they
        differ."""
        theirs = _REC.unpack_from(view, at)
        if theirs == mine:
            return True
        seq = mine[11]
        if theirs[11] != seq:
            return theirs[11] > seq
        if not theirs[0] or not mine[0]:  # a collective without a fingerprint
            return True
        again = _REC.unpack_from(view, at)
        if again != theirs:  # it was being rewritten (a ring ahead)
            return again[11] > seq
        self._mismatch(mine, r, theirs)

    def compare(self, seq: int, rec: tuple) -> bool:
        r"""Compare published fingerprint `rec` of collective `seq` with the right-hand
        neighbour's (and for a rooted collective the left-hand one's too): False while
        one of them has not published it yet, True when they agree (or the neighbour ran
        so far ahead that its ring no longer holds it). Raises :class:`MismatchError`
        (after publishing both sides) when they differ."""
        both = rec[0] not in _ALL_ENTER and self._left != self._right
        return self._compare_with(self._right, seq, rec) and (
            not both or self._compare_with(self._left, seq, rec)
        )

    def _compare_with(self, r: int, seq: int, rec: tuple) -> bool:
        at = _RING_AT + (seq % RING) * _REC.size
        mine = (*rec, seq)
        view = self._views.get(r)
        if view is not None:  # on this host: plain reads
            return self._peek(view, at, mine, r)
        raw = self._read(r, at, _REC.size, timeout=1.0)
        if raw is None:
            return False
        theirs = _REC.unpack(raw)
        if theirs[11] != seq:
            return theirs[11] > seq
        if theirs == mine or not theirs[0] or not rec[0]:
            return True
        self._mismatch(mine, r, theirs)

    def _mismatch(self, mine: tuple, r: int, theirs: tuple):
        seq = mine[11]
        _REC.pack_into(self._mine, _MINE_AT, *mine)
        _REC.pack_into(self._mine, _THEIRS_AT, *theirs)
        self.set_status(MISMATCH, r, seq)
        raise MismatchError(
            mismatch_message(seq, self.rank, self.ranks, self.rank, mine, r, theirs)
        )

    def first_mismatch(self) -> tuple | None:
        """(group rank a, its fingerprint, rank b, b's fingerprint) of a mismatch some rank
        has published, or None. Reads every rank's status: call it only while waiting."""
        for r in range(self.size):
            raw = self._read(r, 0, _HEAD.size, timeout=0.2)  # skip ranks that do not answer
            head = None if raw is None else _HEAD.unpack(raw)
            if head is not None and head[0] == MISMATCH:
                raw = self._read(r, _MINE_AT, 2 * _REC.size)
                if raw is not None:
                    return (
                        r,
                        _REC.unpack(raw[: _REC.size]),
                        head[1],
                        _REC.unpack(raw[_REC.size :]),
                    )
        return None

    def raise_if_mismatch(self, waited: float) -> None:
        r"""While waiting: every :data:`_SCAN_EVERY_S`, look for a mismatch another rank
        found and raise it here too."""
        now = time.monotonic()
        if waited < _SCAN_AFTER_S or now - self._last_scan < _SCAN_EVERY_S:
            return
        self._last_scan = now
        found = self.first_mismatch()
        if found is not None:
            a, rec_a, b, rec_b = found
            raise MismatchError(
                mismatch_message(rec_a[0], self.rank, self.ranks, a, rec_a, b, rec_b)
            )

    # -- progress (stall reports) -----------------------------------------------------------
    def progress(self, timeout: float = 5.0, answers: dict | None = None) -> list[int | None]:
        """Every rank's last-entered collective; None for a rank whose part could not be
        read within `timeout` seconds. `answers` (rank -> collective) fills in as ranks
        answer, for a watchdog when a read hangs in MPI (a host's link down)."""
        answers = {} if answers is None else answers
        nbytes = RING * _REC.size
        remote = {}
        for r in range(self.size):
            if r in self._views:
                answers[r] = _last_seq(bytes(self._views[r][_RING_AT : _RING_AT + nbytes]))
            else:
                buf = bytearray(nbytes)
                remote[r] = (buf, self._win.Rget(buf, r, (_RING_AT, nbytes, self._byte())))
        deadline = time.monotonic() + timeout
        while remote and time.monotonic() < deadline:
            for r, (buf, req) in list(remote.items()):
                if req.Test():
                    answers[r] = _last_seq(bytes(buf))
                    del remote[r]
        self._late += [(req, buf) for buf, req in remote.values()]
        return [answers.get(r) for r in range(self.size)]

    def entered(self, r: int) -> int | None:
        """The last collective rank `r` entered (None when its part cannot be read)."""
        raw = self._read(r, _RING_AT, RING * _REC.size)
        return None if raw is None else _last_seq(raw)

    def laggards(self, seq: int) -> list[int]:
        """Ranks that have not yet entered collective `seq` (or did not answer)."""
        return [r for r, s in enumerate(self.progress()) if s is None or s < seq]

    def op_of(self, r: int, seq: int) -> str:
        """The op rank `r` published for collective `seq` ("?" if gone from its ring)."""
        raw = self._read(r, _RING_AT + (seq % RING) * _REC.size, _REC.size)
        if raw is None:
            return "?"
        rec = _REC.unpack(raw)
        return describe(rec)[0] if rec[11] == seq else "?"

    def close(self) -> None:
        """Free the window (collective; also done at exit); the board is unusable afterwards."""
        if self._win is not None:
            atexit.unregister(self.close)
            self._settle_late(timeout=10.0)
            self._views.clear()
            self._right_view = self._left_view = None
            self._mine.release()
            self._win.Unlock_all()
            self._win.Free()
            self._win = None


def _last_seq(ring: bytes) -> int:
    return max(rec[11] for rec in _REC.iter_unpack(ring))
