"""Train the digits CNN and the character GPT briefly, export both to ONNX and run them in
onnxruntime, comparing its outputs with ember's.

    pip install 'ember[onnx]' onnxruntime
    python examples/export_onnx.py --out onnx_models

The exported files load in any ONNX runtime; both take a batch of any size (and the GPT a
context of any length up to its block size), as their ``dynamic_axes`` say.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import ember
import ember.nn.functional as F
from ember.utils.data import DataLoader
from ember.utils.data.datasets import CharCorpus, Digits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from char_gpt import GPT  # noqa: E402
from train_digits import make_model  # noqa: E402


def train(model, loader, steps: int, lr: float, flatten_targets: bool = False) -> float:
    opt = ember.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    step, loss = 0, None
    while step < steps:
        for x, y in loader:
            out = model(x)
            if flatten_targets:
                out, y = out.view(-1, out.shape[-1]), y.view(-1)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    return loss.item()


def check_in_onnxruntime(path: str, model, inputs: dict) -> float:
    """Largest difference between onnxruntime's output and ember's, over the inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    model.eval()
    worst = 0.0
    for name, x in inputs.items():
        (got,) = session.run(None, {name: x.numpy()})
        with ember.no_grad():
            want = model(x).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def main():
    parser = argparse.ArgumentParser(description="Export trained models to ONNX")
    parser.add_argument("--out", default="onnx_models", help="directory for the .onnx files")
    parser.add_argument("--steps", type=int, default=30, help="training steps per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ember.manual_seed(args.seed)

    # the digits CNN: a batch of 8x8 images -> 10 logits
    cnn = make_model("cnn")
    digits = DataLoader(Digits(train=True), batch_size=64, shuffle=True)
    loss = train(cnn, digits, args.steps, lr=3e-3)
    cnn_path = os.path.join(args.out, "digits_cnn.onnx")
    images = next(iter(DataLoader(Digits(train=False), batch_size=32)))[0]
    ember.onnx.export(
        cnn,
        images[:4],
        cnn_path,
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
    )
    diff = check_in_onnxruntime(cnn_path, cnn, {"images": images})
    print(f"digits CNN: loss {loss:.3f} after {args.steps} steps, exported to {cnn_path}")
    print(f"  onnxruntime vs ember on a batch of {len(images)}: max |diff| {diff:.2e}")
    worst = diff

    # the character GPT: token ids (batch, time) -> next-token logits (batch, time, vocab)
    block = 32
    corpus = CharCorpus(block, train=True)
    gpt = GPT(corpus.vocab_size, block, d_model=64, n_head=4, n_layer=2)
    loss = train(gpt, DataLoader(corpus, batch_size=16, shuffle=True), args.steps, 3e-3, True)
    gpt_path = os.path.join(args.out, "char_gpt.onnx")
    tokens = next(iter(DataLoader(CharCorpus(block, train=False), batch_size=5)))[0]
    ember.onnx.export(
        gpt,
        tokens[:2, :16],
        gpt_path,
        input_names=["tokens"],
        output_names=["logits"],
        dynamic_axes={"tokens": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}},
    )
    diff = check_in_onnxruntime(gpt_path, gpt, {"tokens": tokens})
    print(f"char GPT: loss {loss:.3f} after {args.steps} steps, exported to {gpt_path}")
    print(f"  onnxruntime vs ember on tokens {list(tokens.shape)}: max |diff| {diff:.2e}")
    if max(worst, diff) > 1e-4:
        raise SystemExit("onnxruntime disagrees with ember")


if __name__ == "__main__":
    main()
