"""Datasets: the map-style and iterable bases, tensor/subset/concat/stack wrappers and
``random_split``, with PyTorch's names and semantics."""

from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from ... import backend
from ...random import generator_for
from ...tensor import Tensor, wrap_array


class Dataset:
    r"""A map-style dataset: ``dataset[i]`` returns sample ``i``; most also define ``__len__``.

    Example::

        >>> class Squares(Dataset):
        ...     def __len__(self):
        ...         return 10
        ...     def __getitem__(self, i):
        ...         return i * i
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    r"""A dataset that is a stream: subclasses define ``__iter__``. With worker processes,
    each worker iterates its own copy; use :func:`get_worker_info` to shard.

    Example::

        >>> class Count(IterableDataset):
        ...     def __iter__(self):
        ...         return iter(range(5))
    """

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other: Dataset) -> ChainDataset:
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    r"""Samples are ``tuple(t[i] for t in tensors)``; all tensors share their first dim.

    Example::

        >>> ds = TensorDataset(ember.randn(100, 3), ember.arange(100))
        >>> x, y = ds[0]
    """

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset expects tensors, got {type(t).__name__}")
            if t.ndim == 0:
                raise ValueError(
                    "TensorDataset tensors need at least one dimension, got a 0-d tensor"
                )
        sizes = [t.shape[0] for t in tensors]
        if any(s != sizes[0] for s in sizes):
            raise ValueError(f"Size mismatch between tensors: first dimensions are {sizes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(_index(t, index) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def _collated_batch(self, indices):
        """``default_collate([self[i] for i in indices])`` as one gather per tensor."""
        idx = index_array(indices)
        if idx is None or any(t.requires_grad for t in self.tensors):
            return NotImplemented
        out = []
        for t in self.tensors:
            xp = backend.xp_of(t._array)
            out.append(wrap_array(t._array[idx if xp is np else xp.asarray(idx)]))
        return out


def index_array(indices) -> np.ndarray | None:
    """``indices`` as a 1-D int64 array, or None when they are not plain integers."""
    if not indices:
        return None
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        return None
    return idx.astype(np.int64, copy=False)


def _index(t: Tensor, index):
    if t.requires_grad:
        return t[index]  # keep the graph, as PyTorch does
    return wrap_array(t._array[index])


class StackDataset(Dataset):
    r"""Zips datasets of equal length: positional datasets give tuple samples, keyword
    datasets give dict samples.

    Example::

        >>> ds = StackDataset(image=images, label=labels)
        >>> ds[0]  # {'image': images[0], 'label': labels[0]}
    """

    def __init__(self, *args: Dataset, **kwargs: Dataset):
        if args and kwargs:
            raise ValueError(
                "Supported either ``tuple``- (via ``args``) or ``dict``- (via ``kwargs``) like "
                "input/output, but both types are given."
            )
        datasets = args or kwargs
        if not datasets:
            raise ValueError("At least one dataset should be passed")
        values = list(datasets.values()) if kwargs else list(args)
        self._length = len(values[0])
        if any(len(d) != self._length for d in values):
            raise ValueError(f"Size mismatch between datasets: {[len(d) for d in values]}")
        self.datasets = datasets

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self) -> int:
        return self._length


class ConcatDataset(Dataset):
    r"""The concatenation of map-style datasets.

    Example::

        >>> ds = ConcatDataset([train_a, train_b])  # or train_a + train_b
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise ValueError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        if which == len(self.datasets):
            raise IndexError(f"index {idx} is out of range for ConcatDataset of length {len(self)}")
        offset = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - offset]


class ChainDataset(IterableDataset):
    r"""Chains iterable datasets one after the other.

    Example::

        >>> ds = ChainDataset([stream_a, stream_b])
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            total += len(d)
        return total


class Subset(Dataset):
    r"""The samples of ``dataset`` at ``indices``.

    Example::

        >>> evens = Subset(ds, range(0, len(ds), 2))
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def _collated_batch(self, indices):
        gather = getattr(self.dataset, "_collated_batch", None)
        if gather is None or index_array(indices) is None:
            return NotImplemented
        return gather([self.indices[i] for i in indices])

    def __getitems__(self, indices: list[int]) -> list:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    r"""Split ``dataset`` into non-overlapping random subsets of the given lengths, or of
    the given fractions (summing to 1; the remainder goes round-robin to the first splits).

    Example::

        >>> train, val = random_split(ds, [0.8, 0.2], generator=ember.Generator().manual_seed(42))
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
        sizes = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(
                    f"Length of split at index {i} is 0. This might result in an empty dataset.",
                    stacklevel=2,
                )
        lengths = sizes
    if any(not isinstance(x, int) or x < 0 for x in lengths):
        raise ValueError(
            f"lengths must be non-negative integers or fractions summing to 1, got {lengths}"
        )
    if sum(lengths) != n:
        raise ValueError(
            f"Sum of input lengths ({sum(lengths)}) does not equal the length of the input "
            f"dataset ({n})!"
        )
    indices = generator_for(generator, "cpu").rng.permutation(n).tolist()
    return [
        Subset(dataset, indices[end - length : end])
        for end, length in zip(itertools.accumulate(lengths), lengths)
    ]
