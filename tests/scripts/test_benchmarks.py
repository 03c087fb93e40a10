"""The benchmark scripts run end to end with tiny settings and print what they promise
(no timing is asserted: the figures depend on the machine)."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
needs_mpiexec = pytest.mark.skipif(
    shutil.which("mpiexec") is None, reason="needs mpiexec (pip install ember[mpi])"
)


def run(args, timeout=300, quiet=True):
    cmd = [*args, "--quiet"] if quiet else args
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\nexit {done.returncode}\n{done.stderr[-3000:]}"
    return done


def script(name):
    return [sys.executable, str(SCRIPTS / name)]


def load_bench_train():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPTS / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_json_and_tables(capsys):
    done = run(
        script("bench_train.py")
        + ["--steps", "2", "--warmup", "1", "--rounds", "1", "--models", "mlp", "--threads", "1"]
        + ["--json"]
    )
    doc = json.loads(done.stdout)
    assert doc["machine"]["rounds"] == 1 and doc["machine"]["cores"] >= 1
    mlp = doc["models"]["mlp"]
    row = mlp["threads"]["1"]
    assert row["ember_ms"] > 0 and row["torch_ms"] > 0
    assert row["ratio"] == pytest.approx(row["ember_ms"] / row["torch_ms"])
    assert row["ember_first_over_steady"] == pytest.approx(row["ember_first_ms"] / row["ember_ms"])
    assert mlp["speedup"]["from"] == mlp["speedup"]["to"] == 1
    assert mlp["memory"]["ember_mb"] > 0 and mlp["memory"]["torch_mb"] > 0

    load_bench_train().print_tables(doc["machine"], {"mlp": {**mlp, "threads": {1: row}}})
    out = capsys.readouterr().out
    assert re.search(r"^mlp\s+1\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"^mlp\s+1->1\s+1\.00\s+1\.00\s+1\.00\s+[\d.]+\s+[\d.]+", out, re.M), out


def test_bench_train_child_runs_with_the_threads_it_is_given():
    done = run(
        script("bench_train.py") + ["--child", "ember", "mlp", "--threads", "2", "--steps", "1"],
        quiet=False,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["lib"] == "ember" and result["threads"] == 2
    assert result["first_s"] > 0 and result["step_s"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--child", "ember", "mlp", "--threads", "1,2"], "one --threads count"),
        (["--models", "resnet"], "unknown model 'resnet'"),
        (["--steps", "0"], "--steps and --rounds must be at least 1"),
    ],
)
def test_bench_train_rejects_bad_arguments(args, message):
    done = subprocess.run(script("bench_train.py") + args, capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr


@needs_mpiexec
def test_bench_dp_host_threads_against_ranks():
    done = run(
        script("bench_dp_host.py")
        + ["--ns", "2", "--models", "mlp", "--steps", "2", "--warmup", "1", "--rounds", "1"]
        + ["--json"]
    )
    rows = {(r["lib"], r["mode"]): r for r in json.loads(done.stdout)["rows"]}
    assert set(rows) == {(lib, mode) for lib in ("ember", "torch") for mode in ("threads", "ranks")}
    for lib in ("ember", "torch"):
        assert rows[lib, "threads"]["world"] == 1 and rows[lib, "threads"]["threads"] == 2
        assert rows[lib, "ranks"]["world"] == 2 and rows[lib, "ranks"]["threads"] == 1
        assert all(rows[lib, mode]["ms"] > 0 for mode in ("threads", "ranks"))


def test_bench_lstm():
    done = run(script("bench_lstm.py") + ["--rounds", "1", "--steps", "1", "--threads", "1"])
    assert re.search(r"^threads=1\s+ember\s+[\d.]+ ms\s+torch\s+[\d.]+ ms", done.stdout, re.M)


def test_bench_ops():
    done = run(script("bench_ops.py") + ["--rounds", "1", "--reps", "1", "--threads", "1"])
    assert "one process per (library, threads)" in done.stdout
    for label in ("fwd+bwd", "fwd no_grad", "add", "mul", "exp", "matmul"):
        assert re.search(rf"^  {re.escape(label)}\s+ember\s+[\d.]+", done.stdout, re.M), label
    assert re.search(r"fwd\+bwd\s+ember\s+[\d.]+ us/op\s+torch\s+[\d.]+ us/op", done.stdout)


@needs_mpiexec
def test_bench_ddp_runs_each_library_in_its_own_job():
    done = run(
        script("bench_ddp.py")
        + ["--ranks", "2", "--rounds", "2", "--quick", "--step-rounds", "1", "--min-time", "0"]
    )
    assert "one mpiexec job per library, median over 2 alternating rounds" in done.stdout
    assert re.search(r"^\s+16 MB(\s+[\d.]+){3}\s+[\d.]+$", done.stdout, re.M)
    assert re.search(r"^DistributedDataParallel \(MPI / gloo\)(\s+[\d.]+){3}$", done.stdout, re.M)
    assert "hides" in done.stdout


@needs_mpiexec
def test_bench_ddp_job_reports_from_rank_0_only_and_loads_one_library():
    probe = (
        "import runpy, sys; sys.argv = [sys.argv[1], '--worker', sys.argv[2], '--quick', "
        "'--step-rounds', '1', '--min-time', '0']; runpy.run_path(sys.argv[0], "
        "run_name='__main__'); sys.stdout.write("
        "f\"\\nloaded torch={'torch' in sys.modules} ember={'ember' in sys.modules}\\n\")"
    )
    for lib, loaded in (("ember", "torch=False ember=True"), ("torch", "torch=True ember=False")):
        cmd = ["mpiexec", "-n", "2", sys.executable, "-c", probe, str(SCRIPTS / "bench_ddp.py")]
        done = run([*cmd, lib], quiet=False)
        assert done.stdout.count('{"allreduce": {"4096": ') == 1, done.stdout  # rank 0 alone
        assert done.stdout.count(f"loaded {loaded}") == 2, done.stdout


def test_examples_extra_holds_tqdm_and_the_library_never_imports_it():
    root = SCRIPTS.parent
    text = (root / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*)\]$", text, re.M).group(1)
    assert "tqdm" not in deps
    assert re.search(r'^examples = \["tqdm', text, re.M)
    for package in ("core", "distributed", "launch"):
        for path in (root / package).rglob("*.py"):
            assert not re.search(r"^\s*(import|from) tqdm", path.read_text(), re.M), path
    assert '".[mpi,examples]"' in (root / "README.md").read_text()
