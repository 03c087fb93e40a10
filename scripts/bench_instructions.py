"""Per-op overhead as CPU instructions: ember against PyTorch, counted by valgrind.

Timings of microsecond ops on a shared VM move by ±40 % from one process to the next;
instruction counts do not (PYTHONHASHSEED is fixed, so dict layouts repeat). This counts
the instructions of bench_ops' chain of 100 small ops (matmul, mul, tanh, add on 8x8
float32), recording a graph, then backward, and under no_grad, at one thread, in a process
per library and workload: each workload is run N times and 0 times after the same set-up
and warm-up, and the difference divided by N and by the ops. Fewer instructions is not
proportionally less time (PyTorch's C++ retires more instructions per cycle than the
Python interpreter), so read the ratio as the direction of a change, and bench_ops for time.

    python scripts/bench_instructions.py [--calls 200]

Needs valgrind (``apt install valgrind``); a run takes about two minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from bench_ops import CHAIN_BLOCKS, _chain
from bench_train import THREAD_VARS, load_with_threads

LIBS = ("ember", "torch")
WORKLOADS = ("record", "record+backward", "no_grad")
OPS = 4 * CHAIN_BLOCKS + 1  # the chain and its sum()


def child(lib_name: str, workload: str, calls: int) -> None:
    mod = load_with_threads(lib_name, 1)
    x = mod.randn(8, 8, requires_grad=True)
    w = mod.randn(8, 8, requires_grad=True)

    def record():
        return _chain(mod, x, w).sum()

    def record_backward():
        record().backward()
        x.grad = w.grad = None

    def no_grad():
        with mod.no_grad():
            _chain(mod, x, w).sum()

    run = {"record": record, "record+backward": record_backward, "no_grad": no_grad}[workload]
    for _ in range(3):  # warm-up: caches, first-call paths
        run()
    for _ in range(calls):
        run()


def count(lib_name: str, workload: str, calls: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    cmd += [__file__, "--child", lib_name, workload, "--calls", str(calls)]
    env = dict(os.environ, PYTHONHASHSEED="0", **dict.fromkeys(THREAD_VARS, "1"))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def per_op(lib_name: str, workload: str, calls: int) -> float:
    """Instructions per op of ``workload``: N calls less none, over N chains of OPS ops."""
    with ThreadPoolExecutor(2) as pool:  # each valgrind runs one process on one core
        full, empty = pool.map(lambda n: count(lib_name, workload, n), (calls, 0))
    return (full - empty) / (calls * OPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("LIB", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=200, help="chains per counted run")
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.calls)
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions: valgrind is not installed (apt install valgrind)")
    counts = {(lib, w): per_op(lib, w, args.calls) for lib in LIBS for w in WORKLOADS}
    for lib in LIBS:
        counts[lib, "backward"] = counts[lib, "record+backward"] - counts[lib, "record"]
    print(f"# instructions per op, 8x8 float32 chain of {OPS} ops, 1 thread, valgrind")
    for w in ("record", "backward", "record+backward", "no_grad"):
        e, t = counts["ember", w], counts["torch", w]
        print(f"  {w:17s} ember {e:8.0f}   torch {t:8.0f}   ember/torch {e / t:.2f}x")


if __name__ == "__main__":
    main()
