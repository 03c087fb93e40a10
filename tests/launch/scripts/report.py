"""Prints one JSON line per rank: its place in the job as the launcher's environment and (under
MPI) mpi4py see it, and the thread and GPU settings it was given."""

import json
import os
import sys

from ember.launch import env

info = env.detect()
line = {
    "rank": info.rank,
    "size": info.world_size,
    "local_rank": info.local_rank,
    "local_size": info.local_world_size,
    "launcher": info.launcher,
    "argv": sys.argv[1:],
    **{
        k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
    },
}
if env.under_mpi():
    from mpi4py import MPI

    line["mpi_rank"] = MPI.COMM_WORLD.Get_rank()
    line["mpi_size"] = MPI.COMM_WORLD.Get_size()
    line["host"] = os.environ.get("PMI_HOSTNAME")
print(json.dumps(line), flush=True)
