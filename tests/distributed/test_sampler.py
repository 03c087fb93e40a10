"""DistributedSampler: torch's index semantics (padding, drop_last, set_epoch)."""

import pytest
import torch.utils.data.distributed as torch_dist_data

from ember.utils.data import DataLoader
from ember.utils.data.distributed import DistributedSampler


@pytest.mark.parametrize("n", [0, 1, 7, 10, 12])
@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
@pytest.mark.parametrize("drop_last", [False, True])
def test_unshuffled_matches_torch(n, replicas, drop_last):
    data = list(range(n))
    for rank in range(replicas):
        ours = DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch_dist_data.DistributedSampler(
            data, replicas, rank, shuffle=False, drop_last=drop_last
        )
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs) == ours.num_samples
        assert ours.total_size == theirs.total_size


@pytest.mark.parametrize(
    "n, replicas, drop_last", [(10, 3, False), (10, 3, True), (4, 3, False), (2, 5, False)]
)
def test_shuffled_shards_partition_a_padded_permutation(n, replicas, drop_last):
    shards = [
        list(DistributedSampler(range(n), replicas, r, seed=5, drop_last=drop_last))
        for r in range(replicas)
    ]
    assert len({len(s) for s in shards}) == 1
    order = [shards[i % replicas][i // replicas] for i in range(len(shards[0]) * replicas)]
    if drop_last:
        assert len(order) == n - n % replicas and len(set(order)) == len(order)
    else:
        # the order is one permutation of range(n), padded by repeating its own start
        assert sorted(order[:n]) == list(range(n))
        assert order[n:] == (order[:n] * (len(order) // n + 1))[: len(order) - n]
    assert order != sorted(order) or n <= 2


def test_set_epoch_reshuffles_the_same_way_on_every_rank():
    a = DistributedSampler(range(20), 2, 0, seed=3)
    b = DistributedSampler(range(20), 2, 1, seed=3)
    first = list(a) + list(b)
    assert list(a) + list(b) == first  # same epoch: same order
    a.set_epoch(1)
    b.set_epoch(1)
    second = list(a) + list(b)
    assert second != first and sorted(second) == sorted(first) == list(range(20))
    c = DistributedSampler(range(20), 2, 0, seed=4)
    assert list(c) != first[:10]


def test_invalid_arguments():
    with pytest.raises(
        ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"
    ):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be at least 1"):
        DistributedSampler(range(4), num_replicas=0, rank=0)


def test_with_dataloader():
    sampler = DistributedSampler(list(range(10)), 3, 2, shuffle=False)
    batches = [b.tolist() for b in DataLoader(list(range(10)), batch_size=2, sampler=sampler)]
    assert batches == [[2, 5], [8, 1]]
