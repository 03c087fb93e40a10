"""examples/export_onnx.py runs as a user runs it (few steps) and onnxruntime agrees."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the ONNX example needs the onnx package")
pytest.importorskip("onnxruntime", reason="the ONNX example needs onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


def test_export_onnx_example(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples/export_onnx.py"), "--steps", "2", "--out", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert sum("max |diff|" in line for line in lines) == 2
    assert (tmp_path / "m/digits_cnn.onnx").stat().st_size > 100_000
    assert (tmp_path / "m/char_gpt.onnx").exists()
