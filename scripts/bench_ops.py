"""Op benchmark: ember vs PyTorch CPU (and raw NumPy for large ops), forward + backward,
each library in a process of its own.

Per-op overhead: a chain of 100 small ops (matmul, mul, tanh, add) on 8x8 tensors, then
``sum().backward()``, and the same chain under no_grad. Large ops: add/mul/exp on 4M
float32 elements and a 1024x1024 matmul, against raw NumPy doing the same arithmetic.

Each (library, threads) run is a child process that times every workload (median of its
repetitions) and prints JSON; the parent alternates the libraries' processes over several
rounds, at 1 thread and at all cores, and reports the median over rounds. Two libraries in
one process would spin their thread pools against each other.

    python scripts/bench_ops.py [--rounds 3] [--reps 30] [--threads 1,N] [--quiet]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench_train import THREAD_VARS, cores, load_with_threads, run_json, thread_list

LIBS = ("ember", "torch", "numpy")
SMALL = ("fwd+bwd", "fwd no_grad")
LARGE = ("add", "mul", "exp", "matmul")
CHAIN_BLOCKS = 25  # 4 ops each


def _chain(mod, x, w):
    y = x
    for _ in range(CHAIN_BLOCKS):
        y = mod.tanh((y @ w) * 0.5) + x
    return y


def small_chain(mod, grad: bool):
    x = mod.randn(8, 8, requires_grad=grad)
    w = mod.randn(8, 8, requires_grad=grad)
    if not grad:
        return lambda: _chain(mod, x, w)

    def run():
        _chain(mod, x, w).sum().backward()
        x.grad = w.grad = None

    return run


def large(mod, op: str):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (1024, 1024) if op == "matmul" else (2048, 2048)
    a_np, b_np, g_np = (rng.standard_normal(shape, dtype=np.float32) for _ in range(3))
    if mod is np:  # the same arithmetic, forward and the gradients, by hand
        return {
            "add": lambda: (a_np + b_np, g_np.copy(), g_np.copy()),
            "mul": lambda: (a_np * b_np, g_np * b_np, g_np * a_np),
            "exp": lambda: (lambda out: (out, g_np * out))(np.exp(a_np)),
            "matmul": lambda: (a_np @ b_np, g_np @ b_np.T, a_np.T @ g_np),
        }[op]
    a = mod.tensor(a_np, requires_grad=True)
    b = mod.tensor(b_np, requires_grad=True)
    g = mod.tensor(g_np)
    forward = {
        "add": lambda: a + b,
        "mul": lambda: a * b,
        "exp": lambda: a.exp(),
        "matmul": lambda: a @ b,
    }[op]

    def run():
        forward().backward(g)
        a.grad = b.grad = None

    return run


def median_seconds(fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child(lib_name: str, threads: int, reps: int) -> dict:
    """Every workload of one library at one thread count, in this (fresh) process."""
    if lib_name == "numpy":
        for var in THREAD_VARS:
            os.environ[var] = str(threads)
        import numpy as mod
    else:
        mod = load_with_threads(lib_name, threads)
    result = {}
    if mod.__name__ != "numpy":
        for label, grad in zip(SMALL, (True, False)):
            # per op: 4 * CHAIN_BLOCKS ops a call, run 5x as often as the large ops
            result[label] = median_seconds(small_chain(mod, grad), reps * 5) / (4 * CHAIN_BLOCKS)
    for op in LARGE:
        result[op] = median_seconds(large(mod, op), reps)
    return result


def run_child(lib_name: str, threads: int, reps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", lib_name]
    cmd += ["--threads", str(threads), "--reps", str(reps)]
    return run_json(cmd, dict(os.environ, **dict.fromkeys(THREAD_VARS, str(threads))))


def measure(args, threads: list[int]) -> dict:
    from tqdm import tqdm

    bar = tqdm(
        total=args.rounds * len(threads) * len(LIBS),
        desc="bench_ops",
        file=sys.stderr,
        disable=args.quiet,
    )
    samples = {(lib, n): [] for lib in LIBS for n in threads}
    for r in range(args.rounds):
        for n in threads:
            for lib in LIBS if r % 2 == 0 else LIBS[::-1]:  # who goes first alternates
                bar.set_postfix_str(f"round {r + 1} {lib} {n}t")
                samples[lib, n].append(run_child(lib, n, args.reps))
                bar.update()
    bar.close()
    return {
        key: {w: statistics.median(s[w] for s in runs) for w in runs[0]}
        for key, runs in samples.items()
    }


def print_tables(args, threads: list[int], t: dict) -> None:
    from importlib.metadata import version

    print(
        f"# {cores()} cores; numpy {version('numpy')}, torch {version('torch')}, ember "
        f"{version('ember')}; one process per (library, threads), median over {args.rounds} "
        "alternating rounds"
    )
    for n in threads:
        e, p, npy = t["ember", n], t["torch", n], t["numpy", n]
        print(f"\nthreads={n}: per-op overhead, 8x8 float32, chain of 100 ops (median per op)")
        for label in SMALL:
            print(
                f"  {label:12s} ember {e[label] * 1e6:7.2f} us/op   torch "
                f"{p[label] * 1e6:7.2f} us/op   ember/torch {e[label] / p[label]:5.2f}x"
            )
        print(f"threads={n}: large ops, float32, forward + backward (median ms)")
        for op in LARGE:
            print(
                f"  {op:7s} ember {e[op] * 1e3:8.2f}  torch {p[op] * 1e3:8.2f}  numpy "
                f"{npy[op] * 1e3:8.2f}   ember/torch {e[op] / p[op]:5.2f}x   "
                f"ember/numpy {e[op] / npy[op]:5.2f}x"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--reps", type=int, default=30, help="timed calls per large op")
    parser.add_argument("--threads", default=f"1,{cores()}", help="comma-separated counts")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--child", choices=LIBS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = thread_list(args.threads)
    if args.reps < 1 or args.rounds < 1:
        parser.error("--reps and --rounds must be at least 1")
    if args.child:
        if len(threads) != 1:
            parser.error("--child takes one --threads count")
        print(json.dumps(child(args.child, threads[0], args.reps)))
        return
    print_tables(args, threads, measure(args, threads))


if __name__ == "__main__":
    main()
