"""The small interface every communication backend implements, and the handles that
asynchronous collectives return (``Work``, and the ``Future`` that comm hooks chain).

A backend sees contiguous arrays only (NumPy or CuPy) and starts a collective without
waiting for it; it returns a ``Request`` (anything with ``test() -> bool``). The process
group turns requests into ``Work`` handles, whose ``wait`` polls with a short backoff
against the group's timeout, so nothing ever blocks forever inside the MPI/NCCL library.
"""

from __future__ import annotations

import enum
import os
import time


class ReduceOp(enum.Enum):
    r"""Reduction applied by ``all_reduce``, ``reduce`` and ``reduce_scatter``.

    ``AVG`` is ``SUM`` followed by a division by the group size (floating point only).
    """

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"

    def __repr__(self) -> str:
        return f"ReduceOp.{self.name}"


class Request:
    """A started operation; ``test()`` returns True once it has finished."""

    def test(self) -> bool:
        raise NotImplementedError


class DoneRequest(Request):
    """An operation that finished when it started (world size 1, local copies)."""

    def test(self) -> bool:
        return True


DONE = DoneRequest()


class Backend:
    """One communicator's collectives on contiguous arrays.

    ``op`` arguments are ``ReduceOp`` members other than ``AVG`` (the process group
    turns AVG into SUM and divides). Every method starts the operation and returns a
    ``Request``; outputs are written in place.
    """

    name = "base"
    rank = 0
    size = 1

    def supports(self, array) -> bool:
        """Whether this backend can move ``array`` (its dtype and device) natively."""
        raise NotImplementedError

    def all_reduce(self, array, op: ReduceOp) -> Request:
        raise NotImplementedError

    def broadcast(self, array, root: int) -> Request:
        raise NotImplementedError

    def reduce(self, array, op: ReduceOp, root: int) -> Request:
        raise NotImplementedError

    def all_gather(self, out, array) -> Request:
        """``out`` holds ``size`` blocks the shape of ``array``, in rank order."""
        raise NotImplementedError

    def reduce_scatter(self, out, array, op: ReduceOp) -> Request:
        """``array`` holds ``size`` blocks the shape of ``out``; rank r gets block r."""
        raise NotImplementedError

    def all_to_all(self, out, array, send_counts, recv_counts) -> Request:
        """Element counts per peer; blocks are consecutive in rank order."""
        raise NotImplementedError

    def gather(self, out, array, root: int) -> Request:
        raise NotImplementedError

    def scatter(self, out, array, root: int) -> Request:
        raise NotImplementedError

    def send(self, array, peer: int, tag: int) -> Request:
        raise NotImplementedError

    def recv(self, array, peer: int, tag: int) -> Request:
        raise NotImplementedError

    def barrier(self) -> Request:
        raise NotImplementedError


# -- handles ------------------------------------------------------------------------------

# MPI advances a non-blocking collective only inside MPI calls, so waiting means testing
# in a tight loop (as MPI_Wait itself spins). Only a wait this long (a late peer, not a
# large message) backs off to sleeps, to leave the CPU alone until the timeout.
_SPIN_S = 2.0
_YIELD_AFTER_S = 1e-3
_MAX_SLEEP_S = 1e-2
# A wait this long starts looking at the other ranks (the progress board); before that the
# loop only tests, as MPI advances transfers only inside such calls.
_LOOK_AROUND_S = 0.05


class Work:
    r"""Handle of a collective started with ``async_op=True``.

    ``wait()`` blocks until the collective has finished and its outputs are written
    (raising ``RuntimeError`` if ``timeout`` seconds pass first; past the group's own
    timeout the job is aborted with a report of the ranks that never arrived).
    ``is_completed()`` tests without blocking; ``result()`` returns the output tensors.

    Example::

        >>> work = dist.all_reduce(t, async_op=True)
        >>> ...  # overlap other work
        >>> work.wait()
    """

    __slots__ = (
        "_requests",
        "_finish",
        "_outputs",
        "_done",
        "_stall",
        "op",
        "seq",
        "_entry",
        "_group",
    )

    def __init__(self, requests, outputs, finish=None, stall=None, op="", seq=0, entry=None):
        self._requests = list(requests)
        self._outputs = outputs
        self._finish = finish
        # (timeout_s, on_stall(op, seq, waited)[, on_wait(waited)]) from the process group
        self._stall = stall
        self._done = False
        self.op, self.seq = op, seq
        self._entry = entry  # the flight recorder's FlightEntry, marked done with the work
        self._group = None  # the process group that has yet to start it

    def _poll(self) -> bool:
        if self._group is not None and not self._group._start_through(self):
            return False
        reqs = self._requests
        while reqs:
            if not reqs[0].test():
                return False
            reqs.pop(0)
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()
        self._done = True
        if self._entry is not None:
            self._entry.mark_done()
        return True

    def is_completed(self) -> bool:
        return self._done or self._poll()

    def wait(self, timeout=None) -> bool:
        if self._done or self._poll():
            return True
        if hasattr(timeout, "total_seconds"):
            timeout = timeout.total_seconds()
        stall = self._stall or (None, None)
        group_timeout, on_stall = stall[:2]
        on_wait = stall[2] if len(stall) > 2 else None
        start = time.perf_counter()
        sleep = 0.0
        while not self._poll():
            waited = time.perf_counter() - start
            if timeout is not None and waited > timeout:
                raise RuntimeError(
                    f"{self.op} (collective #{self.seq}) did not finish within {timeout:.3g} s"
                )
            if group_timeout is not None and waited > group_timeout:
                on_stall(self.op, self.seq, waited)
            if on_wait is not None and waited > _LOOK_AROUND_S:
                on_wait(waited)  # a mismatch found elsewhere ends this wait
            if waited > _SPIN_S:
                sleep = min(_MAX_SLEEP_S, max(2 * sleep, 1e-4))
                time.sleep(sleep)
            elif waited > _YIELD_AFTER_S:
                os.sched_yield()  # let a peer sharing this core run
        return True

    def result(self):
        self.wait()
        return self._outputs

    def get_future(self) -> Future:
        """A ``Future`` whose value is the list of output tensors (for comm hooks)."""
        return Future(self)

    def __repr__(self) -> str:
        state = "completed" if self._done else "pending"
        return f"<Work {self.op} #{self.seq} {state}>"


class Future:
    r"""A value that becomes available once a ``Work`` finishes, with ``then`` chaining
    (the subset of ``torch.futures.Future`` that DDP communication hooks use)."""

    __slots__ = ("_work", "_parent", "_callback", "_value", "_has_value")

    def __init__(self, work: Work | None = None, parent: Future | None = None, callback=None):
        self._work, self._parent, self._callback = work, parent, callback
        self._value, self._has_value = None, False

    @classmethod
    def completed(cls, value) -> Future:
        fut = cls()
        fut.set_result(value)
        return fut

    def set_result(self, value) -> None:
        self._value, self._has_value = value, True

    def done(self) -> bool:
        if self._has_value:
            return True
        if self._work is not None:
            return self._work.is_completed()
        return self._parent is not None and self._parent.done()

    def wait(self):
        if not self._has_value:
            if self._work is not None:
                self._work.wait()
                self.set_result(self._work._outputs)
            elif self._parent is not None:
                self._parent.wait()
                self.set_result(self._callback(self._parent))
            else:
                raise RuntimeError("Future has no result and nothing to wait for")
        return self._value

    def value(self):
        return self.wait()

    def then(self, callback) -> Future:
        """A Future of ``callback(self)``, run once this one is done."""
        return Future(parent=self, callback=callback)
