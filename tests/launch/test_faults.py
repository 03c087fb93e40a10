"""Failures in real multi-rank jobs: one rank's fault ends the whole job quickly and loudly;
checkpoints survive a crash and resume bit for bit."""

import io
import logging
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import ember.nn as nn
import ember.optim as optim
from ember.distributed import faults
from ember.distributed.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
LAUNCH = [sys.executable, "-m", "ember.launch"]
BOUND = 10.0  # seconds from the fault to the end of the job, launch included
HOST = socket.gethostname()


def launch(n, script, *args, timeout=60):
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    start = time.monotonic()
    result = subprocess.run(
        [*LAUNCH, "-n", str(n), str(SCRIPTS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )
    return result, time.monotonic() - start


@pytest.mark.parametrize("mode", ["raise", "thread"])
def test_rank_exception_aborts_the_job_with_a_prefixed_traceback(mode):
    result, elapsed = launch(3, "faulty.py", mode, 1, 3)
    assert result.returncode != 0
    assert elapsed < BOUND
    prefix = f"[rank 1/3 {HOST}] "
    lines = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert f"{prefix}ValueError: boom at step 3" in lines
    assert any("Traceback (most recent call last):" in line for line in lines)
    if mode == "thread":
        assert f"{prefix}uncaught exception in thread 'loader':" in lines
    assert "finished without a fault" not in result.stdout


def test_rank_killed_during_all_reduce_ends_the_job():
    result, elapsed = launch(3, "faulty.py", "kill", 2, 3)
    assert result.returncode != 0
    assert elapsed < BOUND
    assert "finished without a fault" not in result.stdout


def test_sigterm_on_a_rank_aborts_the_job():
    result, elapsed = launch(2, "faulty.py", "term", 0, 2)
    assert result.returncode != 0
    assert elapsed < BOUND
    assert f"[rank 0/2 {HOST}] received SIGTERM; aborting the job" in result.stderr


def test_healthy_job_finishes():
    result, _ = launch(2, "faulty.py", "none", -1, 0)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("finished without a fault") == 2


def test_stalled_rank_is_named():
    result, elapsed = launch(3, "stall.py", 2)
    assert result.returncode != 0
    assert elapsed < BOUND
    pattern = (
        rf"\[rank [01]/3 {re.escape(HOST)}\] collective #3 all_reduce has waited 1\.\d s; "
        r"ranks \[2\] never joined it; aborting the job"
    )
    assert re.search(pattern, result.stderr), result.stderr


def test_crash_leaves_the_last_checkpoint_intact_and_resume_is_bit_exact(tmp_path):
    crashed, uninterrupted = tmp_path / "crashed", tmp_path / "uninterrupted"
    crashed.mkdir()
    uninterrupted.mkdir()
    result, elapsed = launch(2, "train_ckpt.py", crashed, 10, 5, tmp_path / "unused.npz")
    assert result.returncode != 0 and elapsed < BOUND
    assert "RuntimeError: crash at step 5" in result.stderr
    assert sorted(os.listdir(crashed)) == ["step2.ckpt", "step4.ckpt"]  # no temporary files

    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    info = load_checkpoint(latest_checkpoint(crashed), model=model, optimizer=opt)
    assert info["step"] == 4 and isinstance(info["extra"]["loss"], float)
    assert len(opt.state_dict()["state"]) == 4  # momentum buffers

    resumed, _ = launch(2, "train_ckpt.py", crashed, 10, -1, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr
    assert "rank 1 resumed from step4.ckpt at step 4" in resumed.stdout
    straight, _ = launch(2, "train_ckpt.py", uninterrupted, 10, -1, tmp_path / "straight.npz")
    assert straight.returncode == 0, straight.stderr
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "straight.npz")
    assert sorted(a) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key


# -- single-process pieces ---------------------------------------------------------------


class FakeComm:
    def __init__(self, rank=1, size=4):
        self.rank, self.size, self.aborted = rank, size, None

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Abort(self, code):
        self.aborted = code


def test_rank_prefix():
    assert faults.rank_prefix(FakeComm(2, 5)) == f"[rank 2/5 {HOST}] "
    assert faults.rank_prefix() == f"[rank 0/1 {HOST}] "  # a lone process


def test_abort_on_stall_reports_and_aborts(capsys):
    comm = FakeComm(0, 2)
    with pytest.raises(SystemExit):
        faults.abort_on_stall(comm, "all_reduce", 12, 300.0, [1])
    assert comm.aborted == 1
    assert capsys.readouterr().err == (
        f"[rank 0/2 {HOST}] collective #12 all_reduce has waited 300.0 s; "
        "ranks [1] never joined it; aborting the job\n"
    )


@pytest.mark.parametrize("rank, shown", [(0, ["info", "warn"]), (3, ["warn"])])
def test_rank_log_handler(rank, shown):
    stream = io.StringIO()
    logger = logging.getLogger(f"ember.test.rank{rank}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(faults.rank_log_handler(FakeComm(rank, 4), stream))
    logger.info("info")
    logger.warning("warn")
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(": ", 1)[1] for line in lines] == shown
    assert all(line.startswith(f"[rank {rank}/4 {HOST}] ") for line in lines)


def test_checkpoint_single_process_round_trip(tmp_path):
    import random

    import ember

    class Sampler:  # DistributedSampler's epoch interface
        def __init__(self):
            self.epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

    ember.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    sampler = Sampler()
    sampler.set_epoch(7)
    model(ember.randn(4, 3)).sum().backward()
    opt.step()
    sched.step()
    path = tmp_path / "epoch7.ckpt"
    save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, sampler=sampler, epoch=7)
    after_save = (ember.randn(3).tolist(), np.random.rand(), random.random())

    model2 = nn.Linear(3, 2)
    opt2 = optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    sched2 = optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    sampler2 = Sampler()
    info = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2, sampler=sampler2)
    assert info == {"epoch": 7, "step": None, "extra": None}
    assert (ember.randn(3).tolist(), np.random.rand(), random.random()) == after_save
    assert ember.equal(model.weight, model2.weight) and sampler2.epoch == 7
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.05
    assert sched2.state_dict() == sched.state_dict()
    momentum = opt2.state_dict()["state"][0]["momentum_buffer"]
    assert np.array_equal(momentum.numpy(), opt.state_dict()["state"][0]["momentum_buffer"].numpy())


def test_checkpoint_errors_and_latest(tmp_path):
    model = nn.Linear(2, 2)
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.ckpt", model=model)
    save_checkpoint(tmp_path / "step9.ckpt", model=model, step=9)
    save_checkpoint(tmp_path / "step10.ckpt", model=model, step=10)
    (tmp_path / ".step11.ckpt.tmp123").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "step10.ckpt")
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(KeyError, match="has no optimizer state"):
        load_checkpoint(tmp_path / "step10.ckpt", model=model, optimizer=opt)
    import ember
    from ember.core.serialization import save

    save({"weight": ember.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(RuntimeError, match="is not an ember checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors", model=model)
