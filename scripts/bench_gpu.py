"""GPU training-step benchmark: ember (CuPy) vs PyTorch eager on the same GPU, in one run.

Workloads (forward, cross-entropy, backward, optimizer step):

* ``mlp``: 4 x Linear(4096, 4096) + ReLU and a 1000-way head, batch 1024, SGD momentum;
* ``cnn``: 4 conv3x3 + BatchNorm + ReLU stages (64-512 channels) on 3x32x32, batch 256, SGD;
* ``gpt``: GPT-2 small (12 layers, d=768, 12 heads, T=1024, vocab 50257), batch 8, AdamW.

Modes: ``fp32`` (TF32 off), ``tf32`` (float32 GEMMs on TF32 tensor cores, via
``ember.backends.cuda.matmul.allow_tf32`` / ``torch.backends.cuda.matmul.allow_tf32``),
``bf16`` and ``fp16`` (autocast; fp16 with a GradScaler). For each it prints the median
step time, throughput (images or tokens per second), peak memory (ember:
``ember.cuda.max_memory_allocated`` over one extra step, from its CuPy memory hook; torch:
``torch.cuda.max_memory_allocated``), achieved TFLOP/s (analytic model FLOPs per step /
step time) and its share of the H100 SXM dense peak (989 TFLOP/s bf16/fp16, 494 TF32,
67 fp32), and ember's time relative to torch. ``--json PATH`` also writes the rows as
JSON, rewritten after each one (``scripts/gpu_check`` reads it, even after a timeout).

    python scripts/bench_gpu.py [--workloads mlp,cnn,gpt] [--modes fp32,tf32,bf16,fp16]
                                [--steps 10] [--json rows.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PEAK_TFLOPS = {"fp32": 67.0, "tf32": 494.0, "bf16": 989.0, "fp16": 989.0}  # H100 SXM, dense

MLP_WIDTH, MLP_DEPTH, MLP_BATCH, MLP_CLASSES = 4096, 4, 1024, 1000
CNN_BATCH, CNN_CHANNELS, CNN_SIZE = 256, (64, 128, 256, 512), 32
GPT_LAYERS, GPT_D, GPT_HEADS, GPT_T, GPT_BATCH, GPT_VOCAB = 12, 768, 12, 1024, 8, 50257


def build(lib, kind, dev="cuda"):
    """(model, inputs, targets, optimizer) on ``dev``, written once for ember and torch."""
    nn, F = lib.nn, lib.nn.functional
    if kind == "mlp":
        layers = []
        for _ in range(MLP_DEPTH):
            layers += [nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(MLP_WIDTH, MLP_CLASSES)).to(dev)
        x = lib.randn(MLP_BATCH, MLP_WIDTH, device=dev)
        y = lib.randint(0, MLP_CLASSES, (MLP_BATCH,), device=dev)
        return model, x, y, lib.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    if kind == "cnn":
        layers, c_in = [], 3
        for i, c in enumerate(CNN_CHANNELS):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(c_in, c, 3, stride=stride, padding=1),
                nn.BatchNorm2d(c),
                nn.ReLU(),
            ]
            c_in = c

        class CNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(*layers)
                self.head = nn.Linear(c_in, 10)

            def forward(self, x):
                return self.head(self.features(x).mean((2, 3)))

        model = CNN().to(dev)
        x = lib.randn(CNN_BATCH, 3, CNN_SIZE, CNN_SIZE, device=dev)
        y = lib.randint(0, 10, (CNN_BATCH,), device=dev)
        return model, x, y, lib.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    if kind == "gpt":
        d, h = GPT_D, GPT_HEADS

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
                self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

            def forward(self, x):
                b, t, c = x.shape
                q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
                q, k, v = (z.view(b, t, h, c // h).transpose(1, 2) for z in (q, k, v))
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + self.proj(a.transpose(1, 2).reshape(b, t, c))
                return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.wte, self.wpe = nn.Embedding(GPT_VOCAB, d), nn.Embedding(GPT_T, d)
                self.blocks = nn.Sequential(*[Block() for _ in range(GPT_LAYERS)])
                self.ln_f = nn.LayerNorm(d)

            def forward(self, idx):
                pos = lib.arange(idx.shape[1], device=idx.device)
                x = self.ln_f(self.blocks(self.wte(idx) + self.wpe(pos)))
                return F.linear(x, self.wte.weight).view(-1, GPT_VOCAB)  # tied head

        model = GPT().to(dev)
        x = lib.randint(0, GPT_VOCAB, (GPT_BATCH, GPT_T), device=dev)
        y = lib.randint(0, GPT_VOCAB, (GPT_BATCH * GPT_T,), device=dev)
        opt = lib.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
        return model, x, y, opt
    raise ValueError(f"unknown workload {kind!r}")


def step_flops(kind) -> tuple[float, int, str]:
    """Model FLOPs of one training step (forward + backward = 3 x forward GEMM/conv FLOPs),
    the items it processes, and their unit."""
    if kind == "mlp":
        macs = MLP_DEPTH * MLP_WIDTH * MLP_WIDTH + MLP_WIDTH * MLP_CLASSES
        return 6.0 * MLP_BATCH * macs, MLP_BATCH, "img/s"
    if kind == "cnn":
        macs, c_in, size = 0, 3, CNN_SIZE
        for i, c in enumerate(CNN_CHANNELS):
            size = size if i == 0 else (size + 1) // 2
            macs += c_in * c * 9 * size * size
            c_in = c
        macs += c_in * 10
        return 6.0 * CNN_BATCH * macs, CNN_BATCH, "img/s"
    d, layers, t = GPT_D, GPT_LAYERS, GPT_T
    matmul_params = layers * 12 * d * d + GPT_VOCAB * d  # blocks' GEMMs and the tied head
    attention = 12 * layers * d * t  # QK^T and AV, forward + backward, per token (PaLM)
    tokens = GPT_BATCH * t
    return tokens * (6.0 * matmul_params + attention), tokens, "tok/s"


class Runner:
    """One library's training step for one workload and mode."""

    def __init__(self, lib, kind, mode, dev="cuda"):
        self.lib, self.kind, self.mode = lib, kind, mode
        lib.manual_seed(0)
        self.model, self.x, self.y, self.opt = build(lib, kind, dev)
        self.scaler = lib.amp.GradScaler("cuda") if mode == "fp16" else None
        low = {"bf16": lib.bfloat16, "fp16": lib.float16}.get(mode)
        self.autocast = (lambda: lib.autocast("cuda", dtype=low)) if low is not None else None

    def step(self):
        F = self.lib.nn.functional
        self.opt.zero_grad(set_to_none=True)
        if self.autocast is not None:
            with self.autocast():
                loss = F.cross_entropy(self.model(self.x), self.y)
        else:
            loss = F.cross_entropy(self.model(self.x), self.y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()

    def sync(self):
        self.lib.cuda.synchronize()


def set_tf32(ember, torch, enabled: bool) -> None:
    ember.backends.cuda.matmul.allow_tf32 = enabled
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def ember_peak_bytes(runner, ember) -> int:
    """Most bytes held by tensors during one step (ember's CuPy memory hook)."""
    runner.sync()
    ember.cuda.reset_peak_memory_stats()
    runner.step()
    runner.sync()
    return ember.cuda.max_memory_allocated()


def torch_peak_bytes(runner, torch) -> int:
    runner.sync()
    torch.cuda.reset_peak_memory_stats()
    runner.step()
    runner.sync()
    return torch.cuda.max_memory_allocated()


def time_steps(runners: dict, warmup: int, steps: int) -> dict:
    for _ in range(warmup):
        for r in runners.values():
            r.step()
            r.sync()
    times = {name: [] for name in runners}
    for _ in range(steps):
        for name, r in runners.items():  # alternate so clock/thermal drift hits both alike
            r.sync()
            t0 = time.perf_counter()
            r.step()
            r.sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="mlp,cnn,gpt")
    parser.add_argument("--modes", default="fp32,tf32,bf16,fp16")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true", help="time ember alone")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    import ember
    import ember.backends  # noqa: F401  (ember.backends.cuda.matmul.allow_tf32)

    if not ember.cuda.is_available():
        sys.exit(f"bench_gpu.py needs CUDA: {ember.cuda.unavailable_reason()}")
    import cupy

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None and not torch.cuda.is_available():
            print("# this PyTorch has no CUDA: timing ember alone")
            torch = None
    libs = {"ember": ember} if torch is None else {"ember": ember, "torch": torch}

    print(
        f"# {ember.cuda.get_device_name()}, CuPy {cupy.__version__}, ember {ember.__version__}"
        + ("" if torch is None else f", torch {torch.__version__}")
        + f"; median of {args.steps} steps after {args.warmup} warm-up"
    )
    header = f"{'workload':8} {'mode':5} {'lib':6} {'step ms':>9} {'throughput':>16}"
    print(header + f" {'peak GiB':>9} {'TFLOP/s':>8} {'% peak':>7} {'vs torch':>9}")
    rows = []
    for kind in args.workloads.split(","):
        flops, items, unit = step_flops(kind)
        for mode in args.modes.split(","):
            if mode not in PEAK_TFLOPS:
                sys.exit(f"unknown mode {mode!r}; expected one of {', '.join(PEAK_TFLOPS)}")
            row = {"workload": kind, "mode": mode, "unit": unit}
            set_tf32(ember, torch, mode == "tf32")
            runners = {}
            for name, lib in libs.items():
                try:
                    runners[name] = Runner(lib, kind, mode)
                    runners[name].step()  # fail early, outside the timed loop
                except Exception as err:  # a mode a library cannot run is reported, not fatal
                    print(f"{kind:8} {mode:5} {name:6} failed: {type(err).__name__}: {err}")
                    row[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
                    runners.pop(name, None)
            if runners:
                medians = time_steps(runners, args.warmup, args.steps)
                for name, r in runners.items():
                    peak = (
                        ember_peak_bytes(r, ember)
                        if name == "ember"
                        else torch_peak_bytes(r, torch)
                    )
                    sec = medians[name]
                    tflops = flops / sec / 1e12
                    row[name] = {
                        "step_ms": sec * 1e3,
                        "throughput": items / sec,
                        "peak_gib": peak / 2**30,
                        "tflops": tflops,
                        "pct_peak": 100 * tflops / PEAK_TFLOPS[mode],
                    }
                    ratio = f"{sec / medians['torch']:8.2f}x" if "torch" in medians else f"{'-':>9}"
                    print(
                        f"{kind:8} {mode:5} {name:6} {sec * 1e3:9.2f} {items / sec:10.0f} {unit:5}"
                        f" {peak / 2**30:9.2f} {tflops:8.1f} {100 * tflops / PEAK_TFLOPS[mode]:6.1f}%"
                        f" {ratio}",
                        flush=True,
                    )
                if "ember" in medians and "torch" in medians:
                    row["time_ratio"] = medians["ember"] / medians["torch"]
                    row["peak_ratio"] = row["ember"]["peak_gib"] / max(
                        row["torch"]["peak_gib"], 1e-9
                    )
            rows.append(row)
            if args.json is not None:
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
            del runners
            if torch is not None:
                torch.cuda.empty_cache()
            ember.cuda.empty_cache()
    set_tf32(ember, torch, False)


if __name__ == "__main__":
    main()
