"""DistributedSampler: torch's index semantics (padding, drop_last, set_epoch)."""

import warnings

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
    with pytest.warns(UserWarning) as caught:
        again = list(a) + list(b)
    assert [str(w.message)[:57] for w in caught] == [
        f"[rank {r}] DistributedSampler: iterating again over epoch 0" for r in (0, 1)
    ]
    assert again == first  # same epoch: same order
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


def test_reused_epoch_warns_once_per_sampler():
    sampler = DistributedSampler(range(8), 2, 1, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(sampler)
        sampler.set_epoch(1)
        list(sampler)  # a new epoch each time: silent
        list(sampler)
        list(sampler)
        list(DistributedSampler(range(8), 2, 1, shuffle=False))  # order never changes
        unshuffled = DistributedSampler(range(8), 2, 1, shuffle=False)
        list(unshuffled), list(unshuffled)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert messages[0].startswith(
        "[rank 1] DistributedSampler: iterating again over epoch 1 without set_epoch()"
    )


def test_peeking_at_a_batch_then_calling_set_epoch_does_not_warn():
    sampler = DistributedSampler(range(8), 2, 0, seed=1)
    loader = DataLoader(list(range(8)), batch_size=2, sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        next(iter(loader))  # a script looks at one batch first
        for epoch in range(3):
            sampler.set_epoch(epoch)
            for _ in loader:
                pass


@pytest.mark.parametrize("n, replicas", [(10, 3), (7, 4), (2, 5), (0, 2), (9, 3)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_exact_mode_covers_each_sample_once(n, replicas, shuffle):
    shards = [
        list(DistributedSampler(range(n), replicas, r, shuffle=shuffle, mode="exact"))
        for r in range(replicas)
    ]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert [len(s) for s in shards] == [len(range(r, n, replicas)) for r in range(replicas)]
    for r, shard in enumerate(shards):
        sampler = DistributedSampler(range(n), replicas, r, shuffle=shuffle, mode="exact")
        assert len(sampler) == sampler.valid_count() == len(shard)
    # the same order as "pad", without the padded tail
    padded = DistributedSampler(range(n), replicas, 0, shuffle=shuffle, seed=0)
    assert list(padded)[: padded.valid_count()] == shards[0]


def test_modes_and_drop_last_alias():
    data = range(10)
    assert list(DistributedSampler(data, 3, 1, shuffle=False, mode="drop")) == list(
        DistributedSampler(data, 3, 1, shuffle=False, drop_last=True)
    )
    assert DistributedSampler(data, 3, 1, drop_last=True).mode == "drop"
    assert DistributedSampler(data, 3, 1).mode == "pad"
    assert DistributedSampler(data, 3, 1, mode="drop").drop_last
    with pytest.raises(ValueError, match="mode must be one of"):
        DistributedSampler(data, 3, 1, mode="even")
    with pytest.raises(ValueError, match="drop_last=True contradicts mode='exact'"):
        DistributedSampler(data, 3, 1, mode="exact", drop_last=True)


def test_padding_helpers_give_an_exact_evaluation_metric():
    """10 samples on 4 ranks: "pad" gives 12 (2 duplicates); a metric that averages over
    everything is biased by them; one that keeps valid_count() per rank is exact."""
    labels = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1]
    predictions = [1, 0, 0, 1, 0, 1, 1, 0, 1, 0]  # 7 of 10 right
    samplers = [DistributedSampler(labels, 4, r, shuffle=False) for r in range(4)]
    assert [s.valid_count() for s in samplers] == [3, 3, 2, 2]
    assert [s.is_padding(2) for s in samplers] == [False, False, True, True]
    right = total = right_all = total_all = 0
    for s in samplers:
        hits = [predictions[i] == labels[i] for i in s]
        right_all, total_all = right_all + sum(hits), total_all + len(hits)
        keep = [h for p, h in enumerate(hits) if not s.is_padding(p)]
        assert keep == hits[: s.valid_count()]
        right, total = right + sum(keep), total + len(keep)
    assert (right, total) == (7, 10)
    assert (right_all, total_all) == (9, 12)  # samples 0 and 1 counted twice
    exact = [DistributedSampler(labels, 4, r, shuffle=False, mode="exact") for r in range(4)]
    assert sum(predictions[i] == labels[i] for s in exact for i in s) == 7
    with pytest.raises(IndexError, match="position 3 is outside this rank's 3 samples"):
        samplers[0].is_padding(3)
    assert DistributedSampler(labels, 4, 3, mode="drop").valid_count() == 2


@pytest.mark.mpi(min_size=2)
def test_padded_shards_count_each_sample_once_across_ranks():
    import ember
    import ember.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("mpi")
    n = 3 * dist.get_world_size() + 1  # never divides evenly
    sampler = DistributedSampler(range(n), seed=2)  # rank and world from the process group
    seen = ember.zeros(n, dtype=ember.int64)
    for position, index in enumerate(sampler):
        if not sampler.is_padding(position):
            seen.data[index] += 1
    dist.all_reduce(seen)
    assert seen.tolist() == [1] * n
