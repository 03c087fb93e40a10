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

and execs ``python script args...`` in the same process (same pid, same MPI connection),
so the job sees a plain Python process exactly as under ``mpirun python script``.
"""

from __future__ import annotations

import importlib.util
import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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
    os.execv(sys.executable, [sys.executable, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
