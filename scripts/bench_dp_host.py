"""Data parallel on one CPU host: one process with N threads, or N ranks with one thread each?

For N cores, the same model (bench_train.py's mlp and cnn) trains on the same global batch
either as one process with N threads, or as N data-parallel ranks of one thread each, every
rank on 1/N of the batch under DistributedDataParallel: ember through ``ember-launch -n N``
(MPI; the launcher divides the host's cores between its ranks) and PyTorch through
``torchrun --nproc-per-node N`` (gloo). N = 1 is the baseline of one process on one thread.
Every run is a process (or job) of its own; ember and PyTorch alternate over rounds, and each
figure is the median over rounds of rank 0's median step time.

    python scripts/bench_dp_host.py [--ns 1,N] [--models mlp,cnn] [--rounds 3] [--steps 20]
                                    [--json] [--quiet]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import sys
import time

from bench_train import (
    LIBS,
    THREAD_VARS,
    build,
    cores,
    load_with_threads,
    run_json,
    thread_list,
)

MODES = ("threads", "ranks")  # 1 process x N threads, N processes x 1 thread


def worker(lib_name: str, kind: str, steps: int, warmup: int, ddp: bool) -> None:
    """One training run in this process (one rank of a DDP job when `ddp`, on its share of
    the global batch); rank 0 prints its median step time as JSON."""
    lib = load_with_threads(lib_name, int(os.environ.get("OMP_NUM_THREADS") or cores()))
    rank, world = 0, 1
    if ddp:
        dist = importlib.import_module(f"{lib_name}.distributed")
        parallel = importlib.import_module(f"{lib_name}.nn.parallel")
        dist.init_process_group("gloo" if lib_name == "torch" else "mpi")
        rank, world = dist.get_rank(), dist.get_world_size()
    lib.manual_seed(0)
    model, x, y, loss_fn = build(lib, kind)
    lo, hi = rank * x.shape[0] // world, (rank + 1) * x.shape[0] // world
    x, y = x[lo:hi], y[lo:hi]  # this rank's share of the global batch
    if ddp:
        model = parallel.DistributedDataParallel(model)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if rank == 0:
        result = {"lib": lib_name, "model": kind, "world": world, "threads": lib.get_num_threads()}
        print(json.dumps(result | {"step_s": statistics.median(times)}), flush=True)
    if ddp:
        dist.destroy_process_group()


def command(lib_name: str, kind: str, n: int, mode: str, args) -> tuple[list[str], dict]:
    """The command line and environment of one run on `n` cores."""
    script = [__file__, "--worker", lib_name, kind, "--steps", str(args.steps)]
    script += ["--warmup", str(args.warmup)]
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if mode == "threads":
        return [sys.executable, *script], env | dict.fromkeys(THREAD_VARS, str(n))
    if lib_name == "torch":
        env |= dict.fromkeys(THREAD_VARS, "1")
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        return [*launcher, "--nproc-per-node", str(n), *script, "--ddp"], env
    if n < cores():
        env |= dict.fromkeys(THREAD_VARS, "1")  # else the launcher would spread all cores
    # with n == cores the thread variables stay unset: ember-launch's own division applies
    launcher = shutil.which("ember-launch", path=os.path.dirname(sys.executable)) or "ember-launch"
    return [launcher, "-n", str(n), *script, "--ddp"], env


def run(lib_name: str, kind: str, n: int, mode: str, args) -> dict:
    return run_json(*command(lib_name, kind, n, mode, args))


def measure(args, models: list[str], ns: list[int]) -> list[dict]:
    from tqdm import tqdm

    runs = [(k, n, m) for k in models for n in ns for m in MODES if n > 1 or m == "threads"]
    total = args.rounds * len(runs) * len(LIBS)
    bar = tqdm(total=total, desc="bench_dp_host", file=sys.stderr, disable=args.quiet)
    samples = {(lib, *run_): [] for run_ in runs for lib in LIBS}
    for r in range(args.rounds):
        for kind, n, mode in runs:
            for lib in LIBS if r % 2 == 0 else LIBS[::-1]:
                bar.set_postfix_str(f"round {r + 1} {lib} {kind} n={n} {mode}")
                samples[lib, kind, n, mode].append(run(lib, kind, n, mode, args))
                bar.update()
    bar.close()
    rows = []
    for (lib, kind, n, mode), results in samples.items():
        ms = statistics.median(s["step_s"] for s in results) * 1e3
        world, threads = results[0]["world"], results[0]["threads"]
        rows.append(dict(lib=lib, model=kind, n=n, mode=mode, world=world, threads=threads, ms=ms))
    return rows


def print_table(rows: list[dict], args) -> None:
    print(
        f"# one host, {cores()} cores; median of {args.steps} steps per run (rank 0), median "
        f"over {args.rounds} alternating rounds; same global batch in every run"
    )
    print(
        f"{'model':6} {'N':>3} {'lib':6} {'1 proc x N thr':>15} {'N ranks x 1 thr':>16} "
        f"{'faster':>15} {'vs 1 thread':>12}"
    )
    ms = {(r["lib"], r["model"], r["n"], r["mode"]): r["ms"] for r in rows}
    for r in rows:
        if r["mode"] != "threads":
            continue
        key = r["lib"], r["model"], r["n"]
        ranks = ms.get((*key, "ranks"))
        best = min(r["ms"], ranks or r["ms"])
        base = ms.get((r["lib"], r["model"], 1, "threads"))
        faster = "-" if ranks is None else "ranks" if ranks < r["ms"] else "threads"
        if ranks is not None:
            faster += f" {max(r['ms'], ranks) / best:.2f}x"
        print(
            f"{r['model']:6} {r['n']:3d} {r['lib']:6} {r['ms']:12.2f} ms "
            f"{'-' if ranks is None else f'{ranks:.2f} ms':>16} {faster:>15} "
            f"{'-' if base is None else f'{base / best:.2f}x':>12}"
        )
    per_rank = {r["lib"]: r["threads"] for r in rows if r["mode"] == "ranks"}
    if per_rank:
        print(f"# threads per rank as launched: {per_rank}")
    print(
        "# faster: the better way to use N cores and by how much; vs 1 thread: the better "
        "way's speed-up over one process on one thread"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default=f"1,{cores()}", help="core counts, comma-separated")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--worker", nargs=2, metavar=("LIB", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--ddp", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be at least 1, --warmup at least 0")
    if args.worker:
        worker(*args.worker, args.steps, args.warmup, args.ddp)
        return
    models = args.models.split(",")
    if not set(models) <= {"mlp", "cnn"}:
        parser.error(f"--models takes mlp and/or cnn, got {args.models!r}")
    rows = measure(args, models, thread_list(args.ns))
    if args.json:
        print(json.dumps({"cores": cores(), "rows": rows}, indent=2))
    else:
        print_table(rows, args)


if __name__ == "__main__":
    main()
