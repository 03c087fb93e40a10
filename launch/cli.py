r"""ember-launch: start a data-parallel job on top of mpiexec (MPICH/Hydra or Open MPI).

Usage::

    ember-launch -n 4 train.py --lr 0.1          # 4 ranks on this host
    ember-launch -H node1:4,node2:4 train.py     # 8 ranks on two hosts
    ember-launch --hostfile hosts -m pkg.train   # a module, hosts from a file
    ember-launch -n 2 --dry-run train.py         # print the mpiexec command line only
    ember-launch -n 8 --restarts 3 train.py      # relaunch the job after a failure, 3 times
    ember-launch -H a:2,b:2 --iface eth1 train.py  # keep the job's traffic on eth1

Each rank runs ``python launch/_rank.py train.py ...``: a standard-library bootstrap that
binds the rank to one GPU by its local rank (``CUDA_VISIBLE_DEVICES``), divides the host's
cores between its ranks (``OMP_NUM_THREADS``, ...) and execs ``python train.py ...``.
The same script also runs under a plain ``mpirun -n 4 python train.py`` (ember.distributed
binds GPUs itself then) and as ``python train.py`` (world size 1).

All hosts local (localhost, 127.0.0.1, this host's name): Hydra gets ``-launcher fork``, so
a multi-"host" job on one machine needs no ssh. ember-launch exits with mpiexec's exit code
(non-zero when any rank failed; 128 + N when mpiexec died of signal N) and forwards SIGINT
and SIGTERM to it.

``--restarts K`` relaunches the whole job after a failure, up to K times; each attempt sees
``EMBER_RESTART_COUNT`` (0, 1, ...) and resumes from its latest checkpoint (see
launch/supervise.py), and a summary at the end shows why each failed attempt failed. With
``--min-hosts M`` each restart first asks every host again and leaves out those that do
not answer, restarting with a smaller world as long as M hosts remain.
With any remote host in -H/--hostfile, a pre-flight first checks that every remote host
answers and runs the same Python and ember versions (launch/preflight.py; ``--no-preflight``
skips it).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import socket
import subprocess
import sys

from . import preflight
from .env import MAX_RESTARTS_VAR, NODE_SLOTS_VAR
from .rollcall import ROLLCALL_VAR, reachable_address
from .supervise import RESTART_VAR, supervise

HYDRA, OPENMPI = "hydra", "openmpi"
DEFAULT_FORWARD_PREFIXES = ("EMBER_", "OMP_", "NCCL_")
BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_rank.py")


def default_mpiexec() -> str:
    """The mpiexec of this Python's own environment (so ``/path/to/venv/bin/ember-launch``
    works without activating the venv), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else "mpiexec"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ember-launch",
        description="Run a training script on N ranks per host through mpiexec.",
    )
    p.add_argument(
        "-n",
        "--nproc-per-node",
        type=int,
        default=None,
        help="ranks per host (default: the visible GPUs, else 1); a host's own slot "
        "count in -H/--hostfile takes precedence",
    )
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument("-H", "--hosts", help="hosts and slots: host1:4,host2:4")
    hosts.add_argument("--hostfile", help="file of 'host slots=N' (Open MPI) or 'host:N' (Hydra)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="VAR[=VALUE]",
        help="forward VAR (repeatable); EMBER_*, OMP_* and NCCL_* are forwarded by default",
    )
    p.add_argument(
        "--mpiexec",
        default=default_mpiexec(),
        help="the mpiexec to run (default: the one beside this Python, as the mpich wheel "
        "installs it, else the one on PATH)",
    )
    p.add_argument(
        "--master-addr",
        default=None,
        help="MASTER_ADDR given to the ranks (default: $MASTER_ADDR, else the first host)",
    )
    p.add_argument(
        "--master-port",
        type=int,
        default=None,
        help="MASTER_PORT given to the ranks (default: $MASTER_PORT, else 29500)",
    )
    p.add_argument(
        "--flavour",
        choices=(HYDRA, OPENMPI),
        help="the MPI flavour, instead of asking `mpiexec --version`",
    )
    p.add_argument("--mpi-args", default="", help="extra arguments for mpiexec, one string")
    p.add_argument(
        "--iface",
        metavar="IFNAME",
        help="the network interface between hosts (like NCCL_SOCKET_IFNAME): Hydra's -iface "
        "and UCX_NET_DEVICES / FI_TCP_IFACE for MPICH; btl/oob_tcp_if_include for Open MPI",
    )
    p.add_argument(
        "--tag-output", action="store_true", help="prefix each output line with its rank"
    )
    p.add_argument("--dry-run", action="store_true", help="print the mpiexec command and exit")
    p.add_argument(
        "--restarts",
        type=int,
        default=0,
        metavar="K",
        help="relaunch the whole job after a failure, up to K times (default 0); each "
        f"attempt gets {RESTART_VAR}=0, 1, ... and should resume from its latest checkpoint",
    )
    p.add_argument(
        "--min-hosts",
        type=int,
        default=None,
        metavar="M",
        help="with --restarts and -H/--hostfile: before each restart ask every host again "
        "(the pre-flight) and restart on those that answer, with a smaller world, as long as "
        "at least M do",
    )
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the check that remote hosts answer and run the same Python and ember",
    )
    p.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="MODULE ...",
        help="run a library module as a script (like python -m)",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="script [args...]")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.module:
        args.program = ["-m", *args.module]
    elif args.module is not None:
        parser.error("argument -m: expected a module name")
    elif command:
        args.program = command
    else:
        parser.error("the script to run (or -m module) is required")
    if args.nproc_per_node is not None and args.nproc_per_node < 1:
        parser.error(f"--nproc-per-node must be at least 1, got {args.nproc_per_node}")
    if args.restarts < 0:
        parser.error(f"--restarts must be at least 0, got {args.restarts}")
    if args.min_hosts is not None and (args.min_hosts < 1 or not (args.hosts or args.hostfile)):
        parser.error("--min-hosts needs -H/--hostfile and must be at least 1")
    return args


def detect_flavour(mpiexec: str) -> str:
    """'hydra' (MPICH, Intel MPI, MVAPICH) or 'openmpi', from `mpiexec --version`."""
    try:
        out = subprocess.run(
            [mpiexec, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except FileNotFoundError as err:
        raise RuntimeError(
            f"mpiexec not found: {mpiexec!r}; install MPI (pip install mpich) or pass --mpiexec PATH"
        ) from err
    text = out.stdout + out.stderr
    if re.search(r"Open MPI|OpenRTE|open-mpi\.org", text):
        return OPENMPI
    if re.search(r"HYDRA|MPICH|Intel\(R\) MPI", text, re.IGNORECASE):
        return HYDRA
    raise RuntimeError(
        f"cannot tell which MPI {mpiexec!r} belongs to (neither MPICH/Hydra nor Open MPI); "
        f"`{mpiexec} --version` said: {text.strip()[:200]!r}; pass --flavour"
    )


def parse_hosts(spec: str) -> list[tuple[str, int | None]]:
    """'a:4,b' -> [('a', 4), ('b', None)]."""
    hosts = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, slots = item.rpartition(":") if ":" in item else (item, "", "")
        hosts.append((name, _slots(slots, item)) if sep else (item, None))
    if not hosts:
        raise ValueError(f"no hosts in {spec!r}")
    return hosts


def _slots(text: str, where: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"bad slot count {text!r} in {where!r}: expected a positive integer")
    return int(text)


def read_hostfile(path: str) -> list[tuple[str, int | None]]:
    """Hosts from a file in Open MPI ('host slots=N') or Hydra ('host:N') format."""
    hosts = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            slots = None
            for word in words[1:]:
                key, _, value = word.partition("=")
                if key == "slots":
                    slots = _slots(value, line)
            if ":" in words[0]:
                hosts.extend(parse_hosts(words[0]))
            else:
                hosts.append((words[0], slots))
    if not hosts:
        raise ValueError(f"hostfile {path!r} lists no hosts")
    return hosts


def visible_gpu_count(environ=None) -> int:
    """GPUs this host shows: CUDA_VISIBLE_DEVICES's entries, else `nvidia-smi -L`, else 0."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        entries = [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",")]
        count = 0
        for d in entries:
            if not d or d.startswith("-"):
                break
            count += 1
        return count
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def _is_local(host: str) -> bool:
    return host in ("localhost", socket.gethostname(), socket.getfqdn()) or (
        host.startswith("127.")
    )


def forwarded_env(names: list[str], environ=None) -> list[tuple[str, str]]:
    """(VAR, value) pairs to forward: each --env VAR[=VALUE], then EMBER_*/OMP_*/NCCL_*."""
    env = os.environ if environ is None else environ
    pairs: dict[str, str] = {}
    for item in names:
        name, sep, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"--env {item!r}: not an environment variable name")
        if not sep:
            if name not in env:
                raise ValueError(f"--env {name}: {name} is not set in ember-launch's environment")
            value = env[name]
        pairs[name] = value
    for name in sorted(env):
        if name.startswith(DEFAULT_FORWARD_PREFIXES) and name not in pairs:
            pairs[name] = env[name]
    return list(pairs.items())


def job_hosts(args: argparse.Namespace) -> list[tuple[str, int | None]] | None:
    """The hosts of -H/--hostfile with their slot counts; None for a job on this host."""
    if args.hostfile:
        return read_hostfile(args.hostfile)
    if args.hosts:
        return parse_hosts(args.hosts)
    return None


def build_command(args: argparse.Namespace, flavour: str, environ=None) -> list[str]:
    """The mpiexec command line for parsed `args` and an MPI `flavour`."""
    env = os.environ if environ is None else environ
    per_host = args.nproc_per_node or max(1, visible_gpu_count(env))
    hosts = job_hosts(args)
    cmd = [args.mpiexec]
    if hosts is None:
        counts = [per_host]
        total = per_host
        cmd += ["-n", str(total)]
        if flavour == OPENMPI:
            cmd += ["--oversubscribe"]
    else:
        counts = [slots or per_host for _, slots in hosts]
        names = [name for name, _ in hosts]
        total = sum(counts)
        if flavour == HYDRA:
            cmd += ["-n", str(total)]
            if len(set(counts)) == 1:
                cmd += ["-hosts", ",".join(names), "-ppn", str(counts[0])]
            else:
                cmd += ["-hosts", ",".join(f"{h}:{c}" for h, c in zip(names, counts))]
            if all(_is_local(h) for h in names):
                cmd += ["-launcher", "fork"]
        else:
            cmd += ["-n", str(total), "--oversubscribe"]
            cmd += ["--host", ",".join(f"{h}:{c}" for h, c in zip(names, counts))]
            cmd += ["--map-by", "slot"]  # fill each host's slots in order
    if args.tag_output:
        cmd += ["-prepend-rank"] if flavour == HYDRA else ["--tag-output"]
    cmd += iface_args(flavour, args.iface, env)
    for name, value in forwarded_env(args.env, env) + torchrun_pairs(args, hosts, counts, env):
        cmd += ["-genv", name, value] if flavour == HYDRA else ["-x", f"{name}={value}"]
    cmd += shlex.split(args.mpi_args)
    cmd += [sys.executable, BOOTSTRAP, *args.program]
    return cmd


def torchrun_pairs(args, hosts, counts: list[int], environ) -> list[tuple[str, str]]:
    """What every rank needs to derive torchrun's variables (launch/env.py does it per rank):
    the ranks on each host in order, the restart limit, MASTER_ADDR and MASTER_PORT."""
    first = "127.0.0.1" if hosts is None or _is_local(hosts[0][0]) else hosts[0][0]
    pairs = [
        (NODE_SLOTS_VAR, ",".join(map(str, counts))),
        (MAX_RESTARTS_VAR, str(args.restarts)),
        ("MASTER_ADDR", args.master_addr or environ.get("MASTER_ADDR") or first),
        ("MASTER_PORT", str(args.master_port or environ.get("MASTER_PORT") or 29500)),
    ]
    if ROLLCALL_VAR in environ:  # the attempt's roll call (launch/rollcall.py)
        pairs.append((ROLLCALL_VAR, environ[ROLLCALL_VAR]))
    return pairs


def iface_args(flavour: str, iface: str | None, environ=None) -> list[str]:
    """mpiexec arguments that keep the job's traffic on network interface `iface`: the
    launcher's own connections and the ranks' (UCX, libfabric's tcp provider, Open MPI's
    TCP transports), except where the user already set the variable."""
    if not iface:
        return []
    env = os.environ if environ is None else environ
    if flavour == HYDRA:
        out = ["-iface", iface]
        for var in ("UCX_NET_DEVICES", "FI_TCP_IFACE"):
            if var not in env:
                out += ["-genv", var, iface]
        return out
    out = ["--mca", "btl_tcp_if_include", iface, "--mca", "oob_tcp_if_include", iface]
    return out + ([] if "UCX_NET_DEVICES" in env else ["-x", f"UCX_NET_DEVICES={iface}"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environ = dict(os.environ)
    try:
        flavour = args.flavour or detect_flavour(args.mpiexec)
        cmd = build_command(args, flavour, {**environ, RESTART_VAR: "0"})
        remote = [host for host, _ in job_hosts(args) or [] if not _is_local(host)]
    except (RuntimeError, ValueError, OSError) as err:
        print(f"ember-launch: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    try:
        if remote and not args.no_preflight and not _preflight_passes(args, flavour, remote):
            return 2
        here = reachable_address(remote, args.iface) if remote else "127.0.0.1"
        attempt = lambda env: _attempt(args, flavour, env)  # noqa: E731
        return supervise(attempt, environ, args.restarts, rollcall=here)
    except OSError as err:  # mpiexec vanished or is not executable
        print(f"ember-launch: error: {err}", file=sys.stderr)
        return 2
    except _TooFewHosts as err:
        print(f"ember-launch: error: {err}", file=sys.stderr)
        return 1


class _TooFewHosts(RuntimeError):
    pass


def _attempt(args: argparse.Namespace, flavour: str, env: dict) -> list[str]:
    """The command line of one attempt; a restart with --min-hosts first drops the hosts
    that no longer answer (the world shrinks with them)."""
    if args.min_hosts is not None and env.get(RESTART_VAR, "0") != "0":
        hosts = job_hosts(args)
        names = [h for h, _ in hosts if not _is_local(h)]
        replies = preflight.probe_hosts(
            names, flavour, args.mpiexec, _preflight_args(args, flavour)
        )
        expected = preflight.local_versions()
        lost = {h: preflight.problems(h, replies.get(h, "no reply"), expected) for h in names}
        lost = {h: why for h, why in lost.items() if why is not None}
        kept = [(h, slots) for h, slots in hosts if h not in lost]
        for why in lost.values():
            print(why, file=sys.stderr)
        if len(kept) < args.min_hosts:
            raise _TooFewHosts(
                f"only {len(kept)} of {len(hosts)} hosts answer, fewer than --min-hosts "
                f"{args.min_hosts}; not restarting"
            )
        if lost:
            print(
                f"ember-launch: restarting without {', '.join(lost)} on "
                f"{', '.join(h for h, _ in kept)}",
                file=sys.stderr,
                flush=True,
            )
        args.hosts = ",".join(h if slots is None else f"{h}:{slots}" for h, slots in kept)
        args.hostfile = None
    return build_command(args, flavour, env)


def _preflight_args(args: argparse.Namespace, flavour: str) -> str:
    return shlex.join([*iface_args(flavour, args.iface), *shlex.split(args.mpi_args)])


def _preflight_passes(args: argparse.Namespace, flavour: str, remote: list[str]) -> bool:
    failures = preflight.check_hosts(remote, flavour, args.mpiexec, _preflight_args(args, flavour))
    for line in failures:
        print(line, file=sys.stderr)
    if failures:
        print(
            f"ember-launch: error: pre-flight failed on {len(failures)} of "
            f"{len(set(remote))} remote host(s); the job was not started "
            "(--no-preflight skips the check)",
            file=sys.stderr,
        )
    return not failures
