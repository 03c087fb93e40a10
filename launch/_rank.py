"""Per-rank bootstrap of ember-launch: ``python _rank.py (script | -m module) [args...]``.

mpiexec starts this file (by path, so no package import, no NumPy, no CuPy) once per rank.
It reads the rank's place on its host from the MPI launcher's environment, then

- binds the rank to one GPU: ``CUDA_VISIBLE_DEVICES`` becomes the local rank's entry of the
  host's device list (the inherited ``CUDA_VISIBLE_DEVICES``, else every GPU the driver
  lists); ranks share GPUs round-robin when a host has fewer GPUs than ranks;
- divides the host's cores between its ranks: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
  and ``MKL_NUM_THREADS`` = max(1, cores // local world size), unless any of them is set;
- sets torchrun's variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
  ``GROUP_RANK``, ``TORCHELASTIC_RESTART_COUNT``, ...; see env.torchrun_environment), so a
  script that decides from them whether it is distributed sees the job it is in;
- makes output unbuffered (``PYTHONUNBUFFERED=1`` unless set), so nothing printed before an
  MPI abort is lost;

and runs ``python script args...`` as its child, which sees a plain Python process exactly
as under ``mpirun python script`` (the MPI connection is inherited). The bootstrap stays
as the rank's watcher: it forwards SIGTERM/SIGINT, ends with the child's status, and fails
the job when the child ends while its process group is live without having left it (an
``os._exit`` or a crash outside Python: ember.distributed tells the watcher through the
pipe ``EMBER_EXIT_FD`` when the group starts and when the rank leaves it cleanly), which
mpiexec would otherwise report as a success. Under ember-launch it also tells the
launcher's roll call (launch/rollcall.py) that the rank started on this host and, through
a reporter process outside mpiexec's reach, how it ended, so that the launcher can name a
host whose ranks vanished without an exit status.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
EXIT_FD_VAR = "EMBER_EXIT_FD"  # ember.distributed.lifecycle writes b"live\n" / b"done\n"
ROLLCALL_VAR = "EMBER_ROLLCALL"  # ember-launch's roll call (launch/rollcall.py): address:port
KILLED_GRACE_S = 0.3  # a host that is dying takes the reporter along before it speaks


def _load_env_module():
    spec = importlib.util.spec_from_file_location(
        "_ember_launch_env", os.path.join(os.path.dirname(os.path.abspath(__file__)), "env.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def visible_gpus(environ) -> list[str]:
    """This host's CUDA devices: the entries of CUDA_VISIBLE_DEVICES if set, else the GPUs
    the NVIDIA driver lists in /proc (no subprocess, no CUDA initialisation)."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        entries = [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",")]
        devices = []
        for d in entries:
            if not d or d.startswith("-"):  # CUDA stops at the first invalid entry
                break
            devices.append(d)
        return devices
    try:
        count = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        count = 0
    return [str(i) for i in range(count)]


def rank_environment(environ, local_rank: int, local_world_size: int, cores: int) -> dict:
    """The device, thread and output variables to set for a rank at `local_rank` of
    `local_world_size` on its host."""
    updates = {}
    devices = visible_gpus(environ)
    if devices:
        updates["CUDA_VISIBLE_DEVICES"] = devices[local_rank % len(devices)]
    if not any(var in environ for var in THREAD_VARS):
        threads = str(max(1, cores // local_world_size))
        updates.update(dict.fromkeys(THREAD_VARS, threads))
    if "PYTHONUNBUFFERED" not in environ:
        updates["PYTHONUNBUFFERED"] = "1"
    return updates


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def main(argv: list[str]) -> None:
    if argv[:1] == ["--report"]:
        return report(int(argv[1]), argv[2], int(argv[3]))
    if not argv:
        sys.exit("usage: _rank.py (script | -m module) [args...]")
    env = _load_env_module()
    info = env.detect()
    gpus = visible_gpus(os.environ)
    if info.local_rank == 0 and 0 < len(gpus) < info.local_world_size:
        print(
            f"ember-launch: warning: {info.local_world_size} ranks share {len(gpus)} GPU(s) on "
            "this host; pass -n/--nproc-per-node <= the GPU count for one GPU per rank",
            file=sys.stderr,
            flush=True,
        )
    os.environ.update(
        rank_environment(os.environ, info.local_rank, info.local_world_size, _cores())
    )
    os.environ.update(env.torchrun_environment(info, os.environ))
    sys.exit(watch([sys.executable, *argv], info.rank, info.world_size))


def watch(command: list[str], rank: int, world_size: int) -> int:
    """Run `command` as a child; its exit status, or 1 with a report when it ended with
    status 0 while its process group was live (it never said it left cleanly). How it
    ended also goes to ember-launch's roll call, if there is one."""
    roll = start_reporter(rank, os.environ.pop(ROLLCALL_VAR, None))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the rank
        os.close(read_end)
        if roll is not None:
            os.close(roll)
        os.set_inheritable(write_end, True)
        os.environ[EXIT_FD_VAR] = str(write_end)
        _die_with_parent()
        os.execv(command[0], command)
    os.close(write_end)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: os.kill(pid, signum))
    _, status = os.waitpid(pid, 0)
    os.set_blocking(read_end, False)
    heard = b""
    try:
        while chunk := os.read(read_end, 4096):
            heard += chunk
    except BlockingIOError:  # the rank's own children still hold the pipe open
        pass
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        _tell(roll, f"signal {rank} {signum}")
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those have no handler
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # end the way the rank ended, for mpiexec's report
        return 128 + signum
    code = os.WEXITSTATUS(status)
    if code == 0 and heard.endswith(b"live\n"):
        print(
            f"[rank {rank}/{world_size} {socket.gethostname()}] rank {rank} ended (exit code 0) "
            "while its process group was live, without leaving it (os._exit, or a crash "
            "outside Python); failing the job",
            file=sys.stderr,
            flush=True,
        )
        code = 1
    _tell(roll, f"exit {rank} {code}")
    return code


def start_reporter(rank: int, address: str | None) -> int | None:
    """Leave a reporter process behind, in a session of its own so that mpiexec's
    clean-up does not reach it, that tells ember-launch's roll call at `address`
    ("host:port") that `rank` starts on this host and then how it ended; returns the pipe
    to write that to (None without a roll call). The rank's start does not wait for the
    connection: a roll call that cannot be reached just hears nothing."""
    if not address:
        return None
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(write_end)
        os.setsid()
        os.set_inheritable(read_end, True)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # hold none of mpiexec's pipes or sockets open
            os.dup2(null, fd)
        os.closerange(3, read_end)
        os.closerange(read_end + 1, 1 << 16)
        me = os.path.abspath(__file__)
        args = [sys.executable, "-S", me, "--report", str(read_end), address, str(rank)]
        try:
            os.execv(sys.executable, args)
        finally:
            os._exit(1)
    os.close(read_end)
    return write_end


def report(pipe: int, address: str, rank: int) -> None:
    """The reporter: connect to the roll call at `address`, say that `rank` started on
    this host, forward what the bootstrap writes to `pipe`, and, when the bootstrap ends
    without saying how its rank ended (mpiexec killed it), say so."""
    host, _, port = address.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=10.0)
        sock.sendall(f"start {rank} {socket.gethostname()}\n".encode())
        final = False
        while data := os.read(pipe, 4096):
            sock.sendall(data)
            final = final or data.startswith((b"exit ", b"signal "))
        if not final:
            time.sleep(KILLED_GRACE_S)
            sock.sendall(f"killed {rank}\n".encode())
        sock.close()
    except (OSError, ValueError):  # no roll call to tell: the launcher names no host
        pass


def _tell(fd: int | None, message: str) -> None:
    if fd is not None:
        try:
            os.write(fd, f"{message}\n".encode())
            os.close(fd)
        except OSError:  # the reporter is gone
            pass


def _die_with_parent() -> None:
    """Have the kernel kill this process when the watcher dies (mpiexec kills watchers)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
