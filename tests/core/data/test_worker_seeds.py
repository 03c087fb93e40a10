"""DataLoader workers get one RNG stream per (seed, rank, worker, epoch)."""

import random

import numpy as np
import pytest

import ember
from ember.core.utils.data import _worker
from ember.core.utils.data.sampler import _draw_seed
from ember.distributed import process_group
from ember.utils.data import DataLoader, Dataset, get_worker_info


class Draws(Dataset):
    """Each sample: who made it and one draw from each global generator a worker seeds."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return i, info.id, info.seed, np.random.rand(), ember.rand(1).item(), random.random()


def as_rank(monkeypatch, rank):
    if rank is None:
        monkeypatch.setattr(process_group, "is_initialized", lambda: False)
    else:
        monkeypatch.setattr(process_group, "is_initialized", lambda: True)
        monkeypatch.setattr(process_group, "get_rank", lambda group=None: rank)


def epochs(seed, n=2, **kwargs):
    """Per epoch, the rows (i, worker, seed, np draw, ember draw, random draw) in order."""
    loader = DataLoader(
        Draws(),
        batch_size=2,
        num_workers=2,
        generator=ember.Generator().manual_seed(seed),
        **kwargs,
    )
    out = []
    for _ in range(n):
        rows = [row for batch in loader for row in zip(*(t.tolist() for t in batch))]
        assert [r[0] for r in rows] == list(range(8))
        assert [r[1] for r in rows] == [0, 0, 1, 1, 0, 0, 1, 1]
        out.append(rows)
    return out


def draws(rows):
    return [r[3:] for r in rows]


def test_lone_process_seeds_are_base_plus_worker_id(monkeypatch):
    as_rank(monkeypatch, None)
    (rows,) = epochs(5, n=1)
    base = _draw_seed(ember.Generator().manual_seed(5))
    assert {(r[1], r[2]) for r in rows} == {(0, base), (1, base + 1)}


def test_ranks_get_different_streams_and_each_reproduces(monkeypatch):
    runs = {}
    for rank in (0, 1, 0):
        as_rank(monkeypatch, rank)
        runs.setdefault(rank, []).append(epochs(7))
    (a0, a1), (b0, b1) = runs[0]
    assert a0 == b0 and a1 == b1  # the same seed and rank reproduce exactly
    (c0, c1) = runs[1][0]
    for mine, theirs in ((a0, c0), (a1, c1)):
        draws_0, draws_1 = draws(mine), draws(theirs)
        assert all(x != y for r0, r1 in zip(draws_0, draws_1) for x, y in zip(r0, r1))
    base = _draw_seed(ember.Generator().manual_seed(7))
    assert {(r[1], r[2]) for r in c0} == {(w, _worker.rank_base_seed(base, 1) + w) for w in (0, 1)}
    assert _worker.rank_base_seed(base, 0) != base != _worker.rank_base_seed(base, 1)


@pytest.mark.parametrize("persistent", [False, True])
def test_epochs_and_workers_differ(monkeypatch, persistent):
    as_rank(monkeypatch, 3)
    e0, e1 = epochs(11, persistent_workers=persistent)
    assert {r[2] for r in e0}.isdisjoint({r[2] for r in e1})  # fresh seeds every epoch
    assert all(x != y for r0, r1 in zip(draws(e0), draws(e1)) for x, y in zip(r0, r1))
    worker0 = [r[3:] for r in e0 if r[1] == 0]
    worker1 = [r[3:] for r in e0 if r[1] == 1]
    assert all(x != y for r0, r1 in zip(worker0, worker1) for x, y in zip(r0, r1))


def test_persistent_workers_reseed_each_epoch_like_fresh_ones(monkeypatch):
    # Reseeding per epoch makes an epoch's streams depend on (seed, rank, worker, epoch)
    # only, so a job resumed at epoch e from a checkpoint sees the same augmentations.
    as_rank(monkeypatch, 2)
    assert epochs(13, n=3, persistent_workers=True) == epochs(13, n=3)


def test_process_rank_reads_the_process_group_only_when_initialized(monkeypatch):
    def no_rank(group=None):
        raise AssertionError("get_rank called without a process group")

    monkeypatch.setattr(process_group, "is_initialized", lambda: False)
    monkeypatch.setattr(process_group, "get_rank", no_rank)
    assert _worker._process_rank() is None
    as_rank(monkeypatch, 4)
    assert _worker._process_rank() == 4


@pytest.fixture
def keep_global_rngs():
    states = random.getstate(), np.random.get_state(), ember.get_rng_state()
    yield
    random.setstate(states[0])
    np.random.set_state(states[1])
    ember.set_rng_state(states[2])


def test_seed_worker_seeds_every_global_generator(keep_global_rngs):
    _worker.seed_worker(2**40 + 3)
    first = (random.random(), np.random.rand(), ember.rand(1).item())
    _worker.seed_worker(3)  # the same low 32 bits: NumPy must still differ
    other = (random.random(), np.random.rand(), ember.rand(1).item())
    _worker.seed_worker(2**40 + 3)
    assert (random.random(), np.random.rand(), ember.rand(1).item()) == first
    assert all(x != y for x, y in zip(first, other))
