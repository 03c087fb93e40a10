"""Data-parallel training that checkpoints every 2 steps and resumes from the latest one:
`train_ckpt.py CKPT_DIR STEPS CRASH_AT OUT.npz [MODE]`. At step CRASH_AT (-1: never) the last
rank fails: MODE "raise" (the default) raises; "kill-first" SIGKILLs itself, on the first
attempt of an ember-launch --restarts job only (EMBER_RESTART_COUNT=0). Rank 0 writes the
final parameters to OUT.npz. Each rank's batches come from
ember's, NumPy's and Python's global RNGs, seeded per rank, so a bit-exact resume needs
every rank's RNG states restored."""

import os
import random
import signal
import sys

import numpy as np

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
import ember.optim as optim
from ember.distributed.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from ember.distributed.ddp import DistributedDataParallel

ckpt_dir, steps, crash_at, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mode = sys.argv[5] if len(sys.argv) > 5 else "raise"
restart_count = int(os.environ.get("EMBER_RESTART_COUNT", "0"))
dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
ember.manual_seed(0)  # the same initial model everywhere
model = DistributedDataParallel(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
ember.manual_seed(100 + rank)
np.random.seed(200 + rank)
random.seed(300 + rank)

start = 0
path = latest_checkpoint(ckpt_dir)
if path is not None:
    start = load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)["step"]
    print(
        f"rank {rank} resumed from {os.path.basename(path)} at step {start} "
        f"(restart {restart_count})",
        flush=True,
    )
for step in range(start, steps):
    if step == crash_at and rank == world - 1:
        if mode == "raise":
            raise RuntimeError(f"crash at step {step}")
        if mode == "kill-first" and restart_count == 0:
            os.kill(os.getpid(), signal.SIGKILL)
    noise = ember.tensor(np.random.randn(6, 4).astype(np.float32)) * random.random()
    x = ember.randn(6, 4) + noise
    loss = F.mse_loss(model(x), x.sum(1, keepdim=True))
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    if (step + 1) % 2 == 0:
        save_checkpoint(
            os.path.join(ckpt_dir, f"step{step + 1}.ckpt"),
            model=model,
            optimizer=opt,
            scheduler=sched,
            step=step + 1,
            extra={"loss": float(loss.item())},
        )
if rank == 0:
    np.savez(out, **{k: v.numpy() for k, v in model.module.state_dict().items()})
