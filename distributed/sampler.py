"""DistributedSampler (``ember.utils.data.distributed``): each rank reads its own share
of a dataset, with torch's exact index semantics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

from ..core.creation import randperm
from ..core.random import Generator
from ..core.utils.data import _worker
from ..core.utils.data.sampler import Sampler
from . import process_group
from .process_group import get_rank, get_world_size, is_initialized

_MODES = ("pad", "drop", "exact")


class DistributedSampler(Sampler):
    r"""Indices of ``dataset`` for one rank: every ``num_replicas``-th index of a
    (shuffled) order, starting at ``rank``.

    What happens when ``len(dataset)`` does not divide by ``num_replicas`` is the
    ``mode``:

    - ``"pad"`` (torch's default, ``drop_last=False``): the order is padded by repeating
      its first indices so each rank gets ``ceil(len / num_replicas)`` samples; every
      rank runs the same number of steps, which DistributedDataParallel needs. The
      padded duplicates are the last ones of a rank's shard: ``valid_count()`` says how
      many of this rank's samples are real, ``is_padding(position)`` whether one is a
      duplicate, so an evaluation can count every sample exactly once.
    - ``"drop"`` (``drop_last=True``): the tail is dropped so the length divides evenly.
    - ``"exact"``: no padding and nothing dropped; ranks get uneven shards
      (``ceil`` or ``floor`` of ``len / num_replicas``) and together cover each sample
      exactly once. For exact evaluation; to train on it with DistributedDataParallel,
      wrap the loop in ``with ddp.join():`` (ranks run different step counts).

    ``drop_last`` is kept as an alias (``mode`` wins where both are given and agree;
    they must not contradict). Call ``set_epoch(epoch)`` at each epoch to reshuffle:
    the order depends only on ``seed + epoch``, so all ranks agree; iterating a shuffled
    sampler twice without it warns (once) that the epoch's order is being reused.

    Example::

        >>> sampler = DistributedSampler(dataset)
        >>> loader = DataLoader(dataset, batch_size=32, sampler=sampler)
        >>> for epoch in range(epochs):
        ...     sampler.set_epoch(epoch)
        ...     for x, y in loader: ...
        >>> # exact accuracy over a padded evaluation shard:
        >>> correct = sum(preds == y for preds, y in results[: sampler.valid_count()])
    """

    def __init__(
        self,
        dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        mode: str | None = None,
    ):
        if num_replicas is None or rank is None:
            if not is_initialized():
                raise RuntimeError(
                    "DistributedSampler needs num_replicas and rank, or an initialized "
                    "process group (call dist.init_process_group first)"
                )
            num_replicas = get_world_size() if num_replicas is None else num_replicas
            rank = get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(
                f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        if mode is None:
            mode = "drop" if drop_last else "pad"
        elif mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        elif drop_last and mode != "drop":
            raise ValueError(f"drop_last=True contradicts mode={mode!r} (it means mode='drop')")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.mode = mode
        self.drop_last = mode == "drop"
        n = len(dataset)
        if mode == "exact":
            self.num_samples = len(range(rank, n, num_replicas))
            self.total_size = n
        else:
            if mode == "drop" and n % num_replicas != 0:
                self.num_samples = math.ceil((n - num_replicas) / num_replicas)
            else:
                self.num_samples = math.ceil(n / num_replicas)
            self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self._iterated_epoch = None
        self._warned = False

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            self._check_reshuffled()
            g = Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if self.mode == "pad":
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[: self.total_size]
        assert len(indices) == self.total_size
        own = indices[self.rank : self.total_size : self.num_replicas]
        assert len(own) == self.num_samples
        return iter(own)

    def _check_reshuffled(self) -> None:
        if self._iterated_epoch == self.epoch and not self._warned:
            self._warned = True
            warnings.warn(
                f"[rank {self.rank}] DistributedSampler: iterating again over epoch "
                f"{self.epoch} without set_epoch(); every such epoch repeats the same order. "
                "Call sampler.set_epoch(epoch) at the start of each epoch.",
                UserWarning,
                stacklevel=3,
            )
        self._iterated_epoch = self.epoch

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (the same order on every rank)."""
        self.epoch = epoch
        # set_epoch means the script manages epochs: iterating its epoch again after a
        # peek at one batch (set_epoch(0) after next(iter(loader))) is what it asked for
        self._iterated_epoch = None

    def valid_count(self) -> int:
        """How many of this rank's samples are real (the first ones of its shard); the
        rest, in ``"pad"`` mode, are duplicates added to even out the ranks."""
        if self.mode != "pad":
            return self.num_samples
        return len(range(self.rank, len(self.dataset), self.num_replicas))

    def is_padding(self, position: int) -> bool:
        """Whether this rank's ``position``-th sample is a padded duplicate."""
        if not 0 <= position < self.num_samples:
            raise IndexError(
                f"position {position} is outside this rank's {self.num_samples} samples"
            )
        return position >= self.valid_count()


def _rank_if_initialized() -> int | None:
    return process_group.get_rank() if process_group.is_initialized() else None


# DataLoader workers' seeds differ per rank (see core/utils/data/_worker.py)
_worker.register_rank_source(_rank_if_initialized)
