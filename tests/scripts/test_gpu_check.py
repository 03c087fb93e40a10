"""``scripts/gpu_check`` without a GPU: its arguments, the stage runner (on fake commands:
passing, failing, hanging, missing), the budget, and the report it writes."""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check"


def _load():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while defined
    loader.exec_module(module)
    return module


gc = _load()


def fake(name, code, cap=20.0, kind="pytest", env=None):
    return gc.Stage(name, f"fake {name}", [sys.executable, "-c", code], cap, env or {}, kind)


PASSING = "print('5 passed, 1 skipped in 0.1s')"
FAILING = "import sys; print('E   assert 1 == 2'); print('1 failed, 4 passed in 0.2s'); sys.exit(1)"


def test_dry_run_lists_every_stage_and_runs_nothing(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    for name in ("env", "compile", "tests", "ddp-nccl", "ddp-mpi", "bench"):
        assert f"  {name} " in out.stdout
    assert "mpiexec -n 2" in out.stdout and "EMBER_GPU_TEST_BACKEND=nccl" in out.stdout
    assert "--modes fp32,tf32,bf16,fp16" in out.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_stage_caps_fit_seven_minutes(tmp_path):
    stages = gc.build_stages(sys.executable, tmp_path, 5)
    assert sum(s.cap_s for s in stages) <= 7 * 60
    assert [s.name for s in stages] == ["env", "compile", "tests", "ddp-nccl", "ddp-mpi", "bench"]


def test_out_defaults_to_OUT_then_cwd(monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gc.parse_args([]).out == tmp_path
    monkeypatch.delenv("OUT")
    monkeypatch.chdir(tmp_path)
    assert gc.parse_args([]).out == Path.cwd()
    assert gc.parse_args(["--out", "x"]).out == Path("x")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--only", "tests,gpu"], "unknown stage(s) gpu"),
        (["--skip", "nope"], "unknown stage(s) nope"),
        (["--budget", "0"], "--budget must be positive"),
        (["--bench-steps", "0"], "--bench-steps must be at least 1"),
    ],
)
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gc.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_only_and_skip_select_stages(tmp_path):
    stages = gc.build_stages(sys.executable, tmp_path, 5)
    assert [s.name for s in gc.select(stages, ["tests", "bench"], [])] == ["tests", "bench"]
    assert "bench" not in [s.name for s in gc.select(stages, [], ["bench"])]


def test_runner_judges_pass_fail_timeout_and_missing_command(tmp_path):
    ok = gc.run_stage(fake("ok", PASSING), 20, tmp_path, tmp_path)
    assert (ok.status, ok.reason) == ("PASS", "5 passed, 1 skipped")
    assert (tmp_path / "gpu_check_ok.log").read_text().startswith("5 passed")
    bad = gc.run_stage(fake("bad", FAILING), 20, tmp_path, tmp_path)
    assert bad.status == "FAIL" and bad.reason == "exit code 1: 1 failed, 4 passed"
    hang = gc.run_stage(fake("hang", "import time; time.sleep(30)"), 1, tmp_path, tmp_path)
    assert hang.status == "FAIL" and hang.reason == "timed out after 1 s" and hang.seconds < 10
    missing = gc.Stage("gone", "missing", ["/nonexistent/mpiexec", "-n", "2"], 5)
    gone = gc.run_stage(missing, 5, tmp_path, tmp_path)
    assert gone.status == "FAIL" and gone.reason.startswith("cannot start /nonexistent/mpiexec")


def test_runner_kills_the_whole_process_tree_on_timeout(tmp_path):
    marker = tmp_path / "child_alive"
    child = tmp_path / "child.py"
    child.write_text(f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w').close()\n")
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, {str(child)!r}])\n"
        "time.sleep(30)\n"
    )
    result = gc.run_stage(fake("tree", code), 1, tmp_path, tmp_path)
    assert result.reason == "timed out after 1 s"
    time.sleep(4)
    assert not marker.exists()  # the grandchild (an MPI rank, say) died with the stage


def test_all_skipped_is_a_failure_with_the_skip_reason(tmp_path):
    code = "import sys; print('SKIPPED [1] tests/gpu/test_cuda.py:16: no CUDA device is visible'); print('1 skipped in 0.1s'); sys.exit(5)"
    result = gc.run_stage(fake("skips", code), 20, tmp_path, tmp_path)
    assert result.status == "FAIL"
    assert result.reason == "no test ran: no CUDA device is visible"


def test_env_stage_fails_with_the_cuda_reason(tmp_path):
    info = {"cuda_available": False, "reason": "CuPy is not installed", "torch": "2.13"}
    stage = fake("env", f"print({json.dumps(json.dumps(info))})", kind="env")
    result = gc.run_stage(stage, 20, tmp_path, tmp_path)
    env = gc._parse_env(result)
    assert env["torch"] == "2.13"
    assert (
        result.status == "FAIL" and result.reason == "CUDA is not available: CuPy is not installed"
    )


def test_main_runs_every_stage_despite_failures_and_writes_the_report(tmp_path, capsys):
    info = {"cuda_available": True, "gpu": "NVIDIA H100", "cupy": "14.2.0", "nccl": "2.27.3"}
    rows = [
        {
            "workload": "gpt",
            "mode": "bf16",
            "ember": {"step_ms": 120.0, "peak_gib": 11.0, "tflops": 300.0},
            "torch": {"step_ms": 100.0, "peak_gib": 10.0, "tflops": 360.0},
            "time_ratio": 1.2,
            "peak_ratio": 1.1,
        },
        {"workload": "cnn", "mode": "fp16", "ember": {"error": "RuntimeError: boom"}},
    ]
    bench_code = (
        f"open({str(tmp_path / 'bench_gpu.json')!r}, 'w').write({json.dumps(json.dumps(rows))})"
    )
    stages = [
        fake("env", f"print({json.dumps(json.dumps(info))})", kind="env"),
        fake("tests", FAILING),
        fake("ddp-nccl", PASSING),
        fake("bench", bench_code, kind="bench"),
    ]
    code = gc.main(["--out", str(tmp_path), "--only", "env,tests,ddp-nccl,bench"], stages=stages)
    assert code == 1
    printed = capsys.readouterr().out
    assert "PASS env" in printed and "FAIL tests" in printed and "PASS ddp-nccl" in printed
    report = json.loads((tmp_path / "gpu_report.json").read_text())
    assert [s["status"] for s in report["stages"]] == ["PASS", "FAIL", "PASS", "PASS"]
    assert report["passed"] is False and report["env"]["gpu"] == "NVIDIA H100"
    assert report["bench"] == rows
    md = (tmp_path / "gpu_report.md").read_text()
    assert "GPU: NVIDIA H100" in md
    assert "| tests | FAIL |" in md and "exit code 1: 1 failed, 4 passed" in md
    assert "| gpt | bf16 | 120.00 | 100.00 | 1.20 | 11.00 | 10.00 | 1.10 | 300.0 |" in md
    assert "RuntimeError: boom" in md


def test_budget_spent_marks_the_rest_not_run(tmp_path):
    stages = [fake("tests", "import time; time.sleep(5)"), fake("bench", PASSING, kind="bench")]
    code = gc.main(
        ["--out", str(tmp_path), "--budget", "2", "--only", "tests,bench"], stages=stages
    )
    assert code == 1
    report = json.loads((tmp_path / "gpu_report.json").read_text())
    assert report["stages"][0]["reason"] == "timed out after 2 s"
    assert report["stages"][1]["reason"] == "not run: the time budget was spent"


def test_sharded_pytest_sums_the_shards_and_keeps_failures(tmp_path, monkeypatch, capfd):
    (tmp_path / "test_fake.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('i', range(5))\n"
        "def test_ok(i):\n    assert i < 5\n"
        "def test_bad():\n    assert 1 == 2\n"
        "@pytest.mark.skip(reason='needs a GPU')\n"
        "def test_skipped():\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    code = gc.run_sharded(3, ["test_fake.py"])
    out = capfd.readouterr().out
    assert code == 1
    assert out.count("---- shard") == 3
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("== ") and summary.endswith("(3 shards)")
    assert "5 passed" in summary and "1 failed" in summary and "1 skipped" in summary
    status, reason, counts = gc.judge(fake("tests", ""), code, out)
    assert status == "FAIL" and reason.startswith("exit code 1: ")
    assert counts["passed"] == 5 and counts["failed"] == 1


def test_ember_path_env_points_python_at_this_checkout(tmp_path, monkeypatch):
    assert gc.ember_path_env() == {}  # the test venv has this checkout installed (editable)
    other = tmp_path / "other_checkout"  # as if ember were installed from elsewhere
    other.symlink_to(gc.ROOT, target_is_directory=True)
    monkeypatch.setattr(gc, "ROOT", other)
    env = gc.ember_path_env()
    shim = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    assert (shim / "ember").readlink() == other
    code = "import sys; sys.path.insert(0, sys.argv[1]); import ember; print(ember.__file__)"
    probe = subprocess.run([sys.executable, "-c", code, str(shim)], capture_output=True, text=True)
    assert probe.stdout.strip() == str(shim / "ember" / "__init__.py"), probe.stderr


def test_missing_modules_and_an_offline_install_that_fails_politely(tmp_path):
    assert gc.missing_modules(sys.executable) == []  # the test venv has them all
    assert gc.missing_modules(sys.executable, ["json", "no_such_module_xyz"]) == [
        "no_such_module_xyz"
    ]
    said = gc.install_from_wheelhouse(sys.executable, tmp_path, ["no_such_module_xyz"])
    assert said.startswith(f"could not install no_such_module_xyz from {tmp_path}")
