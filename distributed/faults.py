r"""Fault handling for MPI jobs: one failing rank takes the whole job down, loudly and quickly.

- :func:`install` makes an uncaught exception (in any thread), SIGTERM or SIGINT on one rank
  print ``[rank R/N host]``-prefixed details to stderr and ``MPI_Abort`` the job, instead of
  leaving the other ranks blocked forever in their next collective.
- :func:`abort_on_stall` names the ranks that never joined a collective (which the progress
  board, :mod:`.board`, tells without the others' participation).
- :func:`rank_prefix` and :class:`RankFilter` / :func:`rank_log_handler` for rank-aware output.

``comm`` is an mpi4py communicator (anything with ``Get_rank``, ``Get_size`` and ``Abort``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import NoReturn

_installed: dict = {}  # "comm" -> the communicator install() was given


def _position(comm=None) -> tuple[int, int]:
    if comm is not None:
        return comm.Get_rank(), comm.Get_size()
    if "comm" in _installed:
        return _position(_installed["comm"])
    from ..launch.env import detect

    info = detect()
    return info.rank, info.world_size


def rank_prefix(comm=None) -> str:
    """``"[rank R/N host] "`` for this process (from `comm`, the communicator given to
    :func:`install`, or the launcher's environment)."""
    rank, size = _position(comm)
    return f"[rank {rank}/{size} {socket.gethostname()}] "


def _report(comm, text: str) -> None:
    prefix = rank_prefix(comm)
    lines = text.rstrip("\n").splitlines() or [""]
    try:
        sys.stdout.flush()
    except Exception:  # stdout may already be closed; the report matters more
        pass
    sys.stderr.write("".join(f"{prefix}{line}\n" for line in lines))
    sys.stderr.flush()


ABORT_GRACE_S = 3.0  # how long MPI_Abort may take before this rank just exits


def _abort(comm, code: int = 1) -> NoReturn:
    # Hydra drops a rank's last stderr lines if the abort overtakes them; give the
    # report a moment to reach the launcher first.
    sys.stderr.flush()
    time.sleep(0.2)
    # MPI_Abort hangs when the launcher is unreachable (a link down): exit regardless,
    # so no rank is left running; ember-launch's bootstrap reports the exit.
    timer = threading.Timer(ABORT_GRACE_S, os._exit, (code,))
    timer.daemon = True
    timer.start()
    try:
        comm.Abort(code)
    finally:
        timer.cancel()
    raise SystemExit(code)  # only reached when Abort returns (a lone process, a test double)


def _tail() -> str:
    """The flight recorder's tail (the last collectives of this rank), or ""."""
    from .diagnostics import recorder

    return recorder.report()


def install(comm) -> None:
    r"""Make any failure on this rank abort the whole job within seconds.

    Installs ``sys.excepthook`` and ``threading.excepthook`` (print the rank-prefixed
    traceback to stderr, then ``comm.Abort(1)``) and, from the main thread, SIGTERM/SIGINT
    handlers that report the signal and abort. Calling it again does nothing.

    Example::

        >>> from mpi4py import MPI
        >>> faults.install(MPI.COMM_WORLD)
    """
    if "comm" in _installed:
        return
    _installed["comm"] = comm

    def excepthook(exc_type, exc, tb):
        _report(comm, "".join(traceback.format_exception(exc_type, exc, tb)) + _tail())
        _abort(comm, 1)

    def thread_excepthook(args):
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        text = "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        )
        _report(comm, f"uncaught exception in thread {name!r}:\n{text}{_tail()}")
        _abort(comm, 1)

    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        _report(comm, f"received {name}; aborting the job\n{_tail()}")
        _abort(comm, 128 + signum)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)


STALL_PROBE_S = 2.0  # how long a stalled rank asks the others how far they got
_stall_lock = threading.Lock()


def report_stall(pg, op: str, seq: int, waited: float) -> None:
    r"""Report the ranks of process group `pg` that never joined collective `seq` (and the
    hosts that do not answer at all), then abort the job. Reading a rank on an unreachable
    host can hang inside MPI: a watchdog then reports what is known so far, and, as the
    last resort, SIGALRM ends this rank, so none is left running where the launcher
    cannot reach it."""
    answers: dict = {}
    reported: list = []  # the watchdog and the waiting thread report once
    if pg.board is None:
        return _stall_report(pg, op, seq, waited, answers, None, reported)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(STALL_PROBE_S) + 2)
    watchdog = threading.Timer(
        STALL_PROBE_S, _stall_report, (pg, op, seq, waited, answers, STALL_PROBE_S, reported)
    )
    watchdog.daemon = True
    watchdog.start()
    pg.board.progress(STALL_PROBE_S, answers)
    watchdog.cancel()
    _stall_report(pg, op, seq, waited, answers, STALL_PROBE_S, reported)


def _stall_report(pg, op, seq, waited, answers: dict, probe, reported: list) -> None:
    from . import diagnostics

    with _stall_lock:
        if reported:
            return
        reported.append(seq)
        silent = [pg.ranks[r] for r in range(pg.size()) if probe and r not in answers]
        late = [pg.ranks[r] for r, s in sorted(answers.items()) if s is not None and s < seq]
        tail = diagnostics.recorder.report()
        laggards = sorted(late + silent)
        if laggards:
            tail += f"\nranks {laggards} never joined collective #{seq} ({op})"
        if silent:
            hosts = sorted({diagnostics.host_of(r) for r in silent})
            tail += (
                f"\nranks {silent} on host(s) {', '.join(hosts)} did not answer within "
                f"{probe:g} s: host unreachable or down"
            )
        _report(pg.comm, tail)
        abort_on_stall(pg.comm, op, seq, waited, laggards)


def abort_on_stall(comm, op: str, seq: int, waited: float, laggards: list[int]) -> NoReturn:
    r"""Report a collective that waited too long, naming the ranks that never joined it, and
    abort the job.

    Prints e.g. ``[rank 0/2 host] collective #12 all_reduce has waited 300.0 s; ranks [1]
    never joined it; aborting the job``.
    """
    who = f"ranks {sorted(laggards)} never joined it" if laggards else "every rank joined it"
    _report(comm, f"collective #{seq} {op} has waited {waited:.1f} s; {who}; aborting the job")
    _abort(comm, 1)


class RankFilter(logging.Filter):
    r"""Prefixes records with ``[rank R/N host]`` (as ``record.rank_prefix``) and lets
    records below WARNING through on rank 0 only.

    Example::

        >>> handler = logging.StreamHandler()
        >>> handler.addFilter(RankFilter())
        >>> handler.setFormatter(logging.Formatter("%(rank_prefix)s%(levelname)s %(message)s"))
    """

    def __init__(self, comm=None, all_ranks_level: int = logging.WARNING):
        super().__init__()
        self.comm = comm
        self.all_ranks_level = all_ranks_level

    def filter(self, record: logging.LogRecord) -> bool:
        rank, _ = _position(self.comm)
        record.rank_prefix = rank_prefix(self.comm)
        return rank == 0 or record.levelno >= self.all_ranks_level


def rank_log_handler(comm=None, stream=None) -> logging.Handler:
    r"""A stderr handler that prefixes each record with its rank: info from rank 0 only,
    warnings and errors from every rank.

    Example::

        >>> logging.getLogger("train").addHandler(rank_log_handler())
    """
    handler = logging.StreamHandler(stream)
    handler.addFilter(RankFilter(comm))
    handler.setFormatter(logging.Formatter("%(rank_prefix)s%(levelname)s %(name)s: %(message)s"))
    return handler
