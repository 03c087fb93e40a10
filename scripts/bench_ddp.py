"""Benchmark ember.distributed against raw mpi4py and PyTorch (gloo), one thread per rank.

Run: ``mpiexec -n 2 python scripts/bench_ddp.py [--quick] [--rounds R] [--min-time S] [--quiet]``
(progress on rank 0's stderr)

1. all_reduce bus bandwidth, busbw = 2(n-1)/n * bytes / time, float32 from 4 KB to
   256 MB: ember (dist.all_reduce), raw mpi4py ``Allreduce`` (in place), torch gloo.
2. A DDP training step (forward, backward, SGD step) of an MLP 784-1024-1024-10 with
   batch 256 per rank: ember DDP vs torch DDP(gloo); the overhead of DDP over the same
   step in one process without communication; and how much communication DDP hides:
   bucketed + overlapped (DDP) vs one all-reduce of all gradients after backward vs
   one all-reduce per parameter after backward.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from tqdm import tqdm  # noqa: E402

import ember  # noqa: E402
import ember.distributed as dist  # noqa: E402
import ember.nn as nn  # noqa: E402
import ember.nn.functional as F  # noqa: E402
import ember.optim as optim  # noqa: E402
from ember.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()


def progress(total: int, desc: str, quiet: bool) -> tqdm:
    """A progress bar on rank 0's stderr; every other rank gets a silent one."""
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=quiet or RANK != 0)


def timed(fn, min_time=0.3, max_iters=200, warmup=2) -> float:
    """Median seconds per call; every rank runs the same number of iterations."""
    for _ in range(warmup):
        fn()
    COMM.Barrier()
    t0 = time.perf_counter()
    fn()
    once = COMM.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    iters = int(max(3, min(max_iters, min_time / max(once, 1e-9))))
    samples = []
    for _ in range(iters):
        COMM.Barrier()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return COMM.allreduce(float(np.median(samples)), op=MPI.MAX)


def init_torch():
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    port = None
    if RANK == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = COMM.bcast(port, root=0)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tdist.init_process_group("gloo", rank=RANK, world_size=SIZE)
    return torch, tdist


def bench_allreduce(torch, tdist, args):
    sizes = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20]
    if args.quick:
        sizes = sizes[:4]
    factor = 2 * (SIZE - 1) / SIZE
    rows = []
    bar = progress(len(sizes), "all_reduce sizes", args.quiet)
    for nbytes in sizes:
        bar.set_postfix_str(_fmt_bytes(nbytes))
        n = nbytes // 4
        arr = np.ones(n, np.float32)
        et = ember.from_numpy(arr)
        tt = torch.ones(n)
        t_ember = timed(lambda et=et: dist.all_reduce(et), args.min_time)
        t_mpi = timed(lambda arr=arr: COMM.Allreduce(MPI.IN_PLACE, arr, op=MPI.SUM), args.min_time)
        t_gloo = timed(lambda tt=tt: tdist.all_reduce(tt), args.min_time)
        rows.append((nbytes, *(factor * nbytes / t / 1e9 for t in (t_ember, t_mpi, t_gloo))))
        del arr, et, tt
        bar.update()
    bar.close()
    if RANK == 0:
        print(f"\nall_reduce bus bandwidth (GB/s), float32, {SIZE} ranks")
        print(f"{'size':>10} {'ember':>9} {'mpi4py':>9} {'gloo':>9}  ember/mpi4py")
        for nbytes, e, m, g in rows:
            print(f"{_fmt_bytes(nbytes):>10} {e:9.3f} {m:9.3f} {g:9.3f}  {e / m:10.2f}")


def _fmt_bytes(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


def ember_mlp():
    ember.manual_seed(0)
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
    )


def interleaved(variants: dict, rounds: int, quiet: bool, steps: int = 3) -> dict:
    """Median seconds per step of each variant, timed in alternating rounds so that
    drifting machine load hits all variants alike."""
    for fn in variants.values():
        fn()
        fn()
    samples = {name: [] for name in variants}
    bar = progress(rounds * len(variants), "DDP step variants", quiet)
    for _ in range(rounds):
        for name, fn in variants.items():
            bar.set_postfix_str(name)
            COMM.Barrier()
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            samples[name].append(COMM.allreduce(time.perf_counter() - t0, op=MPI.MAX) / steps)
            bar.update()
    bar.close()
    return {name: float(np.median(v)) for name, v in samples.items()}


def bench_training(torch, tdist, args):
    batch = 256
    rng = np.random.default_rng(RANK)
    x_np = rng.standard_normal((batch, 784)).astype(np.float32)
    y_np = rng.integers(0, 10, batch)
    x, y = ember.from_numpy(x_np), ember.from_numpy(y_np)

    def step_fn(model, after_backward=None):
        opt = optim.SGD(model.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            if after_backward is not None:
                after_backward(model)
            opt.step()

        return step

    def one_allreduce(model):
        grads = [p.grad for p in model.parameters()]
        flat = ember.from_numpy(np.concatenate([g._array.ravel() for g in grads]))
        flat._array /= SIZE
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g._array[...] = flat._array[offset : offset + g._array.size].reshape(g._array.shape)
            offset += g._array.size

    def per_parameter(model):
        for p in model.parameters():
            p.grad._array /= SIZE
            dist.all_reduce(p.grad)

    n_grad = sum(p.numel() for p in ember_mlp().parameters())
    grads = ember.from_numpy(np.ones(n_grad, np.float32))

    tnn = torch.nn
    torch.manual_seed(0)
    tmodel = tnn.Sequential(
        tnn.Linear(784, 1024), tnn.ReLU(), tnn.Linear(1024, 1024), tnn.ReLU(), tnn.Linear(1024, 10)
    )
    tx, ty = torch.from_numpy(x_np), torch.from_numpy(y_np)
    tddp_model = torch.nn.parallel.DistributedDataParallel(
        tnn.Sequential(
            tnn.Linear(784, 1024),
            tnn.ReLU(),
            tnn.Linear(1024, 1024),
            tnn.ReLU(),
            tnn.Linear(1024, 10),
        )
    )
    t = interleaved(
        {
            "local": step_fn(ember_mlp()),
            "ddp": step_fn(DDP(ember_mlp())),
            "ddp_view": step_fn(DDP(ember_mlp(), gradient_as_bucket_view=True)),
            "flat": step_fn(ember_mlp(), one_allreduce),
            "each": step_fn(ember_mlp(), per_parameter),
            "comm": lambda: dist.all_reduce(grads),
            "torch_local": _torch_step(torch, tmodel, tx, ty),
            "torch_ddp": _torch_step(torch, tddp_model, tx, ty),
        },
        rounds=args.rounds or (5 if args.quick else 15),
        quiet=args.quiet,
    )

    if RANK == 0:
        ms = 1e3
        exposed = t["ddp"] - t["local"]
        hidden = min(1.0, max(0.0, 1 - exposed / t["comm"]))
        print(f"\nDDP training step, MLP 784-1024-1024-10, batch {batch}/rank, {SIZE} ranks (ms)")
        print(f"{'':38} {'ember':>9} {'torch':>9}")
        print(
            f"{'one process, no communication':38} {t['local'] * ms:9.2f} {t['torch_local'] * ms:9.2f}"
        )
        print(
            f"{'DistributedDataParallel (MPI / gloo)':38} {t['ddp'] * ms:9.2f} {t['torch_ddp'] * ms:9.2f}"
        )
        print(
            f"{'DDP overhead over one process':38} {(t['ddp'] / t['local'] - 1) * 100:8.1f}% "
            f"{(t['torch_ddp'] / t['torch_local'] - 1) * 100:8.1f}%"
        )
        print(f"\nember gradient communication ({n_grad * 4 / 2**20:.1f} MB of float32 gradients)")
        print(f"{'all_reduce of all gradients alone':38} {t['comm'] * ms:9.2f}")
        print(f"{'DDP: bucketed, overlapped':38} {t['ddp'] * ms:9.2f}   hides {hidden * 100:.0f}%")
        print(f"{'DDP, gradient_as_bucket_view=True':38} {t['ddp_view'] * ms:9.2f}")
        print(f"{'one all_reduce after backward':38} {t['flat'] * ms:9.2f}")
        print(f"{'one all_reduce per parameter':38} {t['each'] * ms:9.2f}")


def _torch_step(torch, model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter timings")
    parser.add_argument("--rounds", type=int, help="DDP step rounds (default 15, 5 with --quick)")
    parser.add_argument(
        "--min-time", type=float, default=0.3, help="seconds to time each all_reduce size for"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args()
    if SIZE < 2:
        raise SystemExit("run under mpiexec with at least 2 ranks: mpiexec -n 2 python " + __file__)
    dist.init_process_group("mpi")
    torch, tdist = init_torch()
    bench_allreduce(torch, tdist, args)
    bench_training(torch, tdist, args)
    tdist.destroy_process_group()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
