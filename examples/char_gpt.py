"""A small GPT trained on the character corpus every Python install carries (the
standard library's documentation topics), data-parallel under ember-launch.

    python examples/char_gpt.py                 # one process
    ember-launch -n 2 examples/char_gpt.py      # two ranks

Written exactly as one would in PyTorch; only the imports say ember.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from tqdm import tqdm

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
from ember.nn.parallel import DistributedDataParallel as DDP
from ember.optim.lr_scheduler import LambdaLR
from ember.utils.data import DataLoader
from ember.utils.data.datasets import CharCorpus
from ember.utils.data.distributed import DistributedSampler


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model),
            nn.GELU(),
            nn.Linear(4 * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(
        self, vocab_size: int, block_size: int, d_model=128, n_head=4, n_layer=4, dropout=0.1
    ):
        super().__init__()
        self.block_size = block_size
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(d_model, n_head, dropout) for _ in range(n_layer)])
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.drop(self.tok(idx) + self.pos(ember.arange(t, device=idx.device)))
        return self.head(self.ln(self.blocks(x)))

    @ember.no_grad()
    def generate(self, idx, new_tokens: int, temperature: float = 0.8, generator=None):
        for _ in range(new_tokens):
            logits = self(idx[:, -self.block_size :])[:, -1, :] / temperature
            nxt = ember.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = ember.cat([idx, nxt], dim=1)
        return idx


@ember.no_grad()
def evaluate(model, loader, max_batches: int) -> float:
    model.eval()
    losses = []
    for i, (x, y) in enumerate(loader):
        if i == max_batches:
            break
        logits = model(x)
        losses.append(F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1)).item())
    model.train()
    return sum(losses) / max(len(losses), 1)


def main():
    parser = argparse.ArgumentParser(
        description="Train a character-level GPT on Python's doc topics"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch, split over ranks")
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=200, help="characters to sample at the end")
    args = parser.parse_args()

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(
            f"--batch-size {args.batch_size} must be divisible by the world size {world}"
        )
    ember.manual_seed(args.seed)

    train = CharCorpus(args.block_size, train=True)
    val = CharCorpus(args.block_size, train=False)
    sampler = DistributedSampler(train, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(train, batch_size=args.batch_size // world, sampler=sampler, drop_last=True)
    val_loader = DataLoader(val, batch_size=64, shuffle=False)

    model = GPT(train.vocab_size, args.block_size, d_model=args.d_model, n_layer=args.layers)
    ddp = DDP(model)
    opt = ember.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, args.steps // 20)
    sched = LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup)
            * 0.5
            * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))
        ),
    )
    counts = np.bincount(train.data, minlength=train.vocab_size)
    freq = counts[counts > 0] / counts.sum()
    unigram = float(-(freq * np.log(freq)).sum())  # the loss of predicting character frequencies
    if rank == 0:
        print(
            f"{world} rank(s), {sum(p.numel() for p in model.parameters()):,} parameters, "
            f"vocab {train.vocab_size}, unigram baseline {unigram:.3f} nats"
        )

    step, epoch = 0, 0
    progress = tqdm(total=args.steps, disable=rank != 0, desc="train")
    while step < args.steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            logits = ddp(x)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
            if step == args.steps:
                break
        epoch += 1
    progress.close()

    val_loss = evaluate(model, val_loader, max_batches=20)
    if rank == 0:
        print(f"validation loss {val_loss:.3f} nats/char (unigram baseline {unigram:.3f})")
        g = ember.Generator().manual_seed(args.seed)
        start = ember.tensor([train.encode("The ")])
        print(
            "sample:",
            repr(train.decode(model.generate(start, args.sample, generator=g)[0].tolist())),
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
