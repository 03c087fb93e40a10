"""Pre-flight of multi-host jobs: remote hosts must answer and match this host's Python and
ember versions before any rank starts."""

import json
import platform
import subprocess
import sys

import pytest

import ember
from ember.launch import cli, preflight

HERE = {"python": platform.python_version(), "ember": ember.__version__}


def planted(replies):
    """A probe that answers with `replies` and records whom it was asked about."""
    asked = []

    def probe(hosts, flavour, mpiexec, mpi_args, timeout):
        asked.append((hosts, flavour, mpiexec, mpi_args))
        return {host: replies[host] for host in hosts}

    probe.asked = asked
    return probe


def no_job(*args, **kwargs):
    raise AssertionError("the job must not start")


def test_planted_mismatches_name_each_failing_host_and_stop_the_job(monkeypatch, capsys):
    probe = planted(
        {
            "good": {**HERE, "hostname": "good"},
            "oldpy": {**HERE, "python": "3.9.1"},
            "oldember": {**HERE, "ember": "0.0.1"},
            "both": {"python": "3.8.0", "ember_error": "ModuleNotFoundError: No module named 'x'"},
            "down": "no answer (ssh: connect to host down port 22: Connection refused)",
        }
    )
    monkeypatch.setattr(preflight, "probe_hosts", probe)
    monkeypatch.setattr(cli, "supervise", no_job)
    hosts = "localhost:1,good:1,oldpy:1,oldember:1,both:1,down:1,good:2"
    rc = cli.main(["--flavour", "hydra", "--mpi-args=-v", "-H", hosts, "train.py"])
    assert rc == 2
    assert probe.asked == [
        (["good", "oldpy", "oldember", "both", "down"], "hydra", cli.default_mpiexec(), "-v")
    ]
    here_py, here_ember = HERE["python"], HERE["ember"]
    assert capsys.readouterr().err.splitlines() == [
        f"ember-launch: pre-flight: host oldpy: Python 3.9.1 (this host: {here_py})",
        f"ember-launch: pre-flight: host oldember: ember 0.0.1 (this host: {here_ember})",
        f"ember-launch: pre-flight: host both: Python 3.8.0 (this host: {here_py}); cannot "
        f"import ember with {sys.executable}: ModuleNotFoundError: No module named 'x'",
        "ember-launch: pre-flight: host down: no answer (ssh: connect to host down port 22: "
        "Connection refused)",
        "ember-launch: error: pre-flight failed on 4 of 5 remote host(s); the job was not "
        "started (--no-preflight skips the check)",
    ]


def test_hostfile_hosts_are_checked_too(monkeypatch, tmp_path, capsys):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("node1 slots=2\nnode2 slots=2\n")
    probe = planted({"node1": {**HERE}, "node2": "no answer within 20 s"})
    monkeypatch.setattr(preflight, "probe_hosts", probe)
    monkeypatch.setattr(cli, "supervise", no_job)
    assert cli.main(["--flavour", "openmpi", "--hostfile", str(hostfile), "t.py"]) == 2
    assert probe.asked[0][:2] == (["node1", "node2"], "openmpi")
    err = capsys.readouterr().err
    assert "ember-launch: pre-flight: host node2: no answer within 20 s\n" in err
    assert "node1" not in err


def test_passing_preflight_starts_the_job_and_no_preflight_skips_it(monkeypatch):
    probe = planted({"node1": {**HERE}, "node2": "no answer"})
    started = []
    monkeypatch.setattr(preflight, "probe_hosts", probe)
    monkeypatch.setattr(
        cli, "supervise", lambda build, env, restarts, **kw: started.append(restarts)
    )
    cli.main(["--flavour", "hydra", "-H", "node1:2", "--restarts", "2", "t.py"])
    assert started == [2] and len(probe.asked) == 1
    cli.main(["--flavour", "hydra", "-H", "node1:2,node2:2", "--no-preflight", "t.py"])
    assert started == [2, 0] and len(probe.asked) == 1


def test_local_hosts_skip_preflight_and_dry_run_never_probes(monkeypatch, capfd):
    monkeypatch.setattr(preflight, "probe_hosts", no_job)
    rc = cli.main(["--flavour", "hydra", "-H", "localhost:1,127.0.0.1:1", "-m", "platform"])
    assert rc == 0
    assert capfd.readouterr().out.count(platform.platform()) == 2
    assert cli.main(["--flavour", "hydra", "-H", "far:1", "--dry-run", "t.py"]) == 0
    assert "-genv EMBER_RESTART_COUNT 0" in capfd.readouterr().out


def test_real_probe_of_a_reachable_and_an_unknown_host():
    replies = preflight.probe_hosts(["localhost", "nosuchhost.invalid"], "hydra", "mpiexec")
    assert {k: replies["localhost"][k] for k in HERE} == HERE
    assert replies["nosuchhost.invalid"].startswith("no answer (")
    assert "[mpiexec@" not in replies["nosuchhost.invalid"]


def test_real_unreachable_host_stops_the_launch_before_the_job(tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "touch.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    result = subprocess.run(
        [sys.executable, "-m", "ember.launch", "-H", "localhost:1,nosuchhost.invalid:1", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("ember-launch: pre-flight: host nosuchhost.invalid: no answer (")
    assert lines[1].startswith("ember-launch: error: pre-flight failed on 1 of 1 remote host(s)")
    assert not marker.exists()


def test_probe_timeout_ends_the_probe(tmp_path):
    slow = tmp_path / "mpiexec"
    slow.write_text("#!/bin/sh\nsleep 30 &\nwait\n")  # a child holding the pipes, like ssh
    slow.chmod(0o755)
    replies = preflight.probe_hosts(["a", "b"], "hydra", str(slow), timeout=0.3)
    assert replies == {"a": "no answer within 0.3 s", "b": "no answer within 0.3 s"}


HYDRA_LINES = (
    "[mpiexec@vm] ui_cmd_cb (/mpich/src/pm/hydra/mpiexec/pmiserv_pmci.c:51): "
    "Launch proxy failed.\n"
    "[mpiexec@vm] HYDT_dmxu_poll_wait_for_event (/mpich/demux_poll.c:76): callback returned "
    "error status\n"
)


def _failing_mpiexec(tmp_path, prints: str):
    """A fake mpiexec that counts its calls (one line each in the returned file), runs the
    shell lines ``prints`` and fails as hydra does (exit 255)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "mpiexec"
    fake.write_text(f"#!/bin/sh\necho x >> {calls}\n{prints}exit 255\n")
    fake.chmod(0o755)
    return str(fake), calls


def test_probe_asks_again_when_hydra_lost_what_ssh_said(tmp_path):
    # hydra can report a failed launch before it forwards ssh's complaint: the first call
    # prints only hydra's lines, the second ssh's reason too
    fake, calls = _failing_mpiexec(
        tmp_path,
        f"if [ $(wc -l < {tmp_path / 'calls'}) -gt 1 ]; then "
        "echo 'ssh: Could not resolve hostname b' >&2; fi\n"
        f"printf '{HYDRA_LINES}' >&2\n",
    )
    replies = preflight.probe_hosts(["b"], "hydra", fake)
    assert replies == {"b": "no answer (ssh: Could not resolve hostname b)"}
    assert calls.read_text().count("x") == 2


def test_probe_asks_once_more_at_most_and_names_mpiexec_reason(tmp_path):
    fake, calls = _failing_mpiexec(tmp_path, f"printf '{HYDRA_LINES}' >&2\n")
    replies = preflight.probe_hosts(["a", "b"], "hydra", fake)
    assert replies == {
        "a": "no answer (mpiexec: Launch proxy failed.)",
        "b": "no answer (mpiexec: Launch proxy failed.)",
    }
    assert calls.read_text().count("x") == 4


def test_probe_does_not_ask_again_when_the_launcher_gave_its_reason(tmp_path):
    fake, calls = _failing_mpiexec(tmp_path, "echo 'ssh: connect: refused' >&2\n")
    assert preflight.probe_hosts(["a"], "hydra", fake) == {"a": "no answer (ssh: connect: refused)"}
    assert calls.read_text().count("x") == 1


def test_probe_reports_an_ember_that_does_not_import(tmp_path):
    # -S: no site-packages, so ember (and NumPy) cannot be imported
    out = subprocess.run(
        [sys.executable, "-S", "-c", preflight.PROBE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert out.startswith(preflight.MARKER)
    reply = json.loads(out[len(preflight.MARKER) :])
    assert reply["python"] == HERE["python"] and "ember" not in reply
    assert reply["ember_error"].startswith("ModuleNotFoundError: No module named")


@pytest.mark.parametrize(
    "flavour, place",
    [("hydra", ["-n", "1", "-hosts", "n1"]), ("openmpi", ["-n", "1", "--host", "n1:1"])],
)
def test_probe_command(flavour, place):
    cmd = preflight.probe_command("n1", flavour, "/opt/mpiexec", "-launcher ssh", "/py")
    assert cmd == ["/opt/mpiexec", *place, "-launcher", "ssh", "/py", "-c", preflight.PROBE]
