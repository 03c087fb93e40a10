"""One training step (forward, cross-entropy, backward, Adam) of three models in ember
and PyTorch (CPU), alternating, in one run; prints median step times, peak memory and
the ratios ember / PyTorch.

    python scripts/bench_train.py [--steps 20] [--threads N] [--models mlp,cnn,gpt]

The models are written once against a torch-like module (``lib``), which is ember's
API promise: the same code builds both.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time


def build(lib, kind):
    nn, F = lib.nn, lib.nn.functional
    if kind == "mlp":
        model = nn.Sequential(
            nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
        )
        x, y = lib.randn(256, 784), lib.randint(0, 10, (256,))
        return model, x, y, F.cross_entropy
    if kind == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(9216, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
        x, y = lib.randn(64, 1, 28, 28), lib.randint(0, 10, (64,))
        return model, x, y, F.cross_entropy
    if kind == "gpt":
        vocab, d, n_head, n_layer, T, B = 256, 256, 4, 4, 128, 16

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
                self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

            def forward(self, x):
                b, t, c = x.shape
                q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
                q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + self.proj(a.transpose(1, 2).reshape(b, t, c))
                return x + self.mlp(self.ln2(x))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(T, d)
                self.blocks = nn.Sequential(*[Block() for _ in range(n_layer)])
                self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

            def forward(self, idx):
                x = self.tok(idx) + self.pos(lib.arange(idx.shape[1]))
                return self.head(self.ln(self.blocks(x))).view(-1, vocab)

        x = lib.randint(0, vocab, (B, T))
        y = lib.randint(0, vocab, (B * T,))
        return GPT(), x, y, F.cross_entropy
    raise ValueError(f"unknown model {kind!r}")


def make_step(lib, kind):
    lib.manual_seed(0)
    model, x, y, loss_fn = build(lib, kind)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child_peak_mb(lib_name: str, kind: str, steps: int = 3) -> None:
    """In a fresh process: build the model and data, then report how far the resident
    set rose above that during training steps (gradients, optimizer state, activations).
    The same measure for both libraries; Linux resets the peak via clear_refs."""
    lib = __import__(lib_name)
    if lib_name == "torch":
        lib.set_num_threads(1)
    step = make_step(lib, kind)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    base = _status_kb("VmRSS")
    for _ in range(steps):
        step()
    print((_status_kb("VmHWM") - base) / 1024)


def peak_mb(lib_name: str, kind: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, __file__, "--child", lib_name, kind],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--models", default="mlp,cnn,gpt")
    parser.add_argument("--child", nargs=2, metavar=("LIB", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_peak_mb(*args.child)
        return

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS: same threads for both
    import torch

    import ember

    torch.set_num_threads(args.threads)
    print(
        f"# python {sys.version.split()[0]}, torch {torch.__version__}, ember {ember.__version__}, "
        f"{args.threads} threads, {args.steps} steps, median step time"
    )
    print(
        f"{'model':6} {'ember ms':>10} {'torch ms':>10} {'ratio':>7} "
        f"{'ember MB':>9} {'torch MB':>9} {'ratio':>6}"
    )
    for kind in args.models.split(","):
        steps = {"ember": make_step(ember, kind), "torch": make_step(torch, kind)}
        times = {name: [] for name in steps}
        for _ in range(args.warmup):
            for s in steps.values():
                s()
        for _ in range(args.steps):
            for name, s in steps.items():  # alternate so drift hits both alike
                t0 = time.perf_counter()
                s()
                times[name].append(time.perf_counter() - t0)
        e, t = statistics.median(times["ember"]), statistics.median(times["torch"])
        em, tm = peak_mb("ember", kind), peak_mb("torch", kind)
        print(
            f"{kind:6} {e * 1e3:10.2f} {t * 1e3:10.2f} {e / t:7.2f} "
            f"{em:9.1f} {tm:9.1f} {em / tm:6.2f}"
        )
    print("# memory: peak resident set above the built model during 3 steps, own process each")


if __name__ == "__main__":
    main()
