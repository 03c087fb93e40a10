"""ember-launch across "hosts" made of network namespaces (see conftest.py): launching,
collectives, DDP equivalence, interface choice, pre-flight and faults."""

import json
import pathlib

import pytest

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
    assert out["table"] == [[0, a, 0], [1, a, 1], [2, b, 0], [3, b, 1]]
    assert out["hosts"] == [a, a, b, b]
    assert out["sum"] == 10.0 and out["broadcast"] == 7.0
    assert out["gathered"] == [0.0, 1.0, 2.0, 3.0]
    assert out["object"] == {"from": 1}
