"""DistributedSampler (``ember.utils.data.distributed``): each rank reads its own share
of a dataset, with torch's exact index semantics."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..core.creation import randperm
from ..core.random import Generator
from ..core.utils.data.sampler import Sampler
from .process_group import get_rank, get_world_size, is_initialized


class DistributedSampler(Sampler):
    r"""Indices of ``dataset`` for one rank: every ``num_replicas``-th index of a
    (shuffled) order, starting at ``rank``.

    Without ``drop_last`` the order is padded by repeating its first indices so each
    rank gets ``ceil(len / num_replicas)`` samples (every rank then runs the same number
    of steps, which DistributedDataParallel needs); with it, the tail is dropped so the
    length divides evenly. Call ``set_epoch(epoch)`` at each epoch to reshuffle: the
    order depends only on ``seed + epoch``, so all ranks agree.

    Example::

        >>> sampler = DistributedSampler(dataset)
        >>> loader = DataLoader(dataset, batch_size=32, sampler=sampler)
        >>> for epoch in range(epochs):
        ...     sampler.set_epoch(epoch)
        ...     for x, y in loader: ...
    """

    def __init__(
        self,
        dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
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
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            g = Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
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

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (the same order on every rank)."""
        self.epoch = epoch
