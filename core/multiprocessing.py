"""``torch.multiprocessing``: the standard library's ``multiprocessing`` plus ``spawn``,
which starts ``nprocs`` processes running ``fn(i, *args)`` and fails as a group: when one
raises, the others are terminated and the error (with its traceback) is raised here."""

from __future__ import annotations

import multiprocessing as _mp
import multiprocessing.connection
import traceback
from multiprocessing import *  # noqa: F403  (torch.multiprocessing re-exports it too)


class ProcessException(Exception):
    def __init__(self, msg: str, error_index: int, pid: int):
        super().__init__(msg)
        self.msg, self.error_index, self.pid = msg, error_index, pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid)


class ProcessRaisedException(ProcessException):
    """A spawned process raised; the message holds its traceback."""


class ProcessExitedException(ProcessException):
    """A spawned process exited with a non-zero code or a signal."""

    def __init__(
        self, msg: str, error_index: int, error_pid: int, exit_code: int, signal_name=None
    ):
        super().__init__(msg, error_index, error_pid)
        self.exit_code, self.signal_name = exit_code, signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid, self.exit_code, self.signal_name)


def _run(fn, i: int, args: tuple, errors) -> None:
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass
    except BaseException:
        errors.put(traceback.format_exc())
        raise SystemExit(1) from None


class ProcessContext:
    """The processes of one :func:`start_processes` call; ``join()`` waits for them."""

    def __init__(self, processes, error_queues):
        self.processes, self.error_queues = processes, error_queues

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the processes; True when all finished cleanly. The first failure
        terminates the rest and raises ProcessRaisedException/ProcessExitedException."""
        alive = [p for p in self.processes if p.is_alive() or p.exitcode is None]
        if alive:
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=timeout)
        for i, p in enumerate(self.processes):
            if p.exitcode is not None and p.exitcode != 0:
                self._terminate_all()
                self._raise(i, p)
        return all(p.exitcode == 0 for p in self.processes)

    def _terminate_all(self) -> None:
        for p in self.processes:
            if p.is_alive():
                p.terminate()
        for p in self.processes:
            p.join()

    def _raise(self, i: int, p) -> None:
        queue = self.error_queues[i]
        if not queue.empty():
            text = queue.get()
            raise ProcessRaisedException(
                f"\n\n-- Process {i} terminated with the following error:\n{text}", i, p.pid
            )
        if p.exitcode < 0:
            import signal

            name = signal.Signals(-p.exitcode).name
            raise ProcessExitedException(
                f"process {i} terminated with signal {name}", i, p.pid, p.exitcode, name
            )
        raise ProcessExitedException(
            f"process {i} terminated with exit code {p.exitcode}", i, p.pid, p.exitcode
        )


def start_processes(
    fn, args=(), nprocs: int = 1, join: bool = True, daemon: bool = False, start_method="spawn"
):
    """Start ``nprocs`` processes running ``fn(i, *args)`` with ``start_method``."""
    ctx = _mp.get_context(start_method)
    processes, queues = [], []
    for i in range(nprocs):
        errors = ctx.SimpleQueue()
        p = ctx.Process(target=_run, args=(fn, i, tuple(args), errors), daemon=daemon)
        p.start()
        processes.append(p)
        queues.append(errors)
    context = ProcessContext(processes, queues)
    if not join:
        return context
    while not context.join():
        pass
    return None


def spawn(
    fn, args=(), nprocs: int = 1, join: bool = True, daemon: bool = False, start_method="spawn"
):
    r"""Run ``fn(i, *args)`` in ``nprocs`` new processes (i = 0 .. nprocs-1), as
    ``torch.multiprocessing.spawn``; with ``join=False`` returns a :class:`ProcessContext`.

    Example::

        >>> ember.multiprocessing.spawn(train, args=(world_size,), nprocs=world_size)
    """
    return start_processes(fn, args, nprocs, join, daemon, start_method)
