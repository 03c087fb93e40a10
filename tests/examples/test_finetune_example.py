"""examples/finetune_digits.py runs as a user runs it (short settings)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_finetune_digits_trains_a_new_head_on_a_frozen_backbone(tmp_path):
    args = ["--pretrain-epochs", "1", "--epochs", "1", "--out", str(tmp_path / "b.safetensors")]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples/finetune_digits.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "fine-tuning 850 parameters, 60,856 frozen" in lines
    match = re.fullmatch(r"test accuracy: (0\.\d{4})", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) > 0.4  # chance is 0.1; one epoch each gives about 0.6
    assert (tmp_path / "b.safetensors").exists()
