"""ember-launch's roll call: ranks that started and never said how they ended are named
with their host; ranks that exited, died of a signal or were killed by mpiexec are not."""

import os
import socket
import subprocess
import sys
import time

from ember.launch import _rank
from ember.launch.rollcall import RollCall, reachable_address


def connect(roll: RollCall) -> socket.socket:
    host, _, port = roll.address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=5)


def until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the roll call did not hear the messages"
        time.sleep(0.01)


def test_silent_ranks_are_named_by_host():
    with RollCall("127.0.0.1") as roll:
        socks = [connect(roll) for _ in range(5)]
        for rank, (sock, host) in enumerate(zip(socks, ["a", "a", "b", "b", "c"])):
            sock.sendall(f"start {rank} {host}\n".encode())
        socks[0].sendall(b"exit 0 1\n")
        socks[1].sendall(b"killed 1\n")
        socks[4].sendall(b"sig")  # a message cut in two still counts
        socks[4].sendall(b"nal 4 9\n")
        socks[2].close()  # host b's processes died: connection closed without a word
        until(lambda: len(roll.hosts) == 5 and len(roll.ended) == 3)
        report = roll.lost_report(settle=0.5)  # rank 3's connection stays open and silent
        assert report == [
            "ember-launch: lost ranks 2, 3 on host b (no exit status: the host or its "
            "processes died)"
        ]
        assert roll.ended == {0: "exit 1", 1: "killed", 4: "signal 9"}
        for sock in socks[1:]:
            sock.close()


def test_the_reporter_forwards_the_exit_or_says_the_bootstrap_was_killed():
    with RollCall("127.0.0.1") as roll:
        told = _rank.start_reporter(0, roll.address)
        _rank._tell(told, "exit 0 3")
        killed = _rank.start_reporter(1, roll.address)
        os.close(killed)  # as when mpiexec SIGKILLs the bootstrap
        nobody = _rank.start_reporter(2, "127.0.0.1:1")  # nobody listens there
        _rank._tell(nobody, "exit 2 0")  # the bootstrap does not notice
        until(lambda: len(roll.ended) == 2)  # the killed one speaks after a grace period
        assert roll.silent(settle=5.0) == {}
        host = socket.gethostname()
        assert roll.hosts == {0: host, 1: host}
        assert roll.ended == {0: "exit 3", 1: "killed"}


def test_reachable_address():
    assert reachable_address([]) == "127.0.0.1"
    assert reachable_address(["127.0.0.1"]) == "127.0.0.1"
    assert reachable_address(["localhost"], iface="lo") == "127.0.0.1"


def test_a_launched_job_reports_every_rank(tmp_path):
    script = tmp_path / "ok.py"
    script.write_text("import sys; sys.exit(int(sys.argv[1]))\n")
    run = subprocess.run(
        [sys.executable, "-m", "ember.launch", "-n", "2", str(script), "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "lost rank" not in run.stderr  # both ranks said how they ended
