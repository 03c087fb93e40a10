"""A rank that leaves while the others wait for it in a collective ends the job within
seconds, loudly, and ember-launch exits non-zero (real ember-launch jobs)."""

import os
import pathlib
import re
import socket
import subprocess
import sys
import time

import pytest

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "early_exit.py"
HOST = socket.gethostname()
BOUND = 10.0  # seconds from rank 1's exit to the end of the job


def launch(how):
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    result = subprocess.run(
        [sys.executable, "-m", "ember.launch", "-n", "2", str(SCRIPT), how],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )
    ended = time.time()
    left = re.search(r"rank 1 leaves at ([\d.]+)", result.stdout)
    assert left, result.stdout + result.stderr
    return result, ended - float(left.group(1))


@pytest.mark.parametrize(
    "how, what",
    [
        ("exit", "exited (code 0)"),
        ("end", "exited (code 0)"),
        ("destroy", "destroyed its process group"),
    ],
)
def test_rank_leaving_while_others_wait_ends_the_job(how, what):
    result, elapsed = launch(how)
    assert result.returncode != 0
    assert elapsed < BOUND, elapsed
    assert (
        f"[rank 1/2 {HOST}] rank 1 {what} while ranks [0] wait in collective #12 "
        "(all_reduce); its last collective was #11; aborting the job"
    ) in result.stderr
    assert "rank 0 finished" not in result.stdout


def test_os_exit_is_not_a_success():
    result, elapsed = launch("os")
    assert result.returncode != 0
    assert elapsed < BOUND, elapsed
    assert (
        f"[rank 1/2 {HOST}] rank 1 ended (exit code 0) while its process group was live, "
        "without leaving it (os._exit, or a crash outside Python); failing the job"
    ) in result.stderr


def test_rank_leaving_after_the_last_collective_is_fine():
    result, _ = launch("late")
    assert result.returncode == 0, result.stderr
    assert "rank 0 finished" in result.stdout
