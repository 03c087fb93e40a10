"""Loading pre-trained weights from local safetensors files, with a strict check of key
names and shapes that names the first mismatch."""

from __future__ import annotations

import os

from ..serialization import load
from ..tensor import Tensor


def resolve_weights_path(weights) -> str:
    r"""The safetensors file that ``weights`` names: the path itself, or
    ``<weights>/model.safetensors`` for a directory."""
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(
            f"weights must be a path to a safetensors file or to a directory holding "
            f"model.safetensors, got {type(weights).__name__}"
        )
    path = os.fspath(weights)
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no weights file at {path!r}; ember never downloads weights: fetch the "
            f"safetensors file once and pass its local path"
        )
    return path


def check_state_dict(expected: dict, found: dict, source: str = "checkpoint") -> None:
    r"""Raise ``RuntimeError`` naming the first key that ``found`` lacks or has in
    excess, or whose shape differs from ``expected``'s (in ``expected``'s order)."""
    for key, value in expected.items():
        if key not in found:
            raise RuntimeError(f"{source} lacks the key {key!r} (shape {list(value.shape)})")
        got = tuple(found[key].shape)
        if got != tuple(value.shape):
            raise RuntimeError(
                f"{source}: {key!r} has shape {list(got)}, the model expects {list(value.shape)}"
            )
    for key in found:
        if key not in expected:
            raise RuntimeError(f"{source} has the unexpected key {key!r}")


def load_weights(model, weights, convert=None):
    r"""Load ``weights`` (a safetensors file, or a directory holding
    ``model.safetensors``) into ``model`` after ``convert(state_dict)`` (if given)
    has brought the file's layout to the model's. Returns ``model``."""
    path = resolve_weights_path(weights)
    state = load(path, map_location="cpu")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise RuntimeError(f"{path} does not hold a flat dict of tensors (a state_dict)")
    if convert is not None:
        state = convert(state)
    check_state_dict(model.state_dict(), state, source=path)
    model.load_state_dict(state)
    return model
