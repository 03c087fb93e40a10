"""Forward + backward of a 2-layer LSTM (input 256, hidden 256, sequence 64, batch 32)
in ember and PyTorch (CPU), each library in its own process, alternating over a few
rounds, at 1 thread and at all cores; prints median step times and ember / PyTorch.

    python scripts/bench_lstm.py [--rounds 3] [--steps 10] [--threads 1,N] [--quiet]

The model is written once against a torch-like module (``lib``): the same code builds
both. A child process runs one library at one thread count and prints its step times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SEQ, BATCH, INPUT, HIDDEN, LAYERS = 64, 32, 256, 256, 2


def make_step(lib):
    lib.manual_seed(0)
    lstm = lib.nn.LSTM(INPUT, HIDDEN, num_layers=LAYERS)
    x = lib.randn(SEQ, BATCH, INPUT)

    def step():
        lstm.zero_grad(set_to_none=True)
        out, (h, c) = lstm(x)
        loss = (out * out).mean() + h.sum() + c.sum()
        loss.backward()

    return step


def child(lib_name: str, threads: int, steps: int) -> None:
    lib = __import__(lib_name)  # after the parent set OMP_NUM_THREADS & co. in our environment
    lib.set_num_threads(threads)
    step = make_step(lib)
    for _ in range(2):  # warm-up: first-call allocations, thread pools
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps(times))


def run_child(lib_name: str, threads: int, steps: int) -> list[float]:
    n = str(threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)
    cmd = [sys.executable, __file__, "--child", lib_name, "--threads", n, "--steps", str(steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{lib_name} child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--child", choices=["ember", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, int(args.threads), args.steps)
        return
    print(
        f"LSTM layers={LAYERS} input={INPUT} hidden={HIDDEN} seq={SEQ} batch={BATCH}, "
        f"forward + backward, {args.rounds} rounds x {args.steps} steps per library"
    )
    from tqdm import tqdm

    counts = sorted({int(t) for t in args.threads.split(",")})
    total = len(counts) * args.rounds * 2
    bar = tqdm(total=total, desc="bench_lstm", file=sys.stderr, disable=args.quiet)
    for threads in counts:
        times = {"ember": [], "torch": []}
        for r in range(args.rounds):
            for lib_name in ("ember", "torch") if r % 2 == 0 else ("torch", "ember"):
                bar.set_postfix_str(f"round {r + 1} {lib_name} {threads}t")
                times[lib_name] += run_child(lib_name, threads, args.steps)
                bar.update()
        ember_ms = statistics.median(times["ember"]) * 1e3
        torch_ms = statistics.median(times["torch"]) * 1e3
        tqdm.write(
            f"threads={threads:<3} ember {ember_ms:8.1f} ms   torch {torch_ms:8.1f} ms   "
            f"ember/torch {ember_ms / torch_ms:5.2f}x"
        )
    bar.close()


if __name__ == "__main__":
    main()
