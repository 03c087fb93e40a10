"""Fine-tune a pre-trained model: load LeNet-5 weights from a safetensors file, freeze the
backbone, replace the head, and train only the head on the embedded 8x8 digits.

    python examples/finetune_digits.py                       # pre-trains its own backbone
    python examples/finetune_digits.py --weights lenet5.safetensors --source-classes 10

With no --weights, the script first makes a backbone the way a published one is made:
it trains LeNet-5 on a *source* task (only the digits 0-4) and saves the weights as
safetensors. The fine-tuning then loads that file with ``ember.models.lenet5(weights=...)``,
freezes everything, and swaps the 5-way head ``fc3`` for a fresh 10-way one: the frozen
features, learned without ever seeing 5-9, have to serve all ten digits.

Weights for the other models (``ember.models.resnet18(weights=...)`` etc.) load the same
way; convert torchvision's ``.pth`` once with PyTorch:
``safetensors.torch.save_file(torch.load(p), out)``. The last line is the test accuracy.
"""

from __future__ import annotations

import argparse

import numpy as np

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.models import lenet5
from ember.utils.data import DataLoader, Subset
from ember.utils.data import transforms as T
from ember.utils.data.datasets import Digits


@ember.no_grad()
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(dim=1) == y).sum().item()
        total += y.numel()
    model.train()
    return correct / total


def train(model, params, loader, epochs: int, lr: float, label: str) -> None:
    opt = ember.optim.Adam(params, lr=lr)
    for epoch in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"{label} epoch {epoch + 1}: loss {loss.item():.4f}")


def pretrain_backbone(path: str, classes: int, epochs: int, transform) -> None:
    """LeNet-5 trained on the digits below ``classes`` only, saved as safetensors."""
    data = Digits(train=True, transform=transform)
    keep = np.flatnonzero(data.targets.numpy() < classes).tolist()
    model = lenet5(num_classes=classes)
    loader = DataLoader(Subset(data, keep), batch_size=32, shuffle=True)
    train(model, model.parameters(), loader, epochs, 3e-3, "pre-train")
    ember.serialization.save_file(model.state_dict(), path)
    print(f"backbone: {path} (trained on digits 0-{classes - 1})")


def main():
    parser = argparse.ArgumentParser(description="Fine-tune LeNet-5's head on the digits")
    parser.add_argument("--weights", help="LeNet-5 safetensors; default: pre-train one")
    parser.add_argument("--source-classes", type=int, default=5, help="outputs of its head")
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lenet5_digits04.safetensors")
    args = parser.parse_args()
    ember.manual_seed(args.seed)

    # 8x8 digits -> LeNet's 32x32 input; small random turns augment the training images
    to_32 = T.Resize((32, 32))
    train_tf = T.Compose([to_32, T.RandomRotation(10)])
    if args.weights is None:
        args.weights = args.out
        pretrain_backbone(args.weights, args.source_classes, args.pretrain_epochs, train_tf)

    model = lenet5(weights=args.weights, num_classes=args.source_classes)
    model.requires_grad_(False)  # freeze the backbone ...
    model.fc3 = nn.Linear(model.fc3.in_features, 10)  # ... and give it a new, trainable head
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    print(f"fine-tuning {trainable:,} parameters, {frozen:,} frozen")

    loader = DataLoader(Digits(train=True, transform=train_tf), batch_size=32, shuffle=True)
    test_loader = DataLoader(Digits(train=False, transform=to_32), batch_size=256)
    train(model, model.fc3.parameters(), loader, args.epochs, args.lr, "fine-tune")
    print(f"test accuracy: {accuracy(model, test_loader):.4f}")


if __name__ == "__main__":
    main()
