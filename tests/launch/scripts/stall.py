"""Rank `stall.py RANK` stops before collective #3 (sleeps); the others wait for it with a
timeout, ask the progress board who is missing and abort via faults.abort_on_stall."""

import sys
import time

import numpy as np
from mpi4py import MPI

from ember.distributed import faults
from ember.distributed.board import ProgressBoard

stalled = int(sys.argv[1])
comm = MPI.COMM_WORLD
faults.install(comm)
board = ProgressBoard(comm)
for seq in range(1, 6):
    if comm.Get_rank() == stalled and seq == 3:
        time.sleep(120)
    board.enter(seq)
    buf = np.ones(2)
    req = comm.Iallreduce(MPI.IN_PLACE, buf)
    start = time.monotonic()
    while not req.Test():
        waited = time.monotonic() - start
        if waited > 1.0:
            faults.abort_on_stall(comm, "all_reduce", seq, waited, board.laggards(seq))
        time.sleep(0.001)
board.close()
