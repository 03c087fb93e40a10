"""Training-step benchmark: ember vs PyTorch (CPU), each library in a process of its own.

One step is forward, cross-entropy, backward and Adam on three models: an MLP, the MNIST
convnet and a 4-block GPT. Each (library, model, threads) run is a child process that sets
its thread count before the library loads (``OMP_NUM_THREADS`` and the BLAS variables, then
``set_num_threads``), times its steps and prints JSON; the parent alternates ember and
PyTorch processes over several rounds, so drifting machine load hits both alike, and reports
the median over rounds of each process's median step. Two libraries in one process would
spin their thread pools against each other, which is why nothing here shares a process.

    python scripts/bench_train.py [--rounds 3] [--steps 20] [--threads 1,N] [--models mlp,cnn,gpt]
                                  [--json] [--quiet]
    python scripts/bench_train.py --child ember gpt --threads 2     # one run, prints JSON

Per model: step times and ember / PyTorch at each thread count, each library's speed-up
from the fewest to the most threads, ember's first step against its steady step, and peak
memory. The models are written once against a torch-like module (``lib``), which is
ember's API promise: the same code builds both.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from importlib.metadata import version

LIBS = ("ember", "torch")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MEMORY_STEPS = 3


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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


def load_with_threads(lib_name: str, threads: int):
    """Import `lib_name` with `threads` threads: the variables first (read when the BLAS and
    OpenMP load), then the library's own ``set_num_threads``."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    lib = importlib.import_module(lib_name)
    lib.set_num_threads(threads)
    return lib


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(lib_name: str, kind: str, threads: int, steps: int, warmup: int, memory: bool) -> dict:
    """One run in this (fresh) process. Timing: the first step alone, `warmup` more, then
    `steps` timed steps. Memory: how far the resident set rises above the built model and
    data during training steps (gradients, optimizer state, activations); Linux resets the
    peak through clear_refs, the same measure for both libraries."""
    lib = load_with_threads(lib_name, threads)
    step = make_step(lib, kind)
    result = {"lib": lib_name, "model": kind, "threads": lib.get_num_threads()}
    if memory:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM (peak RSS) to the current RSS
        base = _status_kb("VmRSS")
        for _ in range(MEMORY_STEPS):
            step()
        return result | {"peak_mb": (_status_kb("VmHWM") - base) / 1024}
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return result | {"first_s": first, "step_s": statistics.median(times)}


def run_json(cmd: list[str], env: dict) -> dict:
    """Run a benchmark's child process (or job) and return the last JSON line it printed;
    a failure, or no JSON, raises with the ends of its output."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def run_child(lib_name: str, kind: str, threads: int, args, memory: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", lib_name, kind, "--threads", str(threads)]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)] + ["--memory"] * memory
    return run_json(cmd, dict(os.environ, **dict.fromkeys(THREAD_VARS, str(threads))))


def measure(args, models: list[str], threads: list[int]) -> dict:
    from tqdm import tqdm

    runs = [(kind, n) for kind in models for n in threads]
    total = (args.rounds * len(runs) + len(models)) * len(LIBS)
    bar = tqdm(total=total, desc="bench_train", file=sys.stderr, disable=args.quiet)
    samples = {(lib, kind, n): [] for lib in LIBS for kind, n in runs}
    for r in range(args.rounds):
        for kind, n in runs:
            for lib in LIBS if r % 2 == 0 else LIBS[::-1]:  # who goes first alternates too
                bar.set_postfix_str(f"round {r + 1} {lib} {kind} {n}t")
                samples[lib, kind, n].append(run_child(lib, kind, n, args))
                bar.update()
    peak = {}
    for kind in models:
        for lib in LIBS:
            bar.set_postfix_str(f"memory {lib} {kind}")
            peak[lib, kind] = run_child(lib, kind, 1, args, memory=True)["peak_mb"]
            bar.update()
    bar.close()

    def median_ms(lib, kind, n, key="step_s"):
        return statistics.median(s[key] for s in samples[lib, kind, n]) * 1e3

    results = {}
    for kind in models:
        rows = {}
        for n in threads:
            e, t = median_ms("ember", kind, n), median_ms("torch", kind, n)
            e1, t1 = median_ms("ember", kind, n, "first_s"), median_ms("torch", kind, n, "first_s")
            rows[n] = {"ember_ms": e, "torch_ms": t, "ratio": e / t, "ember_first_ms": e1}
            rows[n] |= {"ember_first_over_steady": e1 / e, "torch_first_ms": t1}
        lo, hi = rows[threads[0]], rows[threads[-1]]
        up_e, up_t = lo["ember_ms"] / hi["ember_ms"], lo["torch_ms"] / hi["torch_ms"]
        em, tm = peak["ember", kind], peak["torch", kind]
        results[kind] = {
            "threads": rows,
            "speedup": {"from": threads[0], "to": threads[-1], "ember": up_e, "torch": up_t},
            "memory": {"ember_mb": em, "torch_mb": tm, "ratio": em / tm},
        }
        results[kind]["speedup"]["ratio"] = up_e / up_t
    return results


def machine(args) -> dict:
    with open("/proc/cpuinfo") as f:  # Linux only, as the memory measure is
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else "unknown CPU"
    return {
        "cpu": cpu,
        "cores": cores(),
        "python": sys.version.split()[0],
        **{name: version(name) for name in ("numpy", "torch", "ember")},
        "rounds": args.rounds,
        "steps": args.steps,
        "warmup": args.warmup,
    }


def print_tables(info: dict, results: dict) -> None:
    print(
        f"# {info['cpu']}, {info['cores']} cores; python {info['python']}, numpy "
        f"{info['numpy']}, torch {info['torch']}, ember {info['ember']}"
    )
    print(
        f"# one process per (library, model, threads); median of {info['steps']} steps per "
        f"process, median over {info['rounds']} alternating rounds"
    )
    print(
        f"\n{'model':6} {'threads':>7} {'ember ms':>9} {'torch ms':>9} {'ratio':>6} "
        f"{'ember 1st ms':>13} {'1st/steady':>11}"
    )
    for kind, r in results.items():
        for n, row in r["threads"].items():
            print(
                f"{kind:6} {n:7d} {row['ember_ms']:9.2f} {row['torch_ms']:9.2f} "
                f"{row['ratio']:6.2f} {row['ember_first_ms']:13.1f} "
                f"{row['ember_first_over_steady']:11.2f}"
            )
    print(
        f"\n{'model':6} {'threads':>10} {'ember x':>8} {'torch x':>8} {'ratio':>6} "
        f"{'ember MB':>9} {'torch MB':>9} {'ratio':>6}"
    )
    for kind, r in results.items():
        s, m = r["speedup"], r["memory"]
        print(
            f"{kind:6} {s['from']:>4}->{s['to']:<4} {s['ember']:8.2f} {s['torch']:8.2f} "
            f"{s['ratio']:6.2f} {m['ember_mb']:9.1f} {m['torch_mb']:9.1f} {m['ratio']:6.2f}"
        )
    print(
        "# ratio: ember / PyTorch (lower is better for ember); x: step-time speed-up from the "
        "fewest to the most threads;\n# 1st: the first step (warm-up, allocations, any "
        f"compilation), target <= 2x steady; MB: peak resident set above the built model "
        f"during {MEMORY_STEPS} steps at 1 thread, own process each"
    )


def thread_list(text: str) -> list[int]:
    threads = sorted({int(t) for t in text.split(",")})
    if threads[0] < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be positive, got {text!r}")
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per run")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    parser.add_argument("--threads", default=f"1,{cores()}", help="comma-separated counts")
    parser.add_argument("--models", default="mlp,cnn,gpt")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--child", nargs=2, metavar=("LIB", "MODEL"), help="run one child")
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = thread_list(args.threads)
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be at least 1, --warmup at least 0")
    if args.child:
        lib_name, kind = args.child
        if lib_name not in LIBS or len(threads) != 1:
            parser.error(f"--child takes one of {LIBS}, a model and one --threads count")
        print(json.dumps(child(lib_name, kind, threads[0], args.steps, args.warmup, args.memory)))
        return
    models = args.models.split(",")
    for kind in models:
        if kind not in ("mlp", "cnn", "gpt"):
            parser.error(f"unknown model {kind!r}; choose from mlp, cnn, gpt")
    info = machine(args)
    results = measure(args, models, threads)
    if args.json:
        print(json.dumps({"machine": info, "models": results}, indent=2))
    else:
        print_tables(info, results)


if __name__ == "__main__":
    main()
