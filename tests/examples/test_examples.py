"""The examples, run as a user would (short settings), including the README's main job."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args, tmp_path, timeout=240):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout.strip().splitlines()


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_train_digits_single_process(model, tmp_path):
    ckpt = tmp_path / "digits.ckpt"
    lines = run(
        [
            sys.executable,
            str(ROOT / "examples/train_digits.py"),
            "--model",
            model,
            "--epochs",
            "3",
            "--checkpoint",
            str(ckpt),
        ],
        tmp_path,
    )
    match = re.fullmatch(r"test accuracy: (0\.\d{4})", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) > 0.85
    assert ckpt.exists()


@pytest.mark.skipif(
    shutil.which("mpiexec") is None, reason="needs mpiexec (pip install ember[mpi])"
)
def test_train_digits_data_parallel_under_ember_launch(tmp_path):
    launcher = shutil.which("ember-launch") or None
    cmd = [launcher] if launcher else [sys.executable, "-m", "ember.launch"]
    lines = run(
        [
            *cmd,
            "-n",
            "2",
            str(ROOT / "examples/train_digits.py"),
            "--model",
            "cnn",
            "--epochs",
            "2",
            "--checkpoint",
            str(tmp_path / "ddp.ckpt"),
        ],
        tmp_path,
    )
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", lines[-1]), lines[-5:]
    assert sum("test accuracy:" in line for line in lines) == 1, "only rank 0 prints"
    assert any("2 rank(s)" in line for line in lines)


def test_char_gpt_learns_below_unigram_baseline(tmp_path):
    lines = run(
        [
            sys.executable,
            str(ROOT / "examples/char_gpt.py"),
            "--steps",
            "40",
            "--d-model",
            "64",
            "--layers",
            "2",
            "--sample",
            "20",
        ],
        tmp_path,
    )
    report = next(line for line in lines if line.startswith("validation loss"))
    val, unigram = map(float, re.findall(r"\d+\.\d+", report)[:2])
    assert val < unigram, report
    assert lines[-1].startswith("sample: ")
