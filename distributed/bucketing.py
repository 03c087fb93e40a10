"""Gradient buckets for DistributedDataParallel: which parameters share a bucket, and the
flat contiguous buffer each bucket reduces in one collective.

Parameters are packed in the order given (DDP passes reverse registration order at
first, the order gradients actually arrived after the first iteration), one stream of
buckets per (dtype, device). The first bucket is kept small (1 MB, like torch) so the
first all-reduce starts early in backward; later ones fill up to ``bucket_cap_mb``.
"""

from __future__ import annotations

from ..core.backend import device_context, device_of, xp_of
from ..core.tensor import Tensor, wrap_array

FIRST_BUCKET_BYTES = 1024 * 1024


def compute_bucket_assignment_by_size(tensors, size_limits) -> list[list[int]]:
    r"""Indices of ``tensors`` grouped into buckets of at most ``size_limits`` bytes.

    ``size_limits`` applies in turn (the last repeats): ``[first, cap]``. A bucket closes
    as soon as it reaches its limit, so a tensor bigger than the cap gets a bucket of its
    own. Buckets never mix dtypes or devices; they come back ordered by their first index.

    Example::

        >>> compute_bucket_assignment_by_size([a, b, c], [1 << 20, 25 << 20])
        [[0, 1], [2]]
    """
    if not size_limits or any(s <= 0 for s in size_limits):
        raise ValueError(f"size_limits must be positive byte counts, got {size_limits}")
    open_buckets: dict = {}  # (dtype, device) -> [indices, bytes, limit position]
    result: list[list[int]] = []
    for i, t in enumerate(tensors):
        data = t._array if isinstance(t, Tensor) else t
        key = (str(data.dtype), str(device_of(data)))
        entry = open_buckets.setdefault(key, [[], 0, 0])
        entry[0].append(i)
        entry[1] += data.size * data.itemsize
        if entry[1] >= size_limits[min(entry[2], len(size_limits) - 1)]:
            result.append(entry[0])
            open_buckets[key] = [[], 0, entry[2] + 1]
    result.extend(e[0] for e in open_buckets.values() if e[0])
    result.sort(key=lambda b: b[0])
    return result


class Bucket:
    """One flat buffer holding the gradients of ``indices`` (into DDP's parameter list),
    with a view per parameter shaped like it."""

    __slots__ = ("index", "indices", "buffer", "tensor", "views", "pending", "future", "params")

    def __init__(self, index: int, indices: list[int], params: list[Tensor]):
        self.index = index
        self.indices = indices
        self.params = [params[i] for i in indices]
        first = self.params[0]._array
        xp = xp_of(first)
        total = sum(p._array.size for p in self.params)
        with device_context(device_of(first)):
            self.buffer = xp.zeros(total, first.dtype)
        self.tensor = wrap_array(self.buffer)
        self.views = []
        offset = 0
        for p in self.params:
            n = p._array.size
            self.views.append(self.buffer[offset : offset + n].reshape(p._array.shape))
            offset += n
        self.pending = len(indices)
        self.future = None

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes)

    def __repr__(self) -> str:
        return f"<Bucket {self.index}: {len(self.indices)} params, {self.nbytes} bytes>"


def build_buckets(params: list[Tensor], order: list[int], size_limits) -> list[Bucket]:
    """Buckets over ``params`` packed in ``order`` (indices into ``params``)."""
    groups = compute_bucket_assignment_by_size([params[i] for i in order], size_limits)
    return [Bucket(b, [order[j] for j in group], params) for b, group in enumerate(groups)]
