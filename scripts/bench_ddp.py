"""Benchmark ember.distributed against raw mpi4py and PyTorch (gloo), one thread per rank,
each library in jobs of its own.

Run: ``python scripts/bench_ddp.py [--ranks 2] [--rounds 3] [--quick] [--step-rounds R]
[--min-time S] [--quiet]``. Each round starts one ``mpiexec -n RANKS`` job per library,
alternating which goes first (two libraries in one process would share, and slow, each
other's threads); rank 0 of each job prints its timings as JSON, and the medians over the
rounds are reported. One job alone: ``mpiexec -n 2 python scripts/bench_ddp.py --worker ember``.

1. all_reduce bus bandwidth, busbw = 2(n-1)/n * bytes / time, float32 from 4 KB to
   256 MB: ember (dist.all_reduce) and raw mpi4py ``Allreduce`` (in place) in ember's job,
   torch gloo in PyTorch's.
2. A DDP training step (forward, backward, SGD step) of an MLP 784-1024-1024-10 with
   batch 256 per rank: ember DDP vs torch DDP(gloo); the overhead of DDP over the same
   step in one process without communication; and how much communication DDP hides:
   bucketed + overlapped (DDP) vs one all-reduce of all gradients after backward vs
   one all-reduce per parameter after backward.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import time

LIBS = ("ember", "torch")
SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20]
BATCH = 256
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# -- one job: one library, every rank -------------------------------------------------------


class Job:
    """MPI ranks timing one library's collectives and DDP steps; every rank runs the same
    number of iterations, and the slowest rank's time counts."""

    def __init__(self):
        import numpy as np
        from mpi4py import MPI

        self.np, self.MPI, self.comm = np, MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def timed(self, fn, min_time=0.3, max_iters=200, warmup=2) -> float:
        """Median seconds per call."""
        for _ in range(warmup):
            fn()
        self.comm.Barrier()
        t0 = time.perf_counter()
        fn()
        once = self.comm.allreduce(time.perf_counter() - t0, op=self.MPI.MAX)
        iters = int(max(3, min(max_iters, min_time / max(once, 1e-9))))
        samples = []
        for _ in range(iters):
            self.comm.Barrier()
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return self.comm.allreduce(float(self.np.median(samples)), op=self.MPI.MAX)

    def interleaved(self, variants: dict, rounds: int, steps: int = 3) -> dict:
        """Median seconds per step of each variant, timed in alternating rounds so that
        drifting machine load hits all variants alike."""
        for fn in variants.values():
            fn()
            fn()
        samples = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                self.comm.Barrier()
                t0 = time.perf_counter()
                for _ in range(steps):
                    fn()
                elapsed = self.comm.allreduce(time.perf_counter() - t0, op=self.MPI.MAX)
                samples[name].append(elapsed / steps)
        return {name: float(self.np.median(v)) for name, v in samples.items()}

    def batch(self):
        rng = self.np.random.default_rng(self.rank)
        x = rng.standard_normal((BATCH, 784)).astype(self.np.float32)
        return x, rng.integers(0, 10, BATCH)


def ember_job(job: Job, args) -> dict:
    import ember
    import ember.distributed as dist
    import ember.nn as nn
    import ember.nn.functional as F
    import ember.optim as optim
    from ember.nn.parallel import DistributedDataParallel as DDP

    np, MPI = job.np, job.MPI
    dist.init_process_group("mpi")
    result = {"allreduce": {}, "allreduce_mpi4py": {}}
    for nbytes in sizes(args):
        arr = np.ones(nbytes // 4, np.float32)
        tensor = ember.from_numpy(arr)
        result["allreduce"][nbytes] = job.timed(
            lambda tensor=tensor: dist.all_reduce(tensor), args.min_time
        )
        result["allreduce_mpi4py"][nbytes] = job.timed(
            lambda arr=arr: job.comm.Allreduce(MPI.IN_PLACE, arr, op=MPI.SUM), args.min_time
        )

    def mlp():
        ember.manual_seed(0)
        return nn.Sequential(
            nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
        )

    x_np, y_np = job.batch()
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
        flat = ember.from_numpy(np.concatenate([g.numpy().ravel() for g in grads]))
        flat /= job.size
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view(g.shape))
            offset += g.numel()

    def per_parameter(model):
        for p in model.parameters():
            p.grad /= job.size
            dist.all_reduce(p.grad)

    n_grad = sum(p.numel() for p in mlp().parameters())
    grads = ember.ones(n_grad)
    result["steps"] = job.interleaved(
        {
            "local": step_fn(mlp()),
            "ddp": step_fn(DDP(mlp())),
            "ddp_view": step_fn(DDP(mlp(), gradient_as_bucket_view=True)),
            "flat": step_fn(mlp(), one_allreduce),
            "each": step_fn(mlp(), per_parameter),
            "comm": lambda: dist.all_reduce(grads),
        },
        rounds=step_rounds(args),
    )
    result["gradient_mb"] = n_grad * 4 / 2**20
    dist.destroy_process_group()
    return result


def torch_job(job: Job, args) -> dict:
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    port = None
    if job.rank == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = job.comm.bcast(port, root=0)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tdist.init_process_group("gloo", rank=job.rank, world_size=job.size)
    result = {"allreduce": {}}
    for nbytes in sizes(args):
        tensor = torch.ones(nbytes // 4)
        result["allreduce"][nbytes] = job.timed(
            lambda tensor=tensor: tdist.all_reduce(tensor), args.min_time
        )

    def mlp():
        torch.manual_seed(0)
        nn = torch.nn
        return nn.Sequential(
            nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
        )

    x_np, y_np = job.batch()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step_fn(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        return step

    ddp = torch.nn.parallel.DistributedDataParallel(mlp())
    result["steps"] = job.interleaved(
        {"local": step_fn(mlp()), "ddp": step_fn(ddp)}, rounds=step_rounds(args)
    )
    tdist.destroy_process_group()
    return result


def sizes(args) -> list[int]:
    return SIZES[:4] if args.quick else SIZES


def step_rounds(args) -> int:
    return args.step_rounds or (5 if args.quick else 15)


def worker(lib: str, args) -> None:
    job = Job()
    if job.size < 2:
        raise SystemExit(f"--worker runs under mpiexec with at least 2 ranks: {__file__}")
    result = (ember_job if lib == "ember" else torch_job)(job, args)
    if job.rank == 0:
        print(json.dumps(result))


# -- the driver: alternating jobs, medians, tables ---------------------------------------------


def run_job(lib: str, args) -> dict:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("bench_ddp needs mpiexec on PATH (pip install ember[mpi])")
    cmd = [mpiexec, "-n", str(args.ranks), sys.executable, __file__, "--worker", lib]
    cmd += ["--min-time", str(args.min_time), "--step-rounds", str(step_rounds(args))]
    cmd += ["--quick"] * args.quick
    from bench_train import run_json  # the driver runs from scripts/; workers never need it

    return run_json(cmd, dict(os.environ, **dict.fromkeys(THREAD_VARS, "1")))


def median_of(runs: list[dict], *keys) -> float:
    def pick(run):
        for key in keys:
            run = run[key]
        return run

    return statistics.median(pick(run) for run in runs)


def print_tables(args, runs: dict) -> None:
    e, t = runs["ember"], runs["torch"]
    factor = 2 * (args.ranks - 1) / args.ranks
    print(
        f"all_reduce bus bandwidth (GB/s), float32, {args.ranks} ranks; one mpiexec job per "
        f"library, median over {args.rounds} alternating rounds"
    )
    print(f"{'size':>10} {'ember':>9} {'mpi4py':>9} {'gloo':>9}  ember/mpi4py")
    for nbytes in map(str, sizes(args)):  # JSON keys are strings
        busbw = [
            factor * int(nbytes) / median_of(r, key, nbytes) / 1e9
            for r, key in ((e, "allreduce"), (e, "allreduce_mpi4py"), (t, "allreduce"))
        ]
        print(
            f"{_fmt_bytes(int(nbytes)):>10} {busbw[0]:9.3f} {busbw[1]:9.3f} {busbw[2]:9.3f}  "
            f"{busbw[0] / busbw[1]:10.2f}"
        )
    step = {name: median_of(e, "steps", name) for name in e[0]["steps"]}
    torch_step = {name: median_of(t, "steps", name) for name in t[0]["steps"]}
    ms = 1e3
    print(f"\nDDP training step, MLP 784-1024-1024-10, batch {BATCH}/rank, {args.ranks} ranks (ms)")
    print(f"{'':38} {'ember':>9} {'torch':>9}  ember/torch")
    for label, key in (
        ("one process, no communication", "local"),
        ("DistributedDataParallel (MPI / gloo)", "ddp"),
    ):
        print(
            f"{label:38} {step[key] * ms:9.2f} {torch_step[key] * ms:9.2f}  "
            f"{step[key] / torch_step[key]:10.2f}"
        )
    print(
        f"{'DDP overhead over one process':38} {(step['ddp'] / step['local'] - 1) * 100:8.1f}% "
        f"{(torch_step['ddp'] / torch_step['local'] - 1) * 100:8.1f}%"
    )
    exposed = step["ddp"] - step["local"]
    hidden = min(1.0, max(0.0, 1 - exposed / step["comm"]))
    print(f"\nember gradient communication ({e[0]['gradient_mb']:.1f} MB of float32 gradients)")
    print(f"{'all_reduce of all gradients alone':38} {step['comm'] * ms:9.2f}")
    print(f"{'DDP: bucketed, overlapped':38} {step['ddp'] * ms:9.2f}   hides {hidden * 100:.0f}%")
    print(f"{'DDP, gradient_as_bucket_view=True':38} {step['ddp_view'] * ms:9.2f}")
    print(f"{'one all_reduce after backward':38} {step['flat'] * ms:9.2f}")
    print(f"{'one all_reduce per parameter':38} {step['each'] * ms:9.2f}")


def _fmt_bytes(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2, help="ranks per job (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating jobs per library")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer step rounds")
    parser.add_argument(
        "--step-rounds", type=int, help="DDP step rounds per job (default 15, 5 with --quick)"
    )
    parser.add_argument(
        "--min-time", type=float, default=0.3, help="seconds to time each all_reduce size for"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--worker", choices=LIBS, help="run one library's job (under mpiexec)")
    args = parser.parse_args()
    for var in THREAD_VARS:  # one thread per rank, set before NumPy or torch loads
        os.environ[var] = "1"
    if args.worker:
        worker(args.worker, args)
        return
    if args.ranks < 2 or args.rounds < 1:
        parser.error("--ranks must be at least 2 and --rounds at least 1")
    from tqdm import tqdm

    runs = {lib: [] for lib in LIBS}
    bar = tqdm(total=args.rounds * len(LIBS), desc="bench_ddp", file=sys.stderr, disable=args.quiet)
    for r in range(args.rounds):
        for lib in LIBS if r % 2 == 0 else LIBS[::-1]:
            bar.set_postfix_str(f"round {r + 1} {lib}")
            runs[lib].append(run_job(lib, args))
            bar.update()
    bar.close()
    print_tables(args, runs)


if __name__ == "__main__":
    main()
