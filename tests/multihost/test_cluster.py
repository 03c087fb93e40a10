"""ember-launch across "hosts" made of network namespaces (see conftest.py): launching,
collectives, DDP equivalence, interface choice, pre-flight and faults."""

import json
import pathlib
import re
import time

import pytest

from ember.distributed import faults

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
DDP = str(SCRIPTS / "ddp_hosts.py")
pytestmark = pytest.mark.multihost


def result_of(run) -> dict:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_ddp_on_two_hosts_equals_one_process_on_the_full_batch(cluster):
    a, b = list(cluster.hosts)[:2]
    run = cluster.launch("-H", f"{a}:2,{b}:2", DDP, 4)
    out = result_of(run)
    assert out["diff"] < 1e-10
    assert out["shards"] == [8, 8, 8, 8]
    assert out["table"] == [[0, a, 0], [1, a, 1], [2, b, 0], [3, b, 1]]
    assert out["hosts"] == [a, a, b, b]
    assert out["sum"] == 10.0 and out["broadcast"] == 7.0
    assert out["gathered"] == [0.0, 1.0, 2.0, 3.0]
    assert out["object"] == {"from": 1}


def test_preflight_refuses_an_unreachable_host_in_seconds(cluster):
    a = list(cluster.hosts)[0]
    start = time.monotonic()
    run = cluster.launch("-H", f"{a}:1,nohost-{cluster.tag}:1", DDP, 1, timeout=60)
    assert time.monotonic() - start < 30  # the pre-flight's own limit is 20 s
    assert run.returncode == 2
    assert (
        f"ember-launch: pre-flight: host nohost-{cluster.tag}: no answer (ssh: Could not "
        f"resolve hostname nohost-{cluster.tag}"
    ) in run.stderr
    assert f"host {a}:" not in run.stderr
    assert "the job was not started" in run.stderr


def test_preflight_refuses_a_host_with_another_ember(cluster, tmp_path):
    a, b = list(cluster.hosts)[:2]
    other = tmp_path / "other_init.py"  # what hostB's ember/__init__.py holds
    other.write_text('__version__ = "0.0.1"\n')
    env = {"EMBER_TEST_OTHER_INIT_hostB": str(other)}
    run = cluster.launch("-H", f"{a}:1,{b}:1", DDP, 1, env=env)
    assert run.returncode == 2
    assert re.search(rf"pre-flight: host {b}: ember 0\.0\.1 \(this host: \S+\)", run.stderr)
    assert f"host {a}:" not in run.stderr


def test_training_over_a_slow_lossy_link_is_still_right(cluster):
    a, b = list(cluster.hosts)[:2]
    # 20 ms each way and 1 % of the packets lost, in both directions: tc netem, or a
    # user-space relay between TAP devices where the kernel has no netem
    cluster.netem(b, delay=0.02, loss=0.01)
    assert cluster.connect_time(b) >= 0.04  # a TCP handshake takes a round trip
    out = result_of(cluster.launch("-H", f"{a}:2,{b}:2", DDP, 4))
    assert out["diff"] < 1e-10 and out["sum"] == 10.0


def test_a_host_that_dies_takes_the_job_down(cluster, tmp_path):
    a, b = list(cluster.hosts)[:2]
    (tmp_path / "ckpt").mkdir()
    job = cluster.popen("-H", f"{a}:2,{b}:2", DDP, 200, 0.1, tmp_path / "ckpt")
    try:
        for line in job.stdout:
            if line.startswith("step 3 "):
                break
        cluster.kill_host(b)
        killed = time.monotonic()
        _, err = job.communicate(timeout=60)
        assert time.monotonic() - killed < 15
    finally:
        job.kill()
    assert job.returncode != 0
    # ember-launch's roll call heard hostA's ranks end (or be ended by mpiexec) and
    # nothing from hostB's
    lost = re.findall(r"ember-launch: lost ranks? ([\d, ]+) on host (\S+) \((.*)\)", err)
    assert lost == [("2, 3", b, "no exit status: the host or its processes died")], err[-3000:]
    assert ranks_running(cluster, a) == ranks_running(cluster, b) == []
    assert last_step(tmp_path / "ckpt") >= 3


def ranks_running(cluster, host) -> list[int]:
    """The pids of `host`'s processes that run the training script (ranks, watchers)."""
    found = []
    for pid in cluster.pids(host):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except OSError:  # already gone
            continue
        if b"ddp_hosts.py" in command and b"hydra_pmi_proxy" not in command:
            found.append(pid)
    return found


def test_a_link_down_mid_all_reduce_ends_the_job_naming_the_host(cluster, tmp_path):
    a, b = list(cluster.hosts)[:2]
    timeout = 5.0
    (tmp_path / "ckpt").mkdir()
    job = cluster.popen("-H", f"{a}:2,{b}:2", DDP, 200, 0.1, tmp_path / "ckpt", timeout)
    try:
        for line in job.stdout:
            if line.startswith("step 3 "):
                break
        cluster.link(b, up=False)
        down = time.monotonic()
        _, err = job.communicate(timeout=60)
        assert time.monotonic() - down < timeout + 5
        # the cut-off host's ranks cannot hear the launcher: they end themselves when their
        # own stall report gives up (the timeout, the 2 s probe, then a 3 s bounded abort or
        # the SIGALRM backstop), which can land just after the job is already down
        backstop = timeout + faults.STALL_PROBE_S + 3 + 5
        while ranks_running(cluster, b) and time.monotonic() - down < backstop:
            time.sleep(0.2)
        assert ranks_running(cluster, a) == ranks_running(cluster, b) == []
    finally:
        job.kill()
    assert job.returncode != 0
    assert re.search(
        rf"ranks \[2, 3\] on host\(s\) {b} did not answer within 2 s: host unreachable or down",
        err,
    ), err[-3000:]
    assert re.search(r"collective #\d+ all_reduce has waited 5\.\d s; ranks \[2, 3\] never", err)
    assert last_step(tmp_path / "ckpt") >= 3


def last_step(directory) -> int:
    """The step of the latest checkpoint in `directory`, loaded into a fresh model."""
    import ember.nn as nn
    from ember.distributed.checkpoint import latest_checkpoint, load_checkpoint

    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    return load_checkpoint(latest_checkpoint(directory), model=model)["step"]


def test_elastic_restart_on_the_surviving_host_keeps_the_result(cluster, tmp_path):
    a, b = list(cluster.hosts)[:2]
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    job = cluster.popen(
        "--restarts",
        1,
        "--min-hosts",
        1,
        "-H",
        f"{a}:2,{b}:2",
        DDP,
        12,
        0.2,
        ckpt,
        10,
        env={"EMBER_TEST_ZERO": "1"},  # ZeroRedundancyOptimizer: state split by rank
    )
    try:
        for line in job.stdout:
            if line.startswith("step 4 "):
                break
        cluster.kill_host(b)  # the machine dies and drops off the network: the job learns
        cluster.link(b, up=False)  # it from the collective timeout (10 s here)
        out, err = job.communicate(timeout=150)
    finally:
        job.kill()
    assert job.returncode == 0, err[-6000:]
    assert "attempt 2/2 succeeded" in err  # the attempt that lost the host was the first
    assert f"ember-launch: restarting without {b} on {a}" in err
    result = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
    assert result["world"] == 2 and result["hosts"] == [a, a]
    # DistributedSampler re-shards for the new world: the global batch is kept (each of 2
    # ranks takes 16 of the 32 samples) ...
    assert result["shards"] == [16, 16]
    # ... and the optimizer state saved by 4 ranks is re-partitioned over 2: between them
    # they hold the momentum of all 4 parameters, each rank some
    assert sum(result["optimizer_states"]) == 4 and 0 not in result["optimizer_states"]
    # so the resumed run equals one uninterrupted process on the full batch
    assert result["diff"] < 1e-10
