"""Diagnostics: faults planted in real multi-rank jobs (run as subprocesses of a plain
test) must end the job quickly with a report that names the culprit; the in-process
parts (flight recorder entries, rank table, debug-mode mismatch reports) run on every
rank under ``mpiexec -n 2|3 python -m pytest --with-mpi``."""

import re
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ember
import ember.distributed as dist
from ember.distributed.diagnostics import FlightRecorder, duplicate_devices, format_rank_table
from tests.distributed.test_single_process import MPIEXEC, clean_env

HOST = socket.gethostname()
BOUND = 20.0  # seconds from launch to the end of an aborted job


def run_job(tmp_path, n: int, body: str, env=None):
    """Run ``body`` on ``n`` ranks; returns (returncode, seconds, stdout, {rank: stderr}).
    Each rank's stderr goes to a file: Hydra may drop the last pipe output of an aborted
    job."""
    script = tmp_path / "job.py"
    header = f"""
        import os, sys, time
        sys.stderr = open(os.path.join({str(tmp_path)!r}, "err" + os.environ["PMI_RANK"]), "w")
        import numpy as np
        import ember, ember.distributed as dist
        rank = int(os.environ["PMI_RANK"])
        """
    script.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    start = time.perf_counter()
    done = subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable, str(script)],
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    errs = {r: (tmp_path / f"err{r}").read_text() for r in range(n)}
    return done.returncode, time.perf_counter() - start, done.stdout, errs


def test_skipped_collective_prints_the_tail_and_names_the_missing_rank(tmp_path):
    rc, elapsed, _, errs = run_job(
        tmp_path,
        2,
        """
        dist.init_process_group("mpi", timeout=1.0)
        x = ember.ones(2)
        dist.all_reduce(x)
        dist.broadcast(x, 0)
        if rank == 0:
            dist.all_reduce(ember.ones(3, 5, dtype=ember.float64))
        else:
            time.sleep(60)  # skips collective #3
        """,
    )
    assert rc != 0 and elapsed < BOUND
    prefix = f"[rank 0/2 {HOST}] "
    lines = errs[0].splitlines()
    assert f"{prefix}flight recorder: last 3 of 3 collectives, oldest first:" in lines
    tail = [line for line in lines if line.startswith(f"{prefix}  #")]
    ops = [line.split()[3:5] for line in tail]
    assert ops == [["#1", "all_reduce"], ["#2", "broadcast"], ["#3", "all_reduce"]]
    assert "took" in tail[0] and "shape=[2] dtype=float32 op=SUM" in tail[0]
    assert "shape=[3, 5] dtype=float64 op=SUM" in tail[2] and "PENDING for 1." in tail[2]
    assert f"{prefix}ranks [1] never joined collective #3 (all_reduce)" in lines
    assert lines[-1].startswith(f"{prefix}collective #3 all_reduce has waited 1.")


def test_crashing_rank_prints_its_traceback_and_tail(tmp_path):
    rc, elapsed, _, errs = run_job(
        tmp_path,
        2,
        """
        dist.init_process_group("mpi", timeout=30.0)
        dist.all_reduce(ember.ones(4))
        if rank == 1:
            raise ValueError("bad batch")
        dist.all_reduce(ember.ones(4))
        """,
        {"EMBER_FLIGHT_RECORDER_SIZE": "5"},
    )
    assert rc != 0 and elapsed < BOUND  # the others do not wait out the 30 s timeout
    prefix = f"[rank 1/2 {HOST}] "
    assert f"{prefix}ValueError: bad batch" in errs[1]
    assert f"{prefix}flight recorder: last 1 of 1 collectives" in errs[1]
    assert "#1 all_reduce group [0, 1] shape=[4] dtype=float32 op=SUM" in errs[1]


def test_two_ranks_on_one_gpu_is_an_error_on_every_rank(tmp_path):
    # three ranks on this host; the test hook pretends ranks 0 and 2 both picked cuda:0
    rc, elapsed, _, errs = run_job(
        tmp_path,
        3,
        """
        os.environ["EMBER_SELF_CHECK_DEVICE"] = f"cuda:{rank % 2}"
        try:
            dist.init_process_group("mpi")
        except RuntimeError as e:
            print("caught:", e, file=sys.stderr, flush=True)
            sys.exit(3)
        """,
    )
    assert rc != 0 and elapsed < BOUND
    message = (
        f"caught: ranks 0 and 2 on host {HOST} both use cuda:0; bind one rank per GPU "
        "(ember-launch does)"
    )
    for r in range(3):
        assert message in errs[r], errs[r]


def test_rank_table_of_a_healthy_job(tmp_path):
    rc, _, _, errs = run_job(
        tmp_path,
        2,
        """
        import logging
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        os.environ["EMBER_SELF_CHECK_DEVICE"] = f"cuda:{rank}"
        dist.init_process_group("mpi")
        table = [(r["rank"], r["local_rank"], r["device"]) for r in dist.get_rank_table()]
        print("table:", table, file=sys.stderr)
        """,
    )
    assert rc == 0, errs
    for r in range(2):
        assert "table: [(0, 0, 'cuda:0'), (1, 1, 'cuda:1')]" in errs[r]
    assert "rank table:" in errs[0]
    assert re.search(rf"^1 +{re.escape(HOST)} +1 +cuda:1$", errs[0], re.M), errs[0]
    assert "rank table:" not in errs[1]  # rank 0 prints it


# -- pieces that need no job -----------------------------------------------------------------


def test_duplicate_devices_and_table_format():
    table = [
        {"rank": 0, "host": "a", "local_rank": 0, "device": "cuda:0"},
        {"rank": 1, "host": "a", "local_rank": 1, "device": "cuda:1"},
        {"rank": 2, "host": "b", "local_rank": 0, "device": "cuda:0"},
        {"rank": 3, "host": "b", "local_rank": 1, "device": "cpu"},
        {"rank": 4, "host": "b", "local_rank": 2, "device": "cpu"},
    ]
    assert duplicate_devices(table) is None  # same index on two hosts, two CPU ranks: fine
    table.append({"rank": 5, "host": "b", "local_rank": 3, "device": "cuda:0"})
    assert duplicate_devices(table) == (
        "ranks 2 and 5 on host b both use cuda:0; bind one rank per GPU (ember-launch does)"
    )
    # two processes that each see their own GPU as cuda:0 (CUDA_VISIBLE_DEVICES)
    bound = [
        {"rank": r, "host": "a", "local_rank": r, "device": "cuda:0", "physical_device": bus}
        for r, bus in enumerate(["0000:3b:00.0", "0000:5e:00.0", "0000:3b:00.0"])
    ]
    assert duplicate_devices(bound[:2]) is None
    assert duplicate_devices(bound) == (
        "ranks 0 and 2 on host a both use cuda:0 (PCI bus 0000:3b:00.0); bind one rank per "
        "GPU (ember-launch does)"
    )
    assert format_rank_table(table[:2]).splitlines() == [
        "rank  host  local  device",
        "0     a     0      cuda:0",
        "1     a     1      cuda:1",
    ]


def test_flight_recorder_ring():
    rec = FlightRecorder(2)
    first = rec.record("all_reduce", 1, [0, 1], {"shape": [2], "dtype": "float32"})
    rec.record("broadcast", 2, [0, 1], {"shape": [3], "dtype": "int64", "src": 0})
    rec.record("barrier", 3, [0, 1], None)
    entries = rec.entries()
    assert [(e["op"], e["seq"], e["state"]) for e in entries] == [
        ("broadcast", 2, "pending"),
        ("barrier", 3, "pending"),
    ]
    assert entries[0]["shape"] == [3] and entries[0]["dtype"] == "int64"
    assert first not in rec._ring and rec.total == 3
    assert FlightRecorder(0).record("barrier", 1, [0], None) is None


def test_flight_recorder_size_from_environment():
    code = "from ember.distributed import diagnostics as d; print(d.recorder.size)"
    for value, expected in (("5", "5"), ("0", "0")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**clean_env(), "EMBER_FLIGHT_RECORDER_SIZE": value},
            capture_output=True,
            text=True,
        )
        assert out.stdout.strip() == expected, out.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean_env(), "EMBER_FLIGHT_RECORDER_SIZE": "many"},
        capture_output=True,
        text=True,
    )
    assert "EMBER_FLIGHT_RECORDER_SIZE must be an integer, got 'many'" in bad.stderr


# -- in-process, on every rank of an MPI job ------------------------------------------------


@pytest.fixture
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.group.WORLD


def t(a):
    return ember.from_numpy(np.asarray(a))


@pytest.mark.mpi(min_size=2)
def test_flight_recorder_entries(world):
    before = world._seq
    x = t(np.ones((2, 3), np.float32))
    dist.all_reduce(x)
    work = dist.broadcast(t(np.zeros(4, np.int64)), src=0, async_op=True)
    pending = dist.flight_recorder()[-1]
    work.wait()
    entries = dist.flight_recorder()[-2:]
    assert [(e["op"], e["seq"]) for e in entries] == [
        ("all_reduce", before + 1),
        ("broadcast", before + 2),
    ]
    assert entries[0]["shape"] == [2, 3] and entries[0]["dtype"] == "float32"
    assert entries[1]["fields"] == {"shape": [4], "dtype": "int64", "src": 0}
    assert all(e["state"] == "completed" and e["end"] >= e["start"] for e in entries)
    assert pending["op"] == "broadcast" and pending["state"] == "pending"
    assert entries[0]["group"] == list(range(world.size()))


@pytest.mark.mpi(min_size=2)
def test_rank_table_in_process(world):
    table = dist.get_rank_table()
    assert [row["rank"] for row in table] == list(range(world.size()))
    assert {row["device"] for row in table} == {"cpu"}
    assert table[world.rank()]["host"] == HOST
    assert table[world.rank()]["local_rank"] == dist.get_local_rank()


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize(
    "field, others, expected",
    [
        ("shape", ((4,), np.float32), "shape: rank 0 has [3] but rank 1 has [4]"),
        ("dtype", ((3,), np.float64), "dtype: rank 0 has float32 but rank 1 has float64"),
    ],
)
def test_debug_mode_names_the_differing_field_and_both_sides(world, field, others, expected):
    shape, dtype = ((3,), np.float32) if world.rank() == 0 else others
    dist.set_debug_level("DETAIL")
    try:
        with pytest.raises(RuntimeError) as info:
            dist.all_reduce(t(np.zeros(shape, dtype)))
        message = str(info.value)
        assert expected in message
        theirs = f"dtype={np.dtype(others[1]).name}, op=SUM, shape={list(others[0])}"
        assert (
            "(rank 0 called all_reduce(dtype=float32, op=SUM, shape=[3]); "
            f"rank 1 called all_reduce({theirs}))"
        ) in message
        x = t(np.ones(2))
        dist.all_reduce(x)  # the ranks stay in step after the failed check
        np.testing.assert_array_equal(x._array, [world.size()] * 2)
    finally:
        dist.set_debug_level("OFF")
