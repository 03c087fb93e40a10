"""Scripts written for torchrun see its environment under ember-launch and plain mpiexec,
so a DDP script never silently runs N independent trainings."""

import json
import os
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "torchrun_style.py"
BIN = pathlib.Path(sys.executable).parent


def job_env(**extra):
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    for k in ("EMBER_RESTART_COUNT", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        environ.pop(k, None)
    return {**environ, **extra}


def reports(directory, n):
    return [json.loads((directory / f"rank{r}.json").read_text()) for r in range(n)]


def test_ember_launch_gives_every_rank_torchruns_variables(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ember.launch", "-H", "localhost:2,127.0.0.1:1", SCRIPT, tmp_path],
        capture_output=True,
        text=True,
        timeout=120,
        env=job_env(),
    )
    assert result.returncode == 0, result.stderr
    seen = reports(tmp_path, 3)
    assert all(r["ddp"] and r["world"] == 3 and r["total"] == 3.0 for r in seen)
    assert [r["env"] for r in seen] == [
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(local),
            "WORLD_SIZE": "3",
            "LOCAL_WORLD_SIZE": str(local_size),
            "GROUP_RANK": str(host),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29500",
            "TORCHELASTIC_RESTART_COUNT": "0",
        }
        for rank, local, local_size, host in [(0, 0, 2, 0), (1, 1, 2, 0), (2, 0, 1, 1)]
    ]


def test_plain_mpiexec_gets_them_at_import_ember(tmp_path):
    result = subprocess.run(
        [str(BIN / "mpiexec"), "-n", "2", sys.executable, SCRIPT, tmp_path],
        capture_output=True,
        text=True,
        timeout=120,
        env=job_env(),
    )
    assert result.returncode == 0, result.stderr
    for rank, r in enumerate(reports(tmp_path, 2)):
        assert r["ddp"] and r["total"] == 1.0
        assert r["env"]["RANK"] == str(rank) and r["env"]["WORLD_SIZE"] == "2"
        assert r["env"]["LOCAL_RANK"] == str(rank) and r["env"]["MASTER_ADDR"] is None


def test_a_lone_process_is_not_distributed(tmp_path):
    result = subprocess.run(
        [sys.executable, SCRIPT, tmp_path], capture_output=True, text=True, env=job_env()
    )
    assert result.returncode == 0, result.stderr
    (r,) = reports(tmp_path, 1)
    assert not r["ddp"] and r["env"]["RANK"] is None


def test_ember_launch_by_full_path_finds_its_own_mpiexec(tmp_path):
    # PATH without the venv: the launcher must still find the mpiexec of its environment
    result = subprocess.run(
        [str(BIN / "ember-launch"), "-n", "2", "--master-port", "1234", SCRIPT, tmp_path],
        capture_output=True,
        text=True,
        timeout=120,
        env=job_env(PATH="/usr/bin:/bin"),
    )
    assert result.returncode == 0, result.stderr
    assert [r["env"]["MASTER_PORT"] for r in reports(tmp_path, 2)] == ["1234", "1234"]
