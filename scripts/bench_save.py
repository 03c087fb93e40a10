"""Checkpoint I/O benchmark: ember's hand-written safetensors container vs the
``safetensors`` library (``safetensors.numpy`` / ``safe_open``), save and load.

Three state dicts of float32 arrays: a small GPT (~20 MB in 50 tensors), a GPT-2-small
sized one (~500 MB in 150 tensors) and many small tensors (5,000 of 64 floats). Both sides
write the same way ember does - a temporary file, fsync, rename - and load every tensor
into a NumPy array the caller owns (writable, not a view of a closed file). Each
repetition runs every contender once, alternating; the minimum is reported.

Usage::

    python scripts/bench_save.py [--reps 3] [--skip-large]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import safetensors
import safetensors.numpy

from ember.core import serialization


def state_dict(total_floats: int, n_tensors: int) -> dict:
    rng = np.random.default_rng(0)
    per = max(1, total_floats // n_tensors)
    return {
        f"layer{i}.weight": rng.standard_normal(per, dtype=np.float32) for i in range(n_tensors)
    }


def hand_save(arrays, path, metadata):
    serialization._write_to(path, arrays, metadata)


def hand_load(path):
    with open(path, "rb") as fh:
        return serialization._read(fh, path)[0]


def lib_save(arrays, path, metadata):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    safetensors.numpy.save_file(arrays, tmp, metadata)
    fd = os.open(tmp, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, path)


def lib_load(path):
    # get_tensor copies out of the memory map; .copy() would double it, so keep as is.
    with safetensors.safe_open(path, framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def lib_load_bytes(path):
    with open(path, "rb") as fh:
        return safetensors.numpy.load(fh.read())


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()

    cases = [("GPT ~20 MB, 50 tensors", 5_000_000, 50)]
    if not args.skip_large:
        cases.append(("GPT-2 ~500 MB, 150 tensors", 125_000_000, 150))
    cases.append(("5,000 tensors of 64 floats", 320_000, 5_000))
    metadata = {"format": "pt", "ember": "{}"}
    with tempfile.TemporaryDirectory() as tmpdir:
        for label, floats, n in cases:
            arrays = state_dict(floats, n)
            mb = sum(a.nbytes for a in arrays.values()) / 1e6
            paths = {s: os.path.join(tmpdir, f"{s}.safetensors") for s in ("hand", "lib")}
            best = {k: float("inf") for k in ("hand save", "lib save", "hand load", "lib load")}
            best["lib load(bytes)"] = float("inf")
            for _ in range(args.reps):
                best["hand save"] = min(
                    best["hand save"], timed(hand_save, arrays, paths["hand"], metadata)
                )
                best["lib save"] = min(
                    best["lib save"], timed(lib_save, arrays, paths["lib"], metadata)
                )
                best["hand load"] = min(best["hand load"], timed(hand_load, paths["hand"]))
                best["lib load"] = min(best["lib load"], timed(lib_load, paths["lib"]))
                best["lib load(bytes)"] = min(
                    best["lib load(bytes)"], timed(lib_load_bytes, paths["lib"])
                )
            loaded = hand_load(paths["lib"])
            assert all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
            loaded = lib_load(paths["hand"])
            assert all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
            row = "  ".join(f"{k} {v * 1e3:8.1f} ms" for k, v in best.items())
            print(f"{label} ({mb:.0f} MB): {row}")
            del arrays


if __name__ == "__main__":
    main()
