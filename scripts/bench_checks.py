"""The cost of the always-on collective check, measured inside one job.

Run: ``mpiexec -n 2 python scripts/bench_checks.py [--rounds 8]``

Separate runs with ``EMBER_COLLECTIVE_CHECKS=1`` and ``=0`` differ by more than the check
costs on a shared machine, so this switches the check on and off in turn in the same job
(``group.checks``) and reports the median difference of the pairs:

1. the pieces of the check on rank 0: publishing a fingerprint, the fence and the
   comparison with the neighbour's (``ProgressBoard.check``), computing the fingerprint
   (``encode``);
2. a 4 KB float32 all_reduce, median of many calls per half-round;
3. a DDP training step of an MLP 784-1024-1024-10, batch 256 per rank.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

import ember  # noqa: E402
import ember.distributed as dist  # noqa: E402
import ember.nn as nn  # noqa: E402
import ember.nn.functional as F  # noqa: E402
import ember.optim as optim  # noqa: E402
from ember.distributed.board import encode  # noqa: E402
from ember.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

COMM = MPI.COMM_WORLD


def per_call_ns(fn, n: int = 100_000) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e9


def pieces(group) -> None:
    """Nanoseconds per call of the check's pieces (a separate group, so its sequence
    numbers run far ahead of the neighbour's without disturbing the world's)."""
    board = group.board
    fields = {"shape": (1024,), "dtype": np.dtype(np.float32), "op": "SUM"}
    rec = encode("all_reduce", fields)
    base, n = 10**9, 100_000
    check = per_call_ns(lambda i: board.check(base + i, rec), n)
    group._seq = base + n - 1  # every rank published as far: they leave the group in step
    fingerprint = per_call_ns(lambda i: encode("all_reduce", fields), n)
    if group.rank() == 0:
        print(f"check (publish, fence, peek at the neighbour): {check:6.0f} ns")
        print(f"fingerprint (encode, cached):                  {fingerprint:6.0f} ns")


def alternate(group, fn, rounds: int, calls: int) -> tuple[np.ndarray, np.ndarray]:
    """Median seconds of `fn` over `calls` calls, with the check on and off in turn."""
    times = {True: [], False: []}
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            group.checks = on
            samples = []
            for _ in range(calls):
                COMM.Barrier()
                start = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - start)
            times[on].append(COMM.allreduce(float(np.median(samples)), op=MPI.MAX))
    group.checks = True
    return np.array(times[True]), np.array(times[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    dist.init_process_group("mpi")
    world = dist.group.WORLD
    rank0 = world.rank() == 0
    if rank0:
        print(f"{world.size()} ranks; the check is switched on and off in turn\n")
    pieces(dist.new_group())
    COMM.Barrier()

    x = ember.from_numpy(np.ones(1024, np.float32))
    on, off = alternate(world, lambda: dist.all_reduce(x), args.rounds, 2000)
    if rank0:
        print(
            f"\n4 KB all_reduce: on {np.median(on) * 1e6:.2f} us, off "
            f"{np.median(off) * 1e6:.2f} us, median paired difference "
            f"{np.median(on - off) * 1e6:+.2f} us"
        )

    ember.manual_seed(0)
    layers = [nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU()]
    model = DDP(nn.Sequential(*layers, nn.Linear(1024, 10)))
    opt = optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(world.rank())
    data = ember.from_numpy(rng.standard_normal((256, 784)).astype(np.float32))
    target = ember.from_numpy(rng.integers(0, 10, 256))

    def step():
        loss = F.cross_entropy(model(data), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    on, off = alternate(world, step, args.rounds, 5)
    if rank0:
        print(
            f"DDP step: on {np.median(on) * 1e3:.2f} ms, off {np.median(off) * 1e3:.2f} ms, "
            f"median paired ratio {np.median(on / off):.4f}"
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
