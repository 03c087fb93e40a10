"""Data-parallel training across hosts:
`ddp_hosts.py STEPS [SECONDS_PER_STEP [CKPT_DIR [TIMEOUT]]]`.

Every step, DistributedSampler deals the 32 samples of one fixed float64 batch out to the
ranks (reshuffled each step, so the shards depend on the world size), and every rank trains
its shard with DDP (SGD with momentum; wrapped in ZeroRedundancyOptimizer when
EMBER_TEST_ZERO=1). Rank 0 also trains the same model on the whole batch in one process,
and prints one JSON line: the largest parameter difference between the two, the rank
table, each rank's shard size and optimizer states, and the results of collectives and
object collectives across the hosts. With CKPT_DIR, a checkpoint is saved after every
step, and the run resumes from the latest one (at whatever world size it now has)."""

import json
import os
import socket
import sys
import time

import numpy as np

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
import ember.optim as optim
from ember.distributed import DistributedSampler
from ember.distributed.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from ember.distributed.ddp import DistributedDataParallel
from ember.distributed.optim import ZeroRedundancyOptimizer

steps = int(sys.argv[1])
pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
ckpt_dir = sys.argv[3] if len(sys.argv) > 3 else None
dist.init_process_group("mpi", timeout=float(sys.argv[4]) if len(sys.argv) > 4 else 60)
rank, world = dist.get_rank(), dist.get_world_size()
BATCH = 32
rng = np.random.default_rng(0)
X = rng.standard_normal((BATCH, 8))
Y = np.sin(X.sum(1, keepdims=True))


def make_model():
    ember.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)).double()


model = DistributedDataParallel(make_model())
zero = os.environ.get("EMBER_TEST_ZERO") == "1"
if zero:  # each rank keeps the momentum of the parameters it owns
    opt = ZeroRedundancyOptimizer(model.parameters(), optim.SGD, lr=0.1, momentum=0.9)
else:
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
sampler = DistributedSampler(range(BATCH), shuffle=True, seed=1)
start = 0
if ckpt_dir and latest_checkpoint(ckpt_dir):
    found = latest_checkpoint(ckpt_dir)
    start = load_checkpoint(found, model=model, optimizer=opt, sampler=sampler)["step"]
shard = []
for step in range(start, steps):
    sampler.set_epoch(step)
    shard = list(sampler)
    x, y = ember.from_numpy(X[shard]), ember.from_numpy(Y[shard])
    loss = F.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if ckpt_dir:
        if zero:
            opt.consolidate_state_dict(to=0)  # the whole state, for rank 0 to write
        save_checkpoint(
            f"{ckpt_dir}/step{step + 1:04d}.ckpt",
            model=model,
            optimizer=opt if rank == 0 or not zero else None,
            sampler=sampler,
            step=step + 1,
        )
    if rank == 0:
        print(f"step {step + 1} at {time.time():.3f}", flush=True)
    time.sleep(pause)

total = ember.tensor([float(rank + 1)], dtype=ember.float64)
dist.all_reduce(total)
src = ember.tensor([7.0 if rank == world - 1 else 0.0])
dist.broadcast(src, src=world - 1)
gathered = [ember.zeros(1) for _ in range(world)]
dist.all_gather(gathered, ember.tensor([float(rank)]))
hosts = [None] * world
dist.all_gather_object(hosts, socket.gethostname())
objs = [{"from": rank}] if rank == 1 else [None]
dist.broadcast_object_list(objs, src=1)
mine = {"shard": len(shard), "states": len((opt.optim if zero else opt).state)}
shards = [None] * world
dist.all_gather_object(shards, mine)

if rank == 0:
    reference = make_model()
    ref_opt = optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        loss = F.mse_loss(reference(ember.from_numpy(X)), ember.from_numpy(Y))
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
    diff = max(
        float(np.abs(a.detach().numpy() - b.detach().numpy()).max())
        for a, b in zip(model.module.parameters(), reference.parameters())
    )
    report = {
        "diff": diff,
        "table": [[row["rank"], row["host"], row["local_rank"]] for row in dist.get_rank_table()],
        "sum": total.item(),
        "broadcast": src.item(),
        "gathered": [g.item() for g in gathered],
        "hosts": hosts,
        "object": objs[0],
        "world": world,
        "shards": [part["shard"] for part in shards],
        "optimizer_states": [part["states"] for part in shards],
    }
    print("RESULT " + json.dumps(report), flush=True)
dist.destroy_process_group()
