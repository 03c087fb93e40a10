"""ember's row-chunked CPU kernels at GPT-like sizes, forward + backward, on one thread and
on more (alternating, best of several rounds), to see what the thread pool gains.

    python scripts/bench_cpu_kernels.py [--threads N] [--rounds R]

Run it on an otherwise idle machine: with other processes on the cores, the times with
more threads measure the neighbours.
"""

from __future__ import annotations

import argparse
import time

import ember
import ember.nn.functional as F


def _cases():
    ember.manual_seed(0)
    x = ember.randn(2048, 1024, requires_grad=True)
    gx = ember.randn(2048, 1024)
    rows = ember.randn(16, 128, 256, requires_grad=True)
    g_rows = ember.randn(16, 128, 256)
    w, b = ember.ones(256, requires_grad=True), ember.zeros(256, requires_grad=True)
    q, k, v = (ember.randn(16, 4, 128, 64, requires_grad=True) for _ in range(3))
    g_q = ember.randn(16, 4, 128, 64)
    scores = ember.randn(16, 4, 128, 128, requires_grad=True)
    g_scores = ember.randn(16, 4, 128, 128)
    mask = ember.rand(128, 128) > 0.2
    logits = ember.randn(2048, 256, requires_grad=True)
    target = ember.randint(0, 256, (2048,))
    return {
        "gelu exact 2048x1024": lambda: F.gelu(x).backward(gx),
        "gelu tanh 2048x1024": lambda: F.gelu(x, approximate="tanh").backward(gx),
        "silu 2048x1024": lambda: F.silu(x).backward(gx),
        "dropout 2048x1024": lambda: F.dropout(x, 0.1).backward(gx),
        "log_softmax 2048x1024": lambda: F.log_softmax(x, -1).backward(gx),
        "layer_norm 2048x256": lambda: F.layer_norm(rows, (256,), w, b).backward(g_rows),
        "rms_norm 2048x256": lambda: F.rms_norm(rows, (256,), w).backward(g_rows),
        "softmax 16x4x128x128": lambda: F.softmax(scores, -1).backward(g_scores),
        "sdpa causal 16x4x128x64": lambda: F.scaled_dot_product_attention(
            q, k, v, is_causal=True
        ).backward(g_q),
        "sdpa bool mask 16x4x128x64": lambda: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask
        ).backward(g_q),
        "cross_entropy 2048x256": lambda: F.cross_entropy(logits, target).backward(),
    }


def _best_ms(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=ember.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    counts = (1, max(args.threads, 1))
    print(f"{'kernel':28s} {'1 thread':>10s} {f'{counts[1]} threads':>11s}  speed-up")
    for name, fn in _cases().items():
        best = [float("inf")] * 2
        for _ in range(args.rounds):
            for i, count in enumerate(counts):
                ember.set_num_threads(count)
                best[i] = min(best[i], _best_ms(fn, args.reps))
        print(f"{name:28s} {best[0]:8.2f}ms {best[1]:9.2f}ms  x{best[0] / best[1]:.2f}")


if __name__ == "__main__":
    main()
