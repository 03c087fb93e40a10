r"""Pre-flight for multi-host jobs: before the job starts, every remote host must answer and
run the same Python and ember versions as this host.

Each remote host is asked at once through the same mpiexec that will run the job
(``mpiexec -n 1 -hosts HOST python -c PROBE``), so a host that ssh cannot reach, lacks this
Python or cannot import ember is named before any rank starts. Local hosts are not asked.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable

TIMEOUT = 20.0  # seconds for all hosts to answer
MARKER = "ember-preflight: "
PROBE = f"""\
import json, platform, socket
reply = {{"hostname": socket.gethostname(), "python": platform.python_version()}}
try:
    import ember
    reply["ember"] = ember.__version__
except Exception as err:
    reply["ember_error"] = f"{{type(err).__name__}}: {{err}}"
print({MARKER!r} + json.dumps(reply), flush=True)
"""

# What probe functions return per host: the reply, or why there was none.
Replies = dict[str, dict | str]


def probe_command(
    host: str, flavour: str, mpiexec: str, mpi_args: str = "", python: str = sys.executable
) -> list[str]:
    """The mpiexec command line that runs the probe on `host` alone."""
    if flavour == "hydra":
        place = ["-n", "1", "-hosts", host]
    else:
        place = ["-n", "1", "--host", f"{host}:1"]
    return [mpiexec, *place, *shlex.split(mpi_args), python, "-c", PROBE]


def _lines(stdout: str, stderr: str) -> tuple[list[str], list[str]]:
    """A failed probe's non-empty output lines, and those of them that are not mpiexec's
    own (ssh's complaint, say)."""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    return lines, [line for line in lines if not line.startswith("[mpiexec@")]


def _why(stdout: str, stderr: str, rc: int) -> str:
    """The most telling line of a failed probe's output: the launcher's own complaint (ssh's,
    say), else mpiexec's, without hydra's "[mpiexec@host] function (file:line):" prefix."""
    lines, own = _lines(stdout, stderr)
    if own:
        return own[0]
    if lines:
        return "mpiexec: " + _HYDRA_PREFIX.sub("", lines[0])
    return f"exit status {rc}"


_HYDRA_PREFIX = re.compile(r"^\[mpiexec@[^\]]*\]\s*(\S+\s+\([^)]*\):\s*)?")


def _launcher_silent(stdout: str, stderr: str) -> bool:
    """Whether a failed probe printed only mpiexec's lines: hydra can report the failed
    launch before it forwards what ssh wrote, so the reason is lost and worth one more ask."""
    return not _lines(stdout, stderr)[1]


def _start(host: str, flavour: str, mpiexec: str, mpi_args: str) -> subprocess.Popen:
    return subprocess.Popen(
        probe_command(host, flavour, mpiexec, mpi_args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a timeout can end mpiexec's ssh children too
    )


def probe_hosts(
    hosts: list[str], flavour: str, mpiexec: str, mpi_args: str = "", timeout: float = TIMEOUT
) -> Replies:
    """Run the probe on every host at once; each host's reply dict, or why it gave none.

    A host whose probe failed with nothing but mpiexec's own lines is asked once more within
    the same time limit, so the answer names ssh's reason when there is one."""
    deadline = time.monotonic() + timeout
    procs = {host: _start(host, flavour, mpiexec, mpi_args) for host in hosts}
    replies: Replies = {}
    retried: set[str] = set()
    while procs:
        host, proc = next(iter(procs.items()))
        del procs[host]
        try:
            stdout, stderr = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            replies.setdefault(host, f"no answer within {timeout:g} s")
            continue
        for line in stdout.splitlines():
            if line.startswith(MARKER):
                replies[host] = json.loads(line[len(MARKER) :])
                break
        else:
            replies[host] = f"no answer ({_why(stdout, stderr, proc.returncode)})"
            if host not in retried and _launcher_silent(stdout, stderr):
                retried.add(host)
                procs[host] = _start(host, flavour, mpiexec, mpi_args)
    return {host: replies[host] for host in hosts}


def local_versions() -> dict:
    """This host's Python and ember versions, which every host must match."""
    from .. import __version__

    return {"python": platform.python_version(), "ember": __version__}


def problems(host: str, reply: dict | str, expected: dict) -> str | None:
    """One line saying what is wrong with `host`, or None when it is fit to run the job."""
    if isinstance(reply, str):
        return f"ember-launch: pre-flight: host {host}: {reply}"
    issues = []
    if reply.get("python") != expected["python"]:
        issues.append(f"Python {reply.get('python')} (this host: {expected['python']})")
    if "ember_error" in reply:
        issues.append(f"cannot import ember with {sys.executable}: {reply['ember_error']}")
    elif reply.get("ember") != expected["ember"]:
        issues.append(f"ember {reply.get('ember')} (this host: {expected['ember']})")
    if not issues:
        return None
    return f"ember-launch: pre-flight: host {host}: " + "; ".join(issues)


def check_hosts(
    hosts: list[str],
    flavour: str,
    mpiexec: str,
    mpi_args: str = "",
    probe: Callable[..., Replies] | None = None,
    timeout: float = TIMEOUT,
) -> list[str]:
    r"""Ask each host in `hosts` for its Python and ember versions.

    Args:
        hosts: the host names to check (duplicates are asked once).
        flavour, mpiexec, mpi_args: how to reach them, as for the job.
        probe: replaces :func:`probe_hosts` (tests plant replies through it).
        timeout: seconds for all hosts to answer.

    Returns:
        one line per failing host (empty when all are fit).
    """
    probe = probe_hosts if probe is None else probe
    hosts = list(dict.fromkeys(hosts))
    replies = probe(hosts, flavour, mpiexec, mpi_args, timeout)
    expected = local_versions()
    lines = [problems(host, replies.get(host, "no reply"), expected) for host in hosts]
    return [line for line in lines if line is not None]
