"""Real jobs on this machine: ember-launch, plain mpiexec and a lone process."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
REPORT = str(SCRIPTS / "report.py")
CORES = len(os.sched_getaffinity(0))
LAUNCH = [sys.executable, "-m", "ember.launch"]


def job_env(**extra):
    """This environment without thread settings (tests/conftest.py sets OMP_NUM_THREADS)."""
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    environ.pop("CUDA_VISIBLE_DEVICES", None)
    return {**environ, **extra}


def run(cmd, timeout=60, **extra_env):
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=job_env(**extra_env)
    )


def reports(result):
    """The ranks' JSON reports; mpiexec may interleave the ranks' output mid-line."""
    assert result.returncode == 0, result.stderr
    decoder, text, lines, pos = json.JSONDecoder(), result.stdout, [], 0
    while (pos := text.find("{", pos)) >= 0:
        line, pos = decoder.raw_decode(text, pos)
        lines.append(line)
    return sorted(lines, key=lambda line: line["rank"])


@pytest.mark.parametrize("n", [2, 3])
def test_ember_launch(n):
    lines = reports(run([*LAUNCH, "-n", str(n), REPORT, "--lr", "0.1", "-n", "9"]))
    assert [line["rank"] for line in lines] == list(range(n))
    for line in lines:
        assert line["size"] == line["mpi_size"] == line["local_size"] == n
        assert line["mpi_rank"] == line["rank"] == line["local_rank"]
        assert line["launcher"] == "hydra"
        assert line["argv"] == ["--lr", "0.1", "-n", "9"]
        assert line["OMP_NUM_THREADS"] == line["MKL_NUM_THREADS"] == str(max(1, CORES // n))


def test_ember_launch_keeps_thread_settings_and_binds_gpus():
    result = run([*LAUNCH, "-n", "2", REPORT], OMP_NUM_THREADS="3", CUDA_VISIBLE_DEVICES="4,7")
    lines = reports(result)
    assert [line["OMP_NUM_THREADS"] for line in lines] == ["3", "3"]
    assert [line["MKL_NUM_THREADS"] for line in lines] == [None, None]
    assert [line["CUDA_VISIBLE_DEVICES"] for line in lines] == ["4", "7"]


def test_ember_launch_module_with_forwarded_env():
    cmd = [*LAUNCH, "-n", "2", "--env", f"PYTHONPATH={SCRIPTS}", "-m", "report", "a"]
    lines = reports(run(cmd))
    assert [(line["rank"], line["size"], line["argv"]) for line in lines] == [
        (0, 2, ["a"]),
        (1, 2, ["a"]),
    ]


def test_two_local_hosts_without_ssh():
    # Hydra's fork launcher starts the second "host" (127.0.0.1) locally; each rank is alone
    # on its host, so it gets every core.
    lines = reports(run([*LAUNCH, "-H", "localhost:1,127.0.0.1:1", REPORT]))
    assert [(line["rank"], line["local_rank"], line["local_size"]) for line in lines] == [
        (0, 0, 1),
        (1, 0, 1),
    ]
    assert [line["host"] for line in lines] == ["localhost", "127.0.0.1"]
    assert [line["OMP_NUM_THREADS"] for line in lines] == [str(CORES)] * 2


@pytest.mark.parametrize("n", [2, 3])
def test_plain_mpiexec(n):
    lines = reports(run(["mpiexec", "-n", str(n), sys.executable, REPORT]))
    assert [(line["rank"], line["mpi_rank"], line["size"]) for line in lines] == [
        (r, r, n) for r in range(n)
    ]
    assert {line["OMP_NUM_THREADS"] for line in lines} == {None}  # nobody divided threads


def test_lone_process():
    (line,) = reports(run([sys.executable, REPORT, "x"]))
    assert (line["rank"], line["size"], line["local_rank"], line["local_size"]) == (0, 1, 0, 1)
    assert line["launcher"] == "none" and line["argv"] == ["x"]
    assert "mpi_rank" not in line


def test_exit_code_of_a_failed_rank(tmp_path):
    script = tmp_path / "exit3.py"
    script.write_text("import os, sys\nsys.exit(3 if os.environ['PMI_RANK'] == '1' else 0)\n")
    result = run([*LAUNCH, "-n", "2", str(script)])
    assert result.returncode == 3


def test_sigterm_is_forwarded_to_the_job(tmp_path):
    script = tmp_path / "sleep.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen(
        [*LAUNCH, "-n", "2", str(script)], stdout=subprocess.PIPE, text=True, env=job_env()
    )
    seen = ""
    while seen.count("ready") < 2:  # both ranks running (their lines may interleave)
        seen += proc.stdout.read(1)
        assert proc.poll() is None, seen
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=20)
    assert rc != 0
    assert time.monotonic() - start < 10
