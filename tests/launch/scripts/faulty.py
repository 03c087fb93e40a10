"""A job of steps that each all-reduce; `faulty.py MODE RANK STEP` makes rank RANK fail at step
STEP: MODE "raise" raises (faults.install aborts the job), "kill" SIGKILLs itself while the
other ranks wait in the all-reduce, "thread" raises in a background thread, "term" sends itself SIGTERM, "none" never fails."""

import os
import signal
import sys
import threading
import time

import numpy as np
from mpi4py import MPI

from ember.distributed import faults

mode, bad_rank, bad_step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
comm = MPI.COMM_WORLD
faults.install(comm)
faults.install(comm)  # idempotent


def fail():
    raise ValueError(f"boom at step {bad_step}")


for step in range(50):
    if comm.Get_rank() == bad_rank and step == bad_step:
        if mode == "raise":
            fail()
        elif mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "thread":
            threading.Thread(target=fail, name="loader").start()
            time.sleep(60)
        elif mode == "term":
            os.kill(os.getpid(), signal.SIGTERM)
    buf = np.full(4, float(step))
    comm.Allreduce(MPI.IN_PLACE, buf)
    time.sleep(0.01)
print("finished without a fault", flush=True)
