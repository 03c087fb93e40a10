"""``pad_sequence``: stack variable-length sequences into one padded tensor."""

from __future__ import annotations

from ... import creation
from ...ops.join import cat, stack
from ...tensor import Tensor


def pad_sequence(
    sequences,
    batch_first: bool = False,
    padding_value: float = 0.0,
    padding_side: str = "right",
) -> Tensor:
    r"""Pad tensors of shape (L_i, *) to the longest L and stack them: (L, B, *), or
    (B, L, *) with ``batch_first``. Differentiable w.r.t. the sequences.

    Example::

        >>> pad_sequence([ember.ones(3), ember.ones(1)], batch_first=True).shape
        ember.Size([2, 3])
    """
    if padding_side not in ("left", "right"):
        raise ValueError(
            f"Expected padding_side to be one of left or right, but got {padding_side}."
        )
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences:
        if tuple(s.shape[1:]) != trailing:
            raise RuntimeError(
                f"pad_sequence: all sequences must have the same trailing shape {list(trailing)}, "
                f"got {list(s.shape)}"
            )
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - s.shape[0]
        if missing:
            fill = creation.full(
                (missing, *trailing), padding_value, dtype=s.dtype, device=s.device
            )
            s = cat([s, fill] if padding_side == "right" else [fill, s])
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)
