r"""Running the job: mpiexec once, or again after a failure (``ember-launch --restarts K``).

A restarted job starts from scratch: every rank is relaunched, with
``EMBER_RESTART_COUNT`` = the number of restarts so far (0 on the first attempt), and is
expected to resume from its latest checkpoint::

    from ember.distributed.checkpoint import latest_checkpoint, load_checkpoint

    ckpt = latest_checkpoint(ckpt_dir)
    if ckpt:
        start = load_checkpoint(ckpt, model=ddp, optimizer=opt)["step"]

With restarts, the job's output passes through ember-launch, which keeps the last lines that
tell why an attempt failed (rank-prefixed lines, Python tracebacks, mpiexec's notices) and
prints them in a summary once the job succeeds or runs out of restarts.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable

from .rollcall import ROLLCALL_VAR, RollCall

RESTART_VAR = "EMBER_RESTART_COUNT"
TAIL_LINES = 50
# "[rank 1/2 host] " (ember.distributed.faults), "[1] " (Hydra -prepend-rank),
# "[1,0]<stderr>:" (Open MPI --tag-output)
_RANK_PREFIX = re.compile(r"\[rank \d+/\d+ |\[\d+\] |\[\d+,\d+\]<std")
# mpiexec's own word on a rank that died or aborted, or on its own failure (Hydra's
# banner and "[mpiexec@host]" errors, MPICH's abort line, Open MPI's notices)
_MPI_NOTICE = re.compile(
    r"BAD TERMINATION|RUNNING AT|EXIT CODE:|KILLED BY SIGNAL|EXIT STRING:"
    r"|exited on signal|noticed that process rank|returned a non-zero exit code"
    r"|called MPI_Abort|MPI_ABORT was invoked|^\[mpiexec@"
)
_TRACEBACK = "Traceback (most recent call last):"


class FailureTail:
    """The last `size` lines of a job's output that explain a failure: lines a rank
    prefixed, unprefixed Python tracebacks (through their exception line) and mpiexec's
    notices about dead ranks. Fed raw chunks of each output stream as they arrive."""

    def __init__(self, size: int = TAIL_LINES):
        self.lines: deque[str] = deque(maxlen=size)
        self._partial: dict[str, str] = {}
        self._in_traceback: dict[str, bool] = {}

    def feed(self, stream: str, chunk: bytes) -> None:
        text = self._partial.get(stream, "") + chunk.decode(errors="replace")
        *complete, self._partial[stream] = re.split(r"\r?\n|\r", text)
        for line in complete:
            self._consider(stream, line)

    def close(self) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._consider(stream, rest)
        self._partial.clear()

    def _consider(self, stream: str, line: str) -> None:
        if _RANK_PREFIX.match(line):
            self.lines.append(line)
        elif line.startswith(_TRACEBACK):
            self._in_traceback[stream] = True
            self.lines.append(line)
        elif self._in_traceback.get(stream):
            self.lines.append(line)
            if line and not line[0].isspace():  # the exception line ends the traceback
                self._in_traceback[stream] = False
        elif _MPI_NOTICE.search(line):
            self.lines.append(line.strip("= \t"))


def _pump(source, sink, stream: str, tail: FailureTail) -> None:
    """Copy `source` (a pipe) to `sink` (a text stream) chunk by chunk, feeding `tail`."""
    out = getattr(sink, "buffer", None)
    while chunk := source.read1(65536):
        tail.feed(stream, chunk)
        try:
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sink.write(chunk.decode(errors="replace"))
                sink.flush()
        except (BrokenPipeError, ValueError):  # our own output went away: keep draining
            out = None
            sink = _Discard()


class _Discard:
    def write(self, text):
        pass

    def flush(self):
        pass


def run_once(
    cmd: list[str], env: dict | None = None, tail: FailureTail | None = None
) -> tuple[int, bool]:
    """Run mpiexec, forwarding SIGINT/SIGTERM to it, and (with `tail`) copying its output
    through to ours. Returns its exit status (128 + N for signal N) and whether
    ember-launch itself was interrupted."""
    pipes = {} if tail is None else {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen(cmd, env=env, **pipes)
    interrupted = False

    def forward(signum, frame):
        nonlocal interrupted
        interrupted = True
        proc.send_signal(signum)

    pumps = []
    if tail is not None:
        for name, source, sink in (
            ("stdout", proc.stdout, sys.stdout),
            ("stderr", proc.stderr, sys.stderr),
        ):
            pump = threading.Thread(target=_pump, args=(source, sink, name, tail), daemon=True)
            pump.start()
            pumps.append(pump)
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for pump in pumps:
        pump.join(timeout=5.0)  # a rank's orphaned child may hold the pipe open
    if tail is not None:
        tail.close()
    return (rc if rc >= 0 else 128 - rc), interrupted


def supervise(
    build: Callable[[dict], list[str]],
    environ: dict,
    restarts: int = 0,
    out=None,
    rollcall: str | None = None,
) -> int:
    r"""Run the job, and relaunch all of it after a failure, up to `restarts` times.

    Args:
        build: the mpiexec command line for an environment.
        environ: the environment of the job; each attempt gets ``EMBER_RESTART_COUNT`` added.
        restarts: relaunches allowed for the whole job (not per rank).
        out: where the progress and the summary go (default ``sys.stderr``).
        rollcall: this host's address as the ranks reach it: each attempt then holds a
            roll call there (launch/rollcall.py) and, when it fails, names the hosts
            whose ranks vanished without an exit status.

    Returns:
        the exit status of the last attempt.
    """
    out = sys.stderr if out is None else out
    attempts = restarts + 1
    history: list[tuple[int, list[str]]] = []
    for count in range(attempts):
        env = {**environ, RESTART_VAR: str(count)}
        tail = FailureTail() if restarts else None
        with RollCall(rollcall) if rollcall else contextlib.nullcontext() as roll:
            if roll is not None:
                env[ROLLCALL_VAR] = roll.address
            rc, interrupted = run_once(build(env), env, tail)
            lost = roll.lost_report() if roll is not None and rc != 0 else []
        for line in lost:
            print(line, file=out, flush=True)
            if tail is not None:
                tail.lines.append(line)
        history.append((rc, [] if tail is None else list(tail.lines)))
        if rc == 0 or interrupted or count == restarts:
            break
        print(
            f"ember-launch: attempt {count + 1}/{attempts} failed (exit {rc}); "
            f"restarting the job ({RESTART_VAR}={count + 1})",
            file=out,
            flush=True,
        )
    if (restarts and rc != 0) or len(history) > 1:
        print(summary(history, attempts, interrupted), file=out, flush=True)
    return rc


def summary(history: list[tuple[int, list[str]]], attempts: int, interrupted: bool) -> str:
    """One block per attempt: how it ended and, for a failure, the lines that say why."""
    lines = [f"ember-launch: summary of {len(history)} attempt(s):"]
    for number, (rc, kept) in enumerate(history, 1):
        head = f"ember-launch: attempt {number}/{attempts}"
        if rc == 0:
            lines.append(f"{head} succeeded")
            continue
        if number == len(history):
            why = "interrupted" if interrupted else "no restarts left"
            lines.append(f"{head} failed (exit {rc}); {why}:")
        else:
            lines.append(f"{head} failed (exit {rc}):")
        lines += [f"    {line}" for line in kept] or ["    (no rank output explains it)"]
    return "\n".join(lines)
