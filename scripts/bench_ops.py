"""Op benchmark: ember vs PyTorch CPU (and raw NumPy for large ops), forward + backward.

Per-op overhead: a chain of ~100 small ops (matmul, mul, tanh, add) on 8x8 tensors,
then ``sum().backward()``. Large ops: add/mul/exp on 4M float32 elements and a
1024x1024 matmul. Each repetition runs every contender once, alternating, and the
median is reported.

Usage::

    python scripts/bench_ops.py [--reps 30] [--threads N] [--quiet]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

import ember


def _chain(mod, x, w, n_blocks):
    y = x
    for _ in range(n_blocks):  # 4 ops per block
        y = mod.tanh((y @ w) * 0.5) + x
    return y


def small_chain(mod, n_blocks=25):
    x = mod.randn(8, 8, requires_grad=True)
    w = mod.randn(8, 8, requires_grad=True)

    def run():
        y = _chain(mod, x, w, n_blocks)
        y.sum().backward()
        x.grad = w.grad = None

    return run


def small_chain_no_grad(mod, n_blocks=25):
    x = mod.randn(8, 8)
    w = mod.randn(8, 8)

    def run():
        _chain(mod, x, w, n_blocks)

    return run


def large(mod, op, n):
    rng = np.random.default_rng(0)
    shape = (n, n) if op == "matmul" else (2048, 2048)
    a_np = rng.standard_normal(shape, dtype=np.float32)
    b_np = rng.standard_normal(shape, dtype=np.float32)
    g_np = rng.standard_normal(shape, dtype=np.float32)
    if mod is np:
        fns = {
            "add": lambda: (a_np + b_np, g_np.copy(), g_np.copy()),
            "mul": lambda: (a_np * b_np, g_np * b_np, g_np * a_np),
            "exp": lambda: (lambda out: (out, g_np * out))(np.exp(a_np)),
            "matmul": lambda: (a_np @ b_np, g_np @ b_np.T, a_np.T @ g_np),
        }
        return fns[op]
    a = mod.tensor(a_np, requires_grad=True)
    b = mod.tensor(b_np, requires_grad=True)
    g = mod.tensor(g_np)
    fwd = {
        "add": lambda: a + b,
        "mul": lambda: a * b,
        "exp": lambda: a.exp(),
        "matmul": lambda: a @ b,
    }[op]

    def run():
        fwd().backward(g)
        a.grad = b.grad = None

    return run


def bench(contenders, reps, warmup=3):
    """Median seconds per call of each contender, run alternately."""
    times = {name: [] for name in contenders}
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    for _ in range(reps):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="set_num_threads of both")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        ember.set_num_threads(args.threads)
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
        f"torch threads={torch.get_num_threads()}, ember threads={ember.get_num_threads()}, "
        f"cpus={os.cpu_count()}"
    )
    small = (("fwd+bwd", small_chain), ("fwd no_grad", small_chain_no_grad))
    large_ops = (("add", 0), ("mul", 0), ("exp", 0), ("matmul", 1024))
    total = len(small) + len(large_ops)
    bar = tqdm(total=total, desc="bench_ops", file=sys.stderr, disable=args.quiet)
    tqdm.write("\nper-op overhead, 8x8 float32, chain of 100 ops (median per op)")
    for label, make in small:
        bar.set_postfix_str(label)
        t = bench({"ember": make(ember), "torch": make(torch)}, args.reps * 5)
        bar.update()
        tqdm.write(
            f"  {label:12s} ember {t['ember'] * 1e4:7.2f} us/op   torch {t['torch'] * 1e4:7.2f} "
            f"us/op   ember/torch {t['ember'] / t['torch']:5.2f}x"
        )
    tqdm.write("\nlarge ops, float32, forward + backward (median ms)")
    for op, n in large_ops:
        bar.set_postfix_str(op)
        t = bench({m.__name__: large(m, op, n) for m in (ember, torch, np)}, args.reps)
        bar.update()
        tqdm.write(
            f"  {op:7s} ember {t['ember'] * 1e3:8.2f}  torch {t['torch'] * 1e3:8.2f}  numpy "
            f"{t['numpy'] * 1e3:8.2f}   ember/torch {t['ember'] / t['torch']:5.2f}x   "
            f"ember/numpy {t['ember'] / t['numpy']:5.2f}x"
        )
    bar.close()


if __name__ == "__main__":
    main()
