"""Train an MLP or a CNN on the 8x8 handwritten digits that ship with ember,
data-parallel under ember-launch (or mpirun), or as one plain process.

    python examples/train_digits.py --model cnn
    ember-launch -n 2 examples/train_digits.py --model cnn

Rank 0 prints progress and writes the checkpoint; the last line is the test accuracy.
Written exactly as one would in PyTorch; only the imports say ember.
"""

from __future__ import annotations

import argparse
import os

from tqdm import tqdm

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
from ember.distributed.checkpoint import save_checkpoint
from ember.nn.parallel import DistributedDataParallel as DDP
from ember.optim.lr_scheduler import OneCycleLR
from ember.utils.data import DataLoader
from ember.utils.data.datasets import Digits
from ember.utils.data.distributed import DistributedSampler


def make_model(kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(512, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Linear(256, 10),
        )
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(128, 10),
        )
    raise ValueError(f"unknown model {kind!r}; choose 'mlp' or 'cnn'")


@ember.no_grad()
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(dim=1) == y).sum().item()
        total += y.numel()
    model.train()
    return correct / total


def main():
    parser = argparse.ArgumentParser(description="Train on the embedded 8x8 digits")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch, split over ranks")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default="checkpoints/digits.ckpt")
    args = parser.parse_args()

    dist.init_process_group()  # world size 1 when not started by an MPI launcher
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(
            f"--batch-size {args.batch_size} must be divisible by the world size {world}"
        )
    ember.manual_seed(args.seed)

    train, test = Digits(train=True), Digits(train=False)  # the fixed default split
    sampler = DistributedSampler(train, shuffle=True, seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size // world, sampler=sampler)
    test_loader = DataLoader(test, batch_size=256)

    model = DDP(make_model(args.model))
    opt = ember.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=len(loader))
    if rank == 0:
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"{args.model}: {n_params:,} parameters, {world} rank(s), {len(train)} training images"
        )

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for x, y in tqdm(
            loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=rank != 0, leave=False
        ):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model.module, test_loader)  # every rank has identical weights
        if rank == 0:
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {acc:.4f}")

    if rank == 0:
        os.makedirs(os.path.dirname(args.checkpoint) or ".", exist_ok=True)
    save_checkpoint(
        args.checkpoint,
        model=model,
        optimizer=opt,
        scheduler=sched,
        sampler=sampler,
        epoch=args.epochs,
    )
    if rank == 0:
        print(f"checkpoint: {args.checkpoint}")
        print(f"test accuracy: {acc:.4f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
