"""A script written for torchrun: it decides from RANK/WORLD_SIZE whether it is distributed,
as real DDP scripts do, and reports what it saw."""

import json
import os
import sys

import ember
import ember.distributed as dist

ddp = int(os.environ.get("RANK", -1)) != -1
if ddp:
    dist.init_process_group(backend="gloo")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    assert rank == dist.get_rank() and world == dist.get_world_size()
    t = ember.tensor([float(rank)])
    dist.all_reduce(t)
    total = t.item()
    dist.destroy_process_group()
else:
    rank, world, total = 0, 1, 0.0
names = [
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RESTART_COUNT",
]
seen = {k: os.environ.get(k) for k in names}
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
    json.dump({"ddp": ddp, "world": world, "total": total, "env": seen}, f)
