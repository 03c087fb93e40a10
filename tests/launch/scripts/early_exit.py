"""`early_exit.py HOW`: both ranks run 11 all-reduces; then rank 1 leaves (HOW: "exit" =
sys.exit(0), "end" = the script's end, "os" = os._exit(0), "destroy" =
destroy_process_group() then the end, "late" = leaves after rank 0's last collective)
while rank 0, after a pause, enters collective #12 (in "late": does no more collectives)."""

import os
import sys
import time

import ember
import ember.distributed as dist

how = sys.argv[1]
dist.init_process_group("mpi", timeout=120)
t = ember.ones(3)
for _ in range(11):
    dist.all_reduce(t)
if dist.get_rank() == 1:
    print(f"rank 1 leaves at {time.time():.3f}", flush=True)
    if how == "os":
        os._exit(0)
    if how == "exit":
        sys.exit(0)
    if how == "destroy":
        dist.destroy_process_group()
else:
    time.sleep(0.5)
    if how != "late":
        dist.all_reduce(t)
    print("rank 0 finished", flush=True)
