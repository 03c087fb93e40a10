"""ember-launch --restarts: a failed job is relaunched whole, resumes from its checkpoint and
ends with a summary of why each attempt failed."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from ember.launch import supervise
from ember.launch.supervise import FailureTail, summary

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
LAUNCH = [sys.executable, "-m", "ember.launch"]
HOST = socket.gethostname()


def job_env():
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    environ.pop("EMBER_RESTART_COUNT", None)
    return environ


def launch(*argv, timeout=90):
    return subprocess.run(
        [*LAUNCH, *map(str, argv)], capture_output=True, text=True, timeout=timeout, env=job_env()
    )


def test_sigkilled_rank_restarts_and_resumes_bit_exact(tmp_path):
    ckpt, straight = tmp_path / "ckpt", tmp_path / "straight"
    ckpt.mkdir()
    straight.mkdir()
    script = SCRIPTS / "train_ckpt.py"
    result = launch(
        "--restarts", 1, "-n", 2, script, ckpt, 10, 5, tmp_path / "resumed.npz", "kill-first"
    )
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "ember-launch: attempt 1/2 failed (exit 9); restarting the job " in err
    assert "(EMBER_RESTART_COUNT=1)" in err
    report = err[err.index("ember-launch: summary of 2 attempt(s):") :].splitlines()
    assert report[1] == "ember-launch: attempt 1/2 failed (exit 9):"
    assert "    EXIT CODE: 9" in report  # Hydra's notice about the killed rank
    assert report[-1] == "ember-launch: attempt 2/2 succeeded"
    assert "rank 1 resumed from step4.ckpt at step 4 (restart 1)" in result.stdout

    done = launch("-n", 2, script, straight, 10, -1, tmp_path / "straight.npz")
    assert done.returncode == 0, done.stderr
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "straight.npz")
    assert sorted(a) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key


def test_restarts_run_out_and_the_summary_keeps_each_traceback(tmp_path):
    script = SCRIPTS / "train_ckpt.py"
    result = launch("--restarts", 1, "-n", 2, script, tmp_path, 10, 3, tmp_path / "o.npz")
    assert result.returncode != 0
    err = result.stderr
    report = err[err.index("ember-launch: summary of 2 attempt(s):") :].splitlines()
    prefix = f"    [rank 1/2 {HOST}] "
    heads = [i for i, line in enumerate(report) if line.startswith("ember-launch: attempt")]
    assert len(heads) == 2
    assert report[heads[0]] == f"ember-launch: attempt 1/2 failed (exit {result.returncode}):"
    assert report[heads[1]] == (
        f"ember-launch: attempt 2/2 failed (exit {result.returncode}); no restarts left:"
    )
    # Each block holds what that attempt's ranks printed with their prefix (mpiexec may, rarely,
    # drop a rank's last output when it aborts the job, so compare with what really came).
    restart = err.index("ember-launch: attempt 1/2 failed")
    live = (err[:restart], err[restart : err.index("ember-launch: summary")])
    blocks = (report[heads[0] + 1 : heads[1]], report[heads[1] + 1 :])
    for printed, block in zip(live, blocks):
        assert [line for line in block if line.startswith(prefix)] == [
            f"    {line}" for line in printed.splitlines() if line.startswith(prefix[4:])
        ], err
    assert f"{prefix}RuntimeError: crash at step 3" in blocks[0] + blocks[1], err
    assert f"{prefix}Traceback (most recent call last):" in blocks[0] + blocks[1]
    assert "rank 1 resumed from step2.ckpt at step 2 (restart 1)" in result.stdout
    assert not (tmp_path / "o.npz").exists()


def test_plain_script_restarts_with_its_count_and_output_passes_through(tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(
        "import os, sys\n"
        "rank, count = os.environ['PMI_RANK'], os.environ['EMBER_RESTART_COUNT']\n"
        "print(f'rank {rank} attempt {count}', flush=True)\n"
        "sys.stdout.write('no newline')\n"
        "if rank == '1' and int(count) < 2:\n"
        "    raise ValueError(f'flaky on attempt {count}')\n"
    )
    result = launch("--restarts", 3, "-n", 2, script)
    assert result.returncode == 0, result.stderr
    for count in range(3):
        assert f"rank 0 attempt {count}" in result.stdout
        assert f"rank 1 attempt {count}" in result.stdout
    assert "attempt 3" not in result.stdout
    assert result.stdout.count("no newline") == 6
    report = result.stderr[result.stderr.index("ember-launch: summary of 3 attempt(s):") :]
    lines = report.splitlines()
    assert [line for line in lines if line.startswith("ember-launch: attempt")] == [
        "ember-launch: attempt 1/4 failed (exit 1):",
        "ember-launch: attempt 2/4 failed (exit 1):",
        "ember-launch: attempt 3/4 succeeded",
    ]
    assert lines.count("    Traceback (most recent call last):") == 2
    assert "    ValueError: flaky on attempt 0" in lines
    assert "    ValueError: flaky on attempt 1" in lines


def test_every_attempt_sees_a_restart_count_and_success_prints_no_summary(tmp_path):
    script = tmp_path / "count.py"
    script.write_text("import os\nprint('count', os.environ['EMBER_RESTART_COUNT'])\n")
    for argv in ([], ["--restarts", "2"]):
        result = launch(*argv, "-n", 1, script)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["count 0"]
        assert "ember-launch" not in result.stderr


def test_closed_output_does_not_stop_the_job(tmp_path):
    # `ember-launch ... | head -1`: the job runs on, its output discarded
    script = tmp_path / "chatty.py"
    done = tmp_path / "done"
    script.write_text(f"for i in range(20000):\n    print('line', i)\nopen({str(done)!r}, 'w')\n")
    proc = subprocess.Popen(
        [*LAUNCH, "--restarts", "1", "-n", "1", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=job_env(),
    )
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert done.exists() and b"Error" not in err


def test_interrupted_job_is_not_restarted(tmp_path):
    script = tmp_path / "sleep.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen(
        [*LAUNCH, "--restarts", "3", "-n", "2", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=job_env(),
    )
    seen = ""
    while seen.count("ready") < 2:
        seen += proc.stdout.read(1)
        assert proc.poll() is None, seen
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0 and time.monotonic() - start < 10
    assert "restarting" not in err
    assert f"ember-launch: attempt 1/4 failed (exit {proc.returncode}); interrupted:" in err


# -- single-process pieces ---------------------------------------------------------------


def test_failure_tail_keeps_what_explains_a_failure():
    tail = FailureTail(size=50)
    chunks = [
        ("stdout", b"epoch 1 loss 0.3\n[rank 1/2 h] Tr"),
        ("stdout", b"aceback (most recent call last):\n[rank 1/2 h] ValueError: x\n"),
        ("stderr", b'Traceback (most recent call last):\n  File "t.py", line 3\n'),
        ("stdout", b"progress 50%\rprogress 100%\r\n"),
        ("stderr", b"    raise KeyError(k)\r\nKeyError: 'k'\nafter the traceback\n"),
        ("stdout", b"=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n"),
        ("stdout", b"=   PID 12 RUNNING AT node1\n=   EXIT CODE: 9\n=   CLEANING UP\n"),
        ("stderr", b"mpiexec noticed that process rank 1 with PID 12 on node node1 exited on "),
        ("stderr", b"signal 9 (Killed).\n[1] tagged by Hydra\n[0,1]<stderr>: tagged by Open MPI\n"),
        ("stderr", b"Abort(1) on node 1: application called MPI_Abort(MPI_COMM_WORLD, 1)\n"),
        ("stdout", b"[mpiexec@vm] main (mpiexec.c:270): process manager error\nplain noise"),
    ]
    for stream, chunk in chunks:
        tail.feed(stream, chunk)
    tail.close()
    assert list(tail.lines) == [
        "[rank 1/2 h] Traceback (most recent call last):",
        "[rank 1/2 h] ValueError: x",
        "Traceback (most recent call last):",
        '  File "t.py", line 3',
        "    raise KeyError(k)",
        "KeyError: 'k'",
        "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES",
        "PID 12 RUNNING AT node1",
        "EXIT CODE: 9",
        "mpiexec noticed that process rank 1 with PID 12 on node node1 exited on signal 9 "
        "(Killed).",
        "[1] tagged by Hydra",
        "[0,1]<stderr>: tagged by Open MPI",
        "Abort(1) on node 1: application called MPI_Abort(MPI_COMM_WORLD, 1)",
        "[mpiexec@vm] main (mpiexec.c:270): process manager error",
    ]


def test_failure_tail_keeps_only_the_last_lines():
    tail = FailureTail(size=3)
    tail.feed("stderr", "".join(f"[rank 0/1 h] line {i}\n" for i in range(10)).encode())
    assert list(tail.lines) == [f"[rank 0/1 h] line {i}" for i in (7, 8, 9)]
    assert supervise.TAIL_LINES == 50


def test_summary_text():
    history = [(1, ["[rank 1/2 h] ValueError: x"]), (137, []), (0, [])]
    assert summary(history, 4, interrupted=False).splitlines() == [
        "ember-launch: summary of 3 attempt(s):",
        "ember-launch: attempt 1/4 failed (exit 1):",
        "    [rank 1/2 h] ValueError: x",
        "ember-launch: attempt 2/4 failed (exit 137):",
        "    (no rank output explains it)",
        "ember-launch: attempt 3/4 succeeded",
    ]
    assert summary([(2, [])], 1, interrupted=True).splitlines()[1] == (
        "ember-launch: attempt 1/1 failed (exit 2); interrupted:"
    )


def test_supervise_relaunches_with_the_count(monkeypatch, capsys):
    seen = []

    def fake_run(cmd, env, tail):
        seen.append((cmd, env["EMBER_RESTART_COUNT"], tail is not None))
        tail.feed("stderr", b"[rank 0/1 h] boom\n")
        return (0 if len(seen) == 3 else 5), False

    monkeypatch.setattr(supervise, "run_once", fake_run)
    rc = supervise.supervise(lambda env: ["job", env["EMBER_RESTART_COUNT"]], {"A": "1"}, 2)
    assert rc == 0
    assert seen == [(["job", "0"], "0", True), (["job", "1"], "1", True), (["job", "2"], "2", True)]
    err = capsys.readouterr().err
    assert "ember-launch: attempt 2/3 failed (exit 5); restarting the job " in err
    assert err.rstrip().endswith("ember-launch: attempt 3/3 succeeded")
