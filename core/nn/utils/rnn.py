"""Variable-length sequences for the recurrent layers: ``PackedSequence`` and the
functions that pack, pad and unpack batches of sequences, with PyTorch's names.

A packed sequence stores the time steps one after another, each holding the sequences
still running at that step (longest first): ``data`` is (sum of lengths, *) and
``batch_sizes[t]`` is the number of rows of step t. Packing and padding are gathers
(``index_select``), so gradients flow back through them.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ... import backend, creation, dtypes
from ...ops.join import cat, stack
from ...ops.scatter import index_select
from ...tensor import Tensor

__all__ = [
    "PackedSequence",
    "invert_permutation",
    "pack_padded_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpad_sequence",
    "pack_sequence",
    "unpack_sequence",
]

_PackedSequenceFields = namedtuple(
    "PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"]
)


class PackedSequence(_PackedSequenceFields):
    r"""A batch of variable-length sequences, packed time step by time step; made by
    :func:`pack_padded_sequence` or :func:`pack_sequence`, accepted and returned by
    ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``.

    Fields: ``data`` (sum of lengths, *), ``batch_sizes`` (int64 CPU tensor, one entry
    per time step), ``sorted_indices`` (the batch order used for packing, or None when
    the input was already sorted) and ``unsorted_indices`` (its inverse).
    """

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PackedSequence((data, batch_sizes), ...)
            if not (isinstance(data, list | tuple) and len(data) == 2):
                raise TypeError(
                    "PackedSequence expects (data, batch_sizes) or data and batch_sizes"
                )
            data, batch_sizes = data
        if isinstance(batch_sizes, Tensor) and batch_sizes.device.type != "cpu":
            raise ValueError(
                "batch_sizes should always be on CPU. Instances of PackedSequence should "
                "be made by pack_sequence or pack_padded_sequence in nn.utils.rnn."
            )
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs) -> PackedSequence:
        r"""``data.to(...)``; the indices follow data to its device, ``batch_sizes``
        stays on the CPU. Returns ``self`` when nothing changes."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        sorted_indices, unsorted_indices = (
            None if t is None else t.to(data.device)
            for t in (self.sorted_indices, self.unsorted_indices)
        )
        return type(self)(data, self.batch_sizes, sorted_indices, unsorted_indices)

    def cuda(self, device=None) -> PackedSequence:
        return self.to("cuda" if device is None else device)

    def cpu(self) -> PackedSequence:
        return self.to("cpu")

    def double(self) -> PackedSequence:
        return self.to(dtype=dtypes.float64)

    def float(self) -> PackedSequence:
        return self.to(dtype=dtypes.float32)

    def half(self) -> PackedSequence:
        return self.to(dtype=dtypes.float16)

    def long(self) -> PackedSequence:
        return self.to(dtype=dtypes.int64)

    def int(self) -> PackedSequence:
        return self.to(dtype=dtypes.int32)

    def short(self) -> PackedSequence:
        return self.to(dtype=dtypes.int16)

    def char(self) -> PackedSequence:
        return self.to(dtype=dtypes.int8)

    def byte(self) -> PackedSequence:
        return self.to(dtype=dtypes.uint8)

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda

    def is_pinned(self) -> bool:
        return False


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    r"""The inverse of a permutation of ``0..n-1`` (None stays None)."""
    if permutation is None:
        return None
    return permutation.argsort()


def _index_tensor(array: np.ndarray, device) -> Tensor:
    return creation.tensor(array.astype(np.int64, copy=False), device=device)


def _host_ints(values) -> np.ndarray:
    if isinstance(values, Tensor):
        return np.asarray(backend.move_array(values._array, backend.CPU)).astype(np.int64)
    return np.asarray(list(values), dtype=np.int64)


def _batch_sizes(lengths: np.ndarray) -> np.ndarray:
    """Number of sequences longer than t, for each step t (lengths sorted decreasing)."""
    return (lengths[None, :] > np.arange(lengths[0])[:, None]).sum(axis=1)


def pack_padded_sequence(
    input: Tensor, lengths, batch_first: bool = False, enforce_sorted: bool = True
) -> PackedSequence:
    r"""Pack a padded batch (T, B, *) (or (B, T, *) with ``batch_first``) of sequences
    of the given ``lengths``. With ``enforce_sorted=False`` the lengths may come in any
    order; the batch is sorted by decreasing length and the order is remembered.

    Example::

        >>> x = ember.randn(5, 3, 8)  # 5 steps, 3 sequences
        >>> packed = pack_padded_sequence(x, [5, 2, 4], enforce_sorted=False)
        >>> packed.batch_sizes
        tensor([3, 3, 2, 2, 1])
    """
    if isinstance(lengths, Tensor) and lengths.dim() != 1:
        raise RuntimeError(
            "'lengths' argument should be a 1D CPU int64 tensor, but got "
            f"{lengths.dim()}D {lengths.dtype} tensor"
        )
    lengths = _host_ints(lengths)
    if input.dim() < 2:
        raise ValueError(
            f"pack_padded_sequence: input must have at least 2 dims (time, batch), got "
            f"shape {list(input.shape)}"
        )
    batch_dim = 0 if batch_first else 1
    steps, batch = input.shape[1 - batch_dim], input.shape[batch_dim]
    if lengths.size != batch:
        raise RuntimeError(
            f"Expected `len(lengths)` to be equal to batch_size, but got {lengths.size} "
            f"(batch_size={batch})"
        )
    if batch == 0 or lengths.min() <= 0:
        raise RuntimeError(
            "Length of all samples has to be greater than 0, but found an element in "
            "'lengths' that is <= 0"
        )
    if lengths.max() > steps:
        raise RuntimeError(
            f"pack_padded_sequence: a length ({int(lengths.max())}) exceeds the input's "
            f"{steps} time steps"
        )
    if enforce_sorted:
        if np.any(lengths[1:] > lengths[:-1]):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` "
                "is True. You can pass `enforce_sorted=False` to pack_padded_sequence "
                "and/or pack_sequence to sidestep this requirement if you do not need "
                "ONNX exportability."
            )
        order = np.arange(batch)
        sorted_indices = None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = _index_tensor(order, input.device)
    batch_sizes = _batch_sizes(lengths[order])
    # flat row of (step t, original sequence order[k]) in input viewed as (T*B, *) or (B*T, *)
    rows = [
        t * batch + order[:size] if not batch_first else order[:size] * steps + t
        for t, size in enumerate(batch_sizes)
    ]
    flat = input.reshape(steps * batch, *input.shape[2:])
    data = index_select(flat, 0, _index_tensor(np.concatenate(rows), input.device))
    return PackedSequence(data, _index_tensor(batch_sizes, "cpu"), sorted_indices, None)


def pad_packed_sequence(
    sequence: PackedSequence,
    batch_first: bool = False,
    padding_value: float = 0.0,
    total_length: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The inverse of :func:`pack_padded_sequence`: returns the padded batch
    (T, B, *) (or (B, T, *) with ``batch_first``), in the original batch order, and the
    lengths (int64, CPU). ``total_length`` pads to that many steps.

    Example::

        >>> padded, lengths = pad_packed_sequence(packed, batch_first=True)
    """
    data, batch_sizes, _, unsorted_indices = sequence
    sizes = _host_ints(batch_sizes)
    steps, batch = sizes.size, int(sizes[0])
    if total_length is not None:
        if total_length < steps:
            raise ValueError(
                "Expected total_length to be at least the length of the longest sequence "
                f"in input, but got total_length={total_length} and max sequence length "
                f"being {steps}"
            )
        steps = total_length
    sorted_lengths = (sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    n = data.shape[0]
    rows = np.full((steps, batch), n, np.int64)  # row n: the padding row
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    for t, size in enumerate(sizes):
        rows[t, :size] = offsets[t] + np.arange(size)
    lengths = sorted_lengths
    if unsorted_indices is not None:
        unsorted = _host_ints(unsorted_indices)
        rows, lengths = rows[:, unsorted], sorted_lengths[unsorted]
    if batch_first:
        rows = rows.T
    source = data
    if (rows == n).any():
        padding = creation.full(
            (1, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device
        )
        source = cat([data, padding])
    flat = index_select(source, 0, _index_tensor(rows.reshape(-1), data.device))
    padded = flat.reshape(*rows.shape, *data.shape[1:])
    return padded, _index_tensor(lengths, "cpu")


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


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list[Tensor]:
    r"""Split a padded batch back into its sequences: a list of (L_i, *) tensors.

    Example::

        >>> seqs = unpad_sequence(pad_sequence([a, b]), ember.tensor([len(a), len(b)]))
    """
    lengths = _host_ints(lengths)
    if batch_first:
        return [padded_sequences[b, :length] for b, length in enumerate(lengths.tolist())]
    return [padded_sequences[:length, b] for b, length in enumerate(lengths.tolist())]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    r"""Pack a list of (L_i, *) tensors: ``pad_sequence`` then ``pack_padded_sequence``.

    Example::

        >>> pack_sequence([ember.ones(3), ember.ones(2)]).batch_sizes
        tensor([2, 2, 1])
    """
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    r"""The inverse of :func:`pack_sequence`: the list of (L_i, *) tensors."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
