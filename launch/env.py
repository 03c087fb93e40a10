"""Rank, local rank and world size from whichever launcher started this process.

Standard library only: the launcher's per-rank bootstrap loads this file before anything
else (in particular before CuPy picks a GPU).

Sources, in order of precedence (the first that gives both rank and world size wins):

- Open MPI: OMPI_COMM_WORLD_RANK / _LOCAL_RANK / _SIZE / _LOCAL_SIZE
- MVAPICH2: MV2_COMM_WORLD_RANK / _LOCAL_RANK / _SIZE / _LOCAL_SIZE
- PMIx (srun --mpi=pmix): PMIX_RANK, PMIX_SIZE or SLURM_NTASKS
- Hydra (MPICH, Intel MPI), srun --mpi=pmi2: PMI_RANK, MPI_LOCALRANKID, PMI_SIZE, MPI_LOCALNRANKS
- Slurm srun: SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS, SLURM_TASKS_PER_NODE + SLURM_NODEID
- torchrun: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE

Where a launcher (and Slurm) does not say where a process sits on its host, the process is
assumed to share the host with the whole job (local rank = rank, local world size = world size);
where it gives the local rank but not the local world size, the local rank is kept and the
local world size taken as the world size (an upper bound).

Everything comes from the environment: no launcher needs to pass a flag (``--local-rank``)
on the script's command line.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple
from collections.abc import Mapping

# a named tuple, not a dataclass: dataclasses (with inspect) would double the start-up
# cost of `import ember` and of ember-launch, which both read this module first
_LaunchFields = namedtuple(
    "LaunchInfo", ["rank", "local_rank", "world_size", "local_world_size", "launcher"]
)


class LaunchInfo(_LaunchFields):
    """Where this process sits in the job, and which launcher said so: ``rank``,
    ``local_rank``, ``world_size``, ``local_world_size`` (ints) and ``launcher``
    ("openmpi", "mvapich", "pmix", "hydra", "slurm", "torchrun" or "none")."""

    __slots__ = ()

    @property
    def under_mpi(self) -> bool:
        return self.launcher in _MPI_LAUNCHERS


# (launcher, rank, local rank, world size, local world size); None: not provided.
_SOURCES = (
    (
        "openmpi",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
    ),
    (
        "mvapich",
        "MV2_COMM_WORLD_RANK",
        "MV2_COMM_WORLD_LOCAL_RANK",
        "MV2_COMM_WORLD_SIZE",
        "MV2_COMM_WORLD_LOCAL_SIZE",
    ),
    ("pmix", "PMIX_RANK", None, "PMIX_SIZE", None),
    ("hydra", "PMI_RANK", "MPI_LOCALRANKID", "PMI_SIZE", "MPI_LOCALNRANKS"),
    ("slurm", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS", None),
    ("torchrun", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"),
)
_MPI_LAUNCHERS = frozenset({"openmpi", "mvapich", "pmix", "hydra"})


def _int(environ: Mapping[str, str], name: str | None) -> int | None:
    if name is None or name not in environ:
        return None
    try:
        return int(environ[name])
    except ValueError as err:
        raise RuntimeError(
            f"environment variable {name}={environ[name]!r} is not an integer"
        ) from err


def _slurm_local_size(environ: Mapping[str, str]) -> int | None:
    """Tasks on this node from SLURM_TASKS_PER_NODE ("2(x3),1") and SLURM_NODEID."""
    spec, node = environ.get("SLURM_TASKS_PER_NODE"), _int(environ, "SLURM_NODEID")
    if spec is None or node is None:
        return None
    counts: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if m is None:
            return None
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts[node] if node < len(counts) else None


def detect(environ: Mapping[str, str] | None = None) -> LaunchInfo:
    r"""Read rank, local rank, world size and local world size from the environment.

    Args:
        environ: the environment to read (default ``os.environ``).

    Returns:
        a :class:`LaunchInfo`; ``LaunchInfo(0, 0, 1, 1, "none")`` for a lone process.

    Example::

        >>> info = detect()
        >>> print(f"rank {info.rank} of {info.world_size} ({info.launcher})")
    """
    env = os.environ if environ is None else environ
    for launcher, rank_var, local_var, size_var, local_size_var in _SOURCES:
        rank = _int(env, rank_var)
        size = _int(env, size_var)
        if launcher == "pmix" and rank is not None and size is None:
            size = _int(env, "SLURM_NTASKS")  # srun --mpi=pmix sets no PMIX_SIZE
        if rank is None or size is None:
            continue
        local_rank = _int(env, local_var)
        local_size = _int(env, local_size_var)
        if local_rank is None or local_size is None:  # srun's view of this node, if any
            local_rank = _int(env, "SLURM_LOCALID") if local_rank is None else local_rank
            local_size = _slurm_local_size(env) if local_size is None else local_size
        if local_rank is None:
            local_rank, local_size = rank, size
        elif local_size is None:  # a known place on an unknown host: keep it
            local_size = size
        if not (0 <= rank < size and 0 <= local_rank < local_size <= size):
            raise RuntimeError(
                f"inconsistent {launcher} environment: rank {rank}, local rank {local_rank}, "
                f"world size {size}, local world size {local_size}"
            )
        return LaunchInfo(rank, local_rank, size, local_size, launcher)
    return LaunchInfo(0, 0, 1, 1, "none")


def rank() -> int:
    """This process's rank in the job (0 for a lone process)."""
    return detect().rank


def local_rank() -> int:
    """This process's rank among the job's processes on this host."""
    return detect().local_rank


def world_size() -> int:
    """The number of processes in the job (1 for a lone process)."""
    return detect().world_size


def local_world_size() -> int:
    """The number of the job's processes on this host."""
    return detect().local_world_size


def under_mpi() -> bool:
    """True when an MPI launcher (mpiexec/mpirun of Open MPI, MPICH/Hydra, MVAPICH, or srun
    with PMIx) started this process, so MPI must be initialised; False for a lone process
    or a torchrun/Slurm job without an MPI process manager."""
    return detect().under_mpi


NODE_SLOTS_VAR = "EMBER_NODE_SLOTS"  # ember-launch: ranks on each host, in host order
MAX_RESTARTS_VAR = "EMBER_MAX_RESTARTS"


def group_rank(rank: int, node_slots: str | None) -> int | None:
    """The index of the host that holds `rank` when ranks fill hosts in order, given
    ember-launch's per-host rank counts ("2,2"); None when they are not known."""
    if not node_slots:
        return None
    end = 0
    for host, slots in enumerate(node_slots.split(",")):
        end += int(slots)
        if rank < end:
            return host
    return None


def torchrun_environment(info: LaunchInfo, environ: Mapping[str, str]) -> dict[str, str]:
    r"""The variables torchrun gives each worker, for a process at `info`'s place.

    ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE`` always; ``GROUP_RANK`` and
    ``GROUP_WORLD_SIZE`` where the hosts' rank counts are known (ember-launch passes them);
    ``TORCHELASTIC_RESTART_COUNT`` (= ``EMBER_RESTART_COUNT``) and
    ``TORCHELASTIC_MAX_RESTARTS`` under ember-launch. ``MASTER_ADDR``/``MASTER_PORT`` come from
    ember-launch's command line, not from here. A lone process gets nothing, so scripts that
    test ``"RANK" in os.environ`` see a single-process run.
    """
    if info.launcher == "none":
        return {}
    env = {
        "RANK": str(info.rank),
        "LOCAL_RANK": str(info.local_rank),
        "WORLD_SIZE": str(info.world_size),
        "LOCAL_WORLD_SIZE": str(info.local_world_size),
    }
    slots = environ.get(NODE_SLOTS_VAR)
    host = group_rank(info.rank, slots)
    if host is not None:
        env["GROUP_RANK"] = env["ROLE_RANK"] = str(host)
        env["GROUP_WORLD_SIZE"] = str(len(slots.split(",")))
    if "EMBER_RESTART_COUNT" in environ:
        env["TORCHELASTIC_RESTART_COUNT"] = environ["EMBER_RESTART_COUNT"]
        env["TORCHELASTIC_MAX_RESTARTS"] = environ.get(MAX_RESTARTS_VAR, "0")
    return env


def export_torchrun_environment(environ=None) -> dict[str, str]:
    """Set torchrun's variables in `environ` (default ``os.environ``) from the MPI
    launcher's own, keeping any already set; returns what was added."""
    env = os.environ if environ is None else environ
    info = detect(env)
    if info.launcher == "torchrun":
        return {}
    added = {k: v for k, v in torchrun_environment(info, env).items() if k not in env}
    env.update(added)
    return added
