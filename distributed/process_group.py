"""Process groups: joining the job, ranks, and the machinery every collective shares
(backend choice per array, sequence numbers, progress board, timeouts, debug checks).

A process started by ``mpiexec``/``mpirun``/``ember-launch`` joins ``MPI.COMM_WORLD``; a
lone process (no MPI launcher in its environment) gets a world of size 1 that needs
neither MPI nor mpi4py, where every collective completes locally with the right result.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections import deque
from datetime import timedelta

import numpy as np

from ..launch import env as launch_env
from . import diagnostics, lifecycle, pending
from .backends.base import Backend, Work
from .backends.local import LocalBackend
from .backends.mpi import MPIBackend
from .board import DESTROYED, EXITED, MismatchError, PeerLost, ProgressBoard, encode
from .detail import check_fingerprints

DEFAULT_TIMEOUT = timedelta(minutes=5)
_BACKENDS = ("auto", "mpi", "nccl", "gloo")


class ProcessGroup:
    r"""A set of ranks that run collectives together (``dist.group.WORLD`` or one made
    by ``new_group``). ``rank()``/``size()`` are this process's place in it."""

    def __init__(self, comm, ranks, timeout: float, backend_name: str, nccl_device=None):
        self.comm = comm  # mpi4py communicator, None for the world of one
        self.ranks = list(ranks)  # global ranks of the members, in group-rank order
        self.timeout = timeout
        self.backend_name = backend_name
        self._seq = 0
        self._op = ""  # the collective this rank is in (for reports while it waits)
        self._broken: str | None = None  # why this group can no longer be used
        self._unstarted: deque = deque()  # (work, start, fingerprint) awaiting neighbours
        self.pid = os.getpid()
        self.debug = _debug_from_env()
        self.checks = os.environ.get("EMBER_COLLECTIVE_CHECKS", "1") != "0"
        # the backend for host (NumPy) arrays: MPI, or the local one in a world of one
        if comm is None:
            self._rank, self._size = 0, 1
            self.host_backend = LocalBackend()
            self.board = None
        else:
            self._rank, self._size = comm.Get_rank(), comm.Get_size()
            self.host_backend = MPIBackend(comm)
            self.board = ProgressBoard(comm, self.ranks, False) if self._size > 1 else None
        self.nccl = None
        if nccl_device is not None and comm is not None:  # pragma: no cover - needs a GPU
            from .backends.nccl import NCCLBackend

            self.nccl = NCCLBackend(comm, nccl_device)

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def group_rank(self, global_rank: int) -> int:
        try:
            return self.ranks.index(global_rank)
        except ValueError:
            raise ValueError(
                f"global rank {global_rank} is not part of this group (ranks {self.ranks})"
            ) from None

    def backend_for(self, array) -> Backend:
        if self.nccl is not None and not isinstance(array, np.ndarray):
            return self.nccl
        return self.host_backend

    def _on_stall(self, op: str, seq: int, waited: float):
        from . import faults

        faults.report_stall(self, op, seq, waited)

    def _waiting(self, waited: float) -> None:
        """Called while this rank waits (for its neighbour's fingerprint or for a
        collective): raise a mismatch another rank found; abort past the timeout."""
        try:
            self.board.raise_if_mismatch(waited)
        except MismatchError as err:
            self._broken = str(err)
            raise
        except PeerLost as lost:
            from . import faults

            rank = self.ranks[lost.rank]
            faults._report(
                self.comm,
                f"lost rank {rank} on host {diagnostics.host_of(rank)} while waiting in "
                f"collective #{self._seq} ({self._op}): {lost.why}; aborting the job",
            )
            faults._abort(self.comm, 1)
        if waited > self.timeout:
            self._on_stall(self._op, self._seq, waited)

    def run(self, op: str, start, outputs=None, finish=None, async_op=False, fingerprint=None):
        """Start one collective: ``start()`` returns its requests. The shared path of
        every collective: sequence number, fingerprint check with the ring neighbours on
        the progress board (``fingerprint()`` gives the fields all ranks must agree on;
        None for point-to-point, which has no place in the group's sequence), debug
        check, flight recorder, Work.

        The check (:meth:`ProgressBoard.check`) waits for no one where it need not; a
        collective that must wait for its neighbours' fingerprints (rooted ones, or a
        neighbour on another host) and is ``async_op`` returns at once and starts (in
        order) when a later call or a wait finds the neighbours there."""
        if self._broken is not None:
            raise MismatchError(f"{op}: this process group is unusable: {self._broken}")
        collective = fingerprint is not None
        if collective:
            self._seq += 1
        seq = self._seq
        stall = entry = rec = None
        if self._size > 1:
            fields = fingerprint() if collective else None
            entry = diagnostics.recorder.record(op, seq, self.ranks, fields)
            if collective and self.board is not None:
                self._op = op
                if self.checks and not self.debug:  # DETAIL compares all ranks instead
                    rec = encode(op, fields)
                else:
                    self.board.enter(seq)
            if self.debug and collective:
                check_fingerprints(self, op, fields)
            stall = (self.timeout, self._on_stall, self._waiting if self.board else None)
        work = Work([], outputs, finish, stall, op, seq, entry)
        if rec is None:
            work._requests = _as_list(start())
        elif self._guard(self.board.check, seq, rec) and not self._unstarted:
            work._requests = _as_list(start())
        else:  # after its neighbours (and the collectives queued before it)
            pending.queue(self, work, start, rec, async_op)
        if async_op:
            return work
        work.wait()
        return None

    def _guard(self, check, seq: int, rec: tuple):
        """`check(seq, rec)`, leaving the group unusable when it finds a mismatch."""
        try:
            return check(seq, rec)
        except MismatchError as err:
            self._broken = str(err)
            raise

    def _start_through(self, work: Work, block: bool = False) -> bool:
        """For ``Work``'s polls: see :func:`pending.start_through`."""
        return pending.start_through(self, work, block)

    def __repr__(self) -> str:
        return f"<ProcessGroup {self.backend_name} rank {self._rank}/{self._size} {self.ranks}>"


def _as_list(reqs) -> list:
    return reqs if isinstance(reqs, list) else [reqs]


class _NonMember:
    """What ``new_group`` returns on ranks outside the group: collectives are no-ops."""

    def __repr__(self) -> str:
        return "<non-group member>"


NON_GROUP_MEMBER = _NonMember()


class group:
    """``dist.group.WORLD``: the default group once ``init_process_group`` has run."""

    WORLD: ProcessGroup | None = None


_world: ProcessGroup | None = None
_local: tuple[int, int] = (0, 1)  # (local rank, local world size)
_debug_override: bool | None = None


def _debug_from_env() -> bool:
    if _debug_override is not None:
        return _debug_override
    level = os.environ.get("EMBER_DISTRIBUTED_DEBUG", os.environ.get("TORCH_DISTRIBUTED_DEBUG"))
    return (level or "").upper() == "DETAIL"


def set_debug_level(level: str) -> None:
    r"""``"DETAIL"`` checks before every collective that all ranks call the same op with
    the same shape and dtype (one small all-gather each); ``"OFF"`` turns it off. The
    environment variable ``EMBER_DISTRIBUTED_DEBUG=DETAIL`` does the same at startup."""
    global _debug_override
    if level.upper() not in ("OFF", "INFO", "DETAIL"):
        raise ValueError(f"debug level must be OFF, INFO or DETAIL, got {level!r}")
    _debug_override = level.upper() == "DETAIL"
    for g in (_world, *_subgroups):
        if g is not None:
            g.debug = _debug_override


_subgroups: list[ProcessGroup] = []


# -- joining the job -----------------------------------------------------------------------


def _launched_by_mpi() -> int | None:
    """World size an MPI launcher announced in the environment, or None."""
    info = launch_env.detect()
    return info.world_size if info.under_mpi else None


def _world_comm():
    """MPI.COMM_WORLD when this process runs under an MPI launcher (or mpi4py already
    initialised MPI), else None."""
    announced = _launched_by_mpi()
    already = "mpi4py.MPI" in sys.modules and sys.modules["mpi4py.MPI"].Is_initialized()
    if announced is None and not already:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        if announced and announced > 1:
            raise RuntimeError(
                f"this process was launched as one of {announced} MPI ranks, but mpi4py is "
                "not installed; install it with `pip install ember[mpi]`"
            ) from None
        return None
    return MPI.COMM_WORLD


def _timeout_seconds(timeout) -> float:
    if timeout is None:
        return DEFAULT_TIMEOUT.total_seconds()
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    return seconds


def init_process_group(
    backend: str | None = "auto",
    init_method: str | None = None,
    timeout: timedelta | float | None = None,
    world_size: int = -1,
    rank: int = -1,
    store=None,
    group_name: str = "",
    pg_options=None,
    device_id=None,
) -> None:
    r"""Join the job: MPI.COMM_WORLD under an MPI launcher, else a world of one.

    Args:
        backend: ``"mpi"``, ``"nccl"`` (CuPy tensors over NCCL; MPI bootstraps it and
            still carries CPU tensors and objects), ``"auto"`` (NCCL when CuPy, NCCL and
            a GPU are there, else MPI) or ``"gloo"`` (accepted for ported scripts: MPI).
        timeout: seconds or ``timedelta``; a collective waiting longer than this aborts
            the job with a report of the ranks that never arrived (default 5 minutes).
        world_size, rank: optional checks against what the launcher started.
        init_method, store, group_name, pg_options: accepted for ported scripts and
            unused: the MPI launcher does the rendezvous.
        device_id: the GPU index for NCCL (default: local rank modulo the GPU count).

    A startup self-check (one small all-gather; ``EMBER_SELF_CHECK=0`` skips it) builds
    the rank → host → device table (``dist.get_rank_table()``, logged by rank 0 at debug
    level) and raises on every rank if two ranks of one host would share a GPU.

    Example::

        >>> dist.init_process_group("mpi")
        >>> dist.get_rank(), dist.get_world_size()
    """
    global _world, _local
    if _world is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    name = (backend or "auto").lower()
    if name not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    seconds = _timeout_seconds(timeout)
    comm = _world_comm()
    if comm is None:
        size, me = 1, 0
    else:
        size, me = comm.Get_size(), comm.Get_rank()
    if world_size not in (-1, None) and world_size != size:
        raise ValueError(f"world_size={world_size} but the job was launched with {size} processes")
    if rank not in (-1, None) and rank != me:
        raise ValueError(f"rank={rank} but the launcher made this process rank {me}")
    if comm is not None:
        from mpi4py import MPI

        from . import faults

        faults.install(comm)
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=me)
        _local = (node.Get_rank(), node.Get_size())
        node.Free()
    else:
        _local = (0, 1)
    nccl_device = _pick_nccl_device(name, device_id)
    if os.environ.get("EMBER_SELF_CHECK", "1") != "0":
        diagnostics.self_check(comm, _local[0], nccl_device)
    resolved = "nccl" if nccl_device is not None else ("mpi" if name != "gloo" else "gloo")
    if comm is None and name == "nccl":
        resolved = "nccl"  # a world of one needs no communicator
    _world = ProcessGroup(comm, range(size), seconds, resolved, nccl_device)
    group.WORLD = _world
    if size > 1:
        lifecycle.record_exit_codes()
        atexit.register(_at_exit)
        lifecycle.tell_watcher(lifecycle.LIVE)


def _pick_nccl_device(name: str, device_id):
    if name not in ("nccl", "auto"):
        return None
    from .backends.nccl import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        if name == "nccl" and _launched_by_mpi():
            raise RuntimeError(f"backend 'nccl' is not available: {reason}")
        return None
    if device_id is not None:  # pragma: no cover - needs a GPU
        return device_id.index if hasattr(device_id, "index") else int(device_id)
    from ..core.backend import cupy_or_none

    return _local[0] % cupy_or_none().cuda.runtime.getDeviceCount()  # pragma: no cover


def is_available() -> bool:
    """True: the world-of-one always works; multi-process jobs need mpi4py."""
    return True


def is_initialized() -> bool:
    return _world is not None


def is_mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_nccl_available() -> bool:
    from .backends.nccl import is_available as nccl_ok

    return nccl_ok()


def resolve(pg) -> ProcessGroup | None:
    """The group to use (default: WORLD); None on ranks outside ``pg``."""
    if pg is NON_GROUP_MEMBER:
        return None
    if pg is None:
        if _world is None:
            raise RuntimeError(
                "Default process group has not been initialized, please make sure to call "
                "init_process_group."
            )
        return _world
    if not isinstance(pg, ProcessGroup):
        raise TypeError(f"group must be a ProcessGroup, got {type(pg).__name__}")
    return pg


def get_rank(group: ProcessGroup | None = None) -> int:
    """This process's rank in ``group`` (the world by default); -1 outside the group."""
    pg = resolve(group)
    return -1 if pg is None else pg.rank()


def get_world_size(group: ProcessGroup | None = None) -> int:
    pg = resolve(group)
    return -1 if pg is None else pg.size()


def get_local_rank() -> int:
    """Rank among the processes on this host (from MPI's shared-memory split)."""
    resolve(None)
    return _local[0]


def get_local_world_size() -> int:
    resolve(None)
    return _local[1]


def get_backend(group: ProcessGroup | None = None) -> str:
    pg = resolve(group)
    if pg is None:
        raise ValueError("Invalid process group specified")
    return pg.backend_name


def get_process_group_ranks(group: ProcessGroup) -> list[int]:
    pg = resolve(group)
    return [] if pg is None else list(pg.ranks)


def get_global_rank(group: ProcessGroup, group_rank: int) -> int:
    """The global rank of ``group``'s member number ``group_rank``."""
    pg = resolve(group)
    if pg is None or not 0 <= group_rank < pg.size():
        raise ValueError(f"group rank {group_rank} is not part of {group}")
    return pg.ranks[group_rank]


def get_group_rank(group: ProcessGroup, global_rank: int) -> int:
    """The rank within ``group`` of global rank ``global_rank``."""
    pg = resolve(group)
    if pg is None:
        raise ValueError("this rank is not part of the group")
    return pg.group_rank(global_rank)


def is_main_process() -> bool:
    """True on global rank 0 (and in a process that never initialised distributed)."""
    return _world is None or _world.rank() == 0


def print0(*args, **kwargs) -> None:
    """``print`` on global rank 0 only."""
    if is_main_process():
        print(*args, **kwargs)


def new_group(ranks=None, timeout=None, backend=None, pg_options=None):
    r"""A group of the given global ``ranks``; every rank of the world must call it
    (in the same order as other collectives). Ranks outside get ``NON_GROUP_MEMBER``."""
    world = resolve(None)
    members = sorted(set(range(world.size()) if ranks is None else ranks))
    for r in members:
        if not 0 <= r < world.size():
            raise ValueError(f"new_group: rank {r} is outside the world of size {world.size()}")
    seconds = world.timeout if timeout is None else _timeout_seconds(timeout)
    if world.comm is None:
        pg = ProcessGroup(None, members, seconds, world.backend_name)
        _subgroups.append(pg)
        return pg
    from mpi4py import MPI

    me = world.rank()
    color = 0 if me in members else MPI.UNDEFINED
    comm = world.comm.Split(color, key=me)
    if comm == MPI.COMM_NULL:
        return NON_GROUP_MEMBER
    device = world.nccl.device.id if world.nccl is not None else None
    pg = ProcessGroup(comm, members, seconds, world.backend_name, device)
    _subgroups.append(pg)
    return pg


group_cls = group  # `group` is also a parameter name in torch's signatures


def destroy_process_group(group: ProcessGroup | None = None) -> None:
    """Free ``group`` (default: all groups, after which init may be called again). Like
    every rank's exit, this waits for the other ranks to leave too, and aborts the job
    when one of them waits in a collective this rank will never join."""
    if group is None:
        _leave_all(DESTROYED, "destroyed its process group")
        return
    if group is NON_GROUP_MEMBER:
        return
    if group in _subgroups:
        lifecycle.leave(group, DESTROYED, "destroyed its process group")
        _subgroups.remove(group)
        _free(group)


def _leave_all(status: int, what: str) -> None:
    global _world
    for pg in (*_subgroups, _world):
        if pg is not None:
            lifecycle.leave(pg, status, what)
    for pg in _subgroups:
        _free(pg)
    _subgroups.clear()
    if _world is not None:
        _free(_world)
        lifecycle.tell_watcher(lifecycle.DONE)
    _world = None
    group_cls.WORLD = None
    diagnostics.rank_table_clear()


def _at_exit() -> None:
    """At the interpreter's exit with the process group still live: leave it cleanly."""
    atexit.unregister(_at_exit)
    if _world is not None and os.getpid() == _world.pid:  # not in a forked child
        _leave_all(EXITED, lifecycle.exit_message())


def _free(pg: ProcessGroup) -> None:
    if pg.board is not None:
        pg.board.close()
        pg.board = None
    if pg.comm is not None:
        from mpi4py import MPI

        if pg.comm != MPI.COMM_WORLD:
            pg.comm.Free()
        pg.comm = None


def barrier(group: ProcessGroup | None = None, async_op: bool = False, device_ids=None):
    """Wait until every rank of ``group`` reaches this call."""
    pg = resolve(group)
    if pg is None:
        return None
    return pg.run("barrier", pg.host_backend.barrier, async_op=async_op, fingerprint=dict)
