r"""How a rank leaves a job: never silently while others wait for it.

A rank that ends (the script's end, ``sys.exit``) or destroys its process group publishes
that on the progress board, then waits until every rank of the group has done the same.
If meanwhile another rank waits in a collective this rank will never join, the job is
aborted at once with e.g. ``rank 1 exited (code 0) while ranks [0] wait in collective #12
(all_reduce)`` instead of waiting out the group timeout.

A rank that vanishes without running any Python (``os._exit``, a crash in C) cannot say
so itself: under ember-launch its bootstrap (launch/_rank.py) watches it through a pipe
(``EMBER_EXIT_FD``) and fails the job when it ends while its process group was live.
"""

from __future__ import annotations

import os
import sys
import time

from . import board as _board
from . import faults

EXIT_FD_VAR = "EMBER_EXIT_FD"  # set by launch/_rank.py: the pipe to the rank's watcher
LIVE, DONE = b"live\n", b"done\n"  # what the watcher hears: group initialised / left cleanly
_exit_code = [0]
_real_exit = sys.exit


def _take_watcher_fd() -> int | None:
    """The pipe to the watcher, taken out of the environment so this rank's own children
    (which do not have that descriptor) never write to whatever has its number there."""
    fd = os.environ.pop(EXIT_FD_VAR, None)
    try:
        fd = int(fd) if fd else None
        if fd is not None:
            os.set_inheritable(fd, False)
    except (OSError, ValueError):  # no such pipe here (the variable came from elsewhere)
        return None
    return fd


_watcher_fd = _take_watcher_fd()


def tell_watcher(message: bytes) -> None:
    """Send `message` to ember-launch's per-rank watcher, if there is one."""
    if _watcher_fd is not None:
        try:
            os.write(_watcher_fd, message)
        except OSError:  # the watcher is gone
            pass


def _recording_exit(status=None):
    """``sys.exit`` that remembers its code for the exit report."""
    if status is None:
        _exit_code[0] = 0
    elif isinstance(status, int):
        _exit_code[0] = status
    else:
        _exit_code[0] = 1
    _real_exit(status)


def record_exit_codes() -> None:
    sys.exit = _recording_exit


def leave(pg, status: int, what: str) -> None:
    r"""Publish that this rank leaves `pg` (``EXITED`` or ``DESTROYED``) after its last
    collective, then wait until every rank has left too. Aborts the job, naming the
    ranks and the collective, when some rank waits in a collective this rank never
    joins. `what` says how this rank leaves ("exited (code 0)")."""
    board = pg.board
    if board is None:
        return
    seq = pg._seq
    board.set_status(status, _exit_code[0], seq)
    while True:
        waiting, pending = [], False
        for r in range(board.size):
            if r == board.rank:
                continue
            head = board.header(r)
            if head is not None and head[0] in (_board.EXITED, _board.DESTROYED):
                continue
            entered = board.entered(r)
            if entered is not None and entered > seq:
                waiting.append((r, entered))
            else:
                pending = True
        if waiting:
            _abort_for(pg, what, seq, waiting)
        if not pending:
            return
        time.sleep(0.01)


def _abort_for(pg, what: str, seq: int, waiting: list[tuple[int, int]]) -> None:
    r, their_seq = min(waiting, key=lambda w: w[1])
    op = pg.board.op_of(r, their_seq)
    ranks = sorted(pg.ranks[w] for w, _ in waiting)
    me = pg.ranks[pg.board.rank]
    text = (
        f"rank {me} {what} while ranks {ranks} wait in collective #{their_seq} ({op}); "
        f"its last collective was #{seq}; aborting the job"
    )
    comm = faults._installed.get("comm", pg.comm)
    faults._report(comm, text)
    try:
        faults._abort(comm, 1)
    finally:  # MPI_Abort may return during the interpreter's exit: leave regardless
        os._exit(1)


def exit_message() -> str:
    return f"exited (code {_exit_code[0]})"
