"""DataLoader workers in a real 2-rank job: ranks seeded alike still get their own worker
streams, epochs differ, and the job reproduces exactly."""

import json
import os
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "worker_draws.py"


def draws():
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    result = subprocess.run(
        [sys.executable, "-m", "ember.launch", "-n", "2", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # [rank][epoch][batch] = [np, ember, random, seeds]


def test_worker_streams_per_rank_and_epoch_reproduce():
    first = draws()
    assert draws() == first
    values = {}  # (rank, epoch, batch) -> the batch's random draws
    seeds = {}  # (rank, epoch) -> {worker seed}
    for rank, epochs in enumerate(first):
        for epoch, batches in enumerate(epochs):
            seeds[rank, epoch] = {seed for batch in batches for seed in batch[3]}
            for b, batch in enumerate(batches):
                values[rank, epoch, b] = [x for column in batch[:3] for x in column]
    assert all(len(s) == 2 for s in seeds.values())  # two workers, two seeds
    assert len(set().union(*seeds.values())) == 8  # none shared by ranks or epochs
    flat = [x for v in values.values() for x in v]
    assert len(set(flat)) == len(flat)  # no draw repeats across ranks, epochs or workers
