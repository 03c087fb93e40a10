"""A cluster inside this machine: "hosts" that are Linux network namespaces (each with its
own UTS namespace, so its own host name) joined by veth pairs on a bridge, each with its
own address in a private range picked by the test. ember-launch reaches them through its
normal remote path: Hydra starts its proxies with an ssh stand-in (``-launcher-exec``)
that runs the proxy inside the host's namespaces, exactly where sshd would.

Needs root (network namespaces); without it every test here is skipped with the reason.
Everything the fixture creates (namespaces, bridge, veths, processes inside the
namespaces) is torn down afterwards, also when a test fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

import ember

# Namespaces share the machine's memory, real hosts do not: keep UCX (MPICH's network
# module) off its shared-memory transports between "hosts", as between real machines.
JOB_ENV = {"UCX_TLS": "tcp,self", "EMBER_SELF_CHECK": "1"}

SSH_STAND_IN = """#!/bin/sh
# ssh stand-in: `ssh [options] HOST command...` runs the command inside HOST's namespaces.
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-p|-l|-i|-F) shift 2;;
    -*) shift;;
    *) break;;
  esac
done
host=$1; shift
case "$host" in
{cases}
  *) echo "ssh: Could not resolve hostname $host: Name or service not known" >&2; exit 255;;
esac
if [ -n "$other" ]; then  # this host has another ember: its own file over ember's
  exec ip netns exec "$ns" unshare --uts --mount --propagation private \\
    sh -c 'mount --bind "$2" "$3" && hostname "$0" && exec sh -c "$1"' \\
    "$host" "$*" "$other" "{ember_init}"
fi
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0"; exec sh -c "$1"' "$host" "$*"
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Cluster:
    """Hosts (name -> address), the interface name they share and the ssh stand-in."""

    tag: str
    iface: str
    subnet: str
    hosts: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)
    ssh: str = ""
    relays: list = field(default_factory=list)  # user-space link processes (relay.py)

    def launch(self, *args, timeout=180, env=None, **kw) -> subprocess.CompletedProcess:
        """Run ``ember-launch ARGS`` with the ssh stand-in and this cluster's interface."""
        environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
        environ.update(JOB_ENV)
        environ.update(env or {})
        cmd = [sys.executable, "-m", "ember.launch", "--iface", self.iface]
        cmd += ["--mpi-args", f"-launcher ssh -launcher-exec {self.ssh}", *map(str, args)]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=environ, **kw
        )

    def popen(self, *args, env=None) -> subprocess.Popen:
        environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
        environ.update(JOB_ENV)
        environ.update(env or {})
        cmd = [sys.executable, "-m", "ember.launch", "--iface", self.iface]
        cmd += ["--mpi-args", f"-launcher ssh -launcher-exec {self.ssh}", *map(str, args)]
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
        )

    def pids(self, host: str) -> list[int]:
        out = _ip("netns", "pids", self.namespaces[host], check=False).stdout
        return [int(p) for p in out.split()]

    def kill_host(self, host: str) -> None:
        """Every process of `host` dies at once, as when the machine loses power."""
        for pid in self.pids(host):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def link(self, host: str, up: bool) -> None:
        _ip("-n", self.namespaces[host], "link", "set", self.iface, "up" if up else "down")

    def netem(self, host: str, delay: float, loss: float) -> str:
        """Make `host`'s link slow and lossy (`delay` seconds each way, a `loss` share of
        the packets dropped, both directions): ``tc netem`` where the kernel has it,
        else a user-space relay between two TAP devices. Returns which it used."""
        ns = self.namespaces[host]
        tc = ["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", self.iface, "root"]
        # netem on the host's side delays what it sends; the bridge's side of its veth
        # delays what it receives
        spec = ["netem", "delay", f"{delay * 1000:g}ms", "loss", f"{loss * 100:g}%"]
        if subprocess.run([*tc, *spec], capture_output=True).returncode == 0:
            outer = f"emv{self.tag}{list(self.namespaces).index(host) + 1}"
            tc_outer = ["tc", "qdisc", "replace", "dev", outer, "root", *spec]
            subprocess.run(tc_outer, capture_output=True, check=True)
            return "netem"
        self._relay_link(host, delay, loss)
        return "relay"

    def _relay_link(self, host: str, delay: float, loss: float) -> None:
        """Replace `host`'s veth pair by two TAP devices with relay.py between them."""
        ns, number = self.namespaces[host], list(self.namespaces).index(host) + 1
        outer, inner = f"emr{self.tag}{number}", f"emt{self.tag}{number}"
        _ip("-n", ns, "link", "del", self.iface)  # the veth pair goes as a whole
        relay = subprocess.Popen(
            [sys.executable, RELAY, f"--delay={delay}", f"--loss={loss}", outer, inner],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.relays.append(relay)
        if relay.stdout.readline().strip() != "ready":
            raise RuntimeError(f"relay.py did not start (exit {relay.wait()})")
        _ip("link", "set", inner, "netns", ns)
        _ip("-n", ns, "link", "set", inner, "name", self.iface)
        _ip("-n", ns, "addr", "add", f"{self.hosts[host]}/24", "dev", self.iface)
        _ip("-n", ns, "link", "set", self.iface, "up")
        _ip("link", "set", outer, "master", self.iface, "up")

    def connect_time(self, host: str, tries: int = 3) -> float:
        """The shortest of `tries` TCP connects from this machine to `host` (one round
        trip each)."""
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.namespaces[host],
                sys.executable,
                "-c",
                ACCEPT,
                str(tries),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port = int(server.stdout.readline())
            times = []
            for _ in range(tries):
                start = time.perf_counter()
                socket.create_connection((self.hosts[host], port), timeout=10).close()
                times.append(time.perf_counter() - start)
            return min(times)
        finally:
            server.kill()
            server.wait()


RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay.py")
ACCEPT = """import socket, sys
server = socket.create_server(("", 0))
print(server.getsockname()[1], flush=True)
for _ in range(int(sys.argv[1])):
    server.accept()[0].close()
"""


def _unavailable() -> str | None:
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    return None


def _teardown(cluster: Cluster, bridge: str) -> None:
    for host in list(cluster.namespaces):
        cluster.kill_host(host)
    for relay in cluster.relays:  # its TAP devices vanish with it
        relay.kill()
        relay.wait()
    time.sleep(0.1)
    for ns in cluster.namespaces.values():
        _ip("netns", "del", ns, check=False)
    _ip("link", "del", bridge, check=False)


def _build(tmp_path, names: list[str]) -> tuple[Cluster, str]:
    tag = secrets.token_hex(3)
    bridge = f"emb{tag}"  # also the hosts' interface name, so one --iface fits all
    used = _ip("-4", "addr").stdout
    third = next(n for n in range(1 + int(tag, 16) % 200, 256) if f"10.213.{n}." not in used)
    cluster = Cluster(tag, bridge, f"10.213.{third}.0/24")
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"10.213.{third}.254/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        cases = []
        for i, name in enumerate(names, 1):
            host, ns = f"{name}-{tag}", f"embns-{tag}-{i}"
            _ip("netns", "add", ns)
            cluster.namespaces[host] = ns
            _ip("link", "add", f"emv{tag}{i}", "type", "veth", "peer", "name", bridge, "netns", ns)
            _ip("link", "set", f"emv{tag}{i}", "master", bridge, "up")
            _ip("-n", ns, "addr", "add", f"10.213.{third}.{i}/24", "dev", bridge)
            _ip("-n", ns, "link", "set", bridge, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            cluster.hosts[host] = f"10.213.{third}.{i}"
            cases.append(f'  {host}) ns={ns}; other="$EMBER_TEST_OTHER_INIT_{name}";;')
        ssh = tmp_path / "ssh"
        text = SSH_STAND_IN.format(cases="\n".join(cases), ember_init=ember.__file__)
        ssh.write_text(text)
        ssh.chmod(0o755)
        cluster.ssh = str(ssh)
    except BaseException:
        _teardown(cluster, bridge)
        raise
    return cluster, bridge


@pytest.fixture
def cluster(tmp_path):
    """Two hosts, ``hostA-<tag>`` and ``hostB-<tag>``, plus a third, ``hostC-<tag>``."""
    why = _unavailable()
    if why:
        pytest.skip(why)
    try:
        built, bridge = _build(tmp_path, ["hostA", "hostB", "hostC"])
    except subprocess.CalledProcessError as err:
        pytest.skip(f"cannot make network namespaces here: {err.stderr.strip()}")
    try:
        yield built
    finally:
        _teardown(built, bridge)
