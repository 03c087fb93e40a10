"""ember.utils.data: collate, datasets, samplers and DataLoader, checked against
torch.utils.data where PyTorch defines the behaviour."""

import collections
import multiprocessing
import os
import time

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import ember
from ember.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)

Point = collections.namedtuple("Point", ["x", "y"])


def same(ours, theirs):
    """Structural equality of an ember result and a torch result."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, ember.Tensor), f"{type(ours)} is not a tensor"
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), (
            ours.dtype,
            theirs.dtype,
        )
        assert tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        return
    assert type(ours) is type(theirs), f"{type(ours)} != {type(theirs)}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)
        for k in theirs:
            same(ours[k], theirs[k])
    elif isinstance(theirs, list | tuple):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same(a, b)
    else:
        assert ours == theirs


def to_ember(sample):
    if isinstance(sample, torch.Tensor):
        return ember.tensor(sample.numpy())
    if isinstance(sample, dict):
        return type(sample)((k, to_ember(v)) for k, v in sample.items())
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(to_ember(v) for v in sample))
    if isinstance(sample, list | tuple):
        return type(sample)(to_ember(v) for v in sample)
    return sample


# -- collate --------------------------------------------------------------------------------

rng = np.random.default_rng(0)
BATCHES = {
    "tensors": [torch.tensor(rng.normal(size=(2, 3)).astype(np.float32)) for _ in range(4)],
    "int_tensors": [torch.tensor([i, i + 1]) for i in range(3)],
    "arrays": [rng.normal(size=3) for _ in range(3)],
    "uint8_arrays": [np.full((2, 2), i, np.uint8) for i in range(3)],
    "np_scalars": [np.float32(i) for i in range(3)],
    "np_ints": [np.int32(i) for i in range(3)],
    "floats": [0.5, 1.5, 2.5],
    "ints": [1, 2, 3],
    "bools": [True, False, True],
    "strings": ["a", "bb", "c"],
    "tuples": [(torch.ones(2) * i, i) for i in range(3)],
    "lists": [[torch.ones(2) * i, float(i)] for i in range(3)],
    "dicts": [{"x": torch.ones(2) * i, "y": i, "name": f"s{i}"} for i in range(3)],
    "ordered": [collections.OrderedDict(b=i, a=float(i)) for i in range(2)],
    "namedtuples": [Point(torch.ones(2) * i, i) for i in range(3)],
    "nested": [{"a": [(np.ones(2) * i, {"b": i})]} for i in range(3)],
}


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_default_collate_matches_torch(name):
    batch = BATCHES[name]
    same(default_collate([to_ember(s) for s in batch]), tud.default_collate(batch))


@pytest.mark.parametrize("name", ["arrays", "np_scalars", "dicts", "tuples", "nested", "strings"])
def test_default_convert_matches_torch(name):
    for sample in BATCHES[name]:
        same(default_convert(to_ember(sample)), tud.default_convert(sample))


def test_collate_errors():
    with pytest.raises(
        RuntimeError,
        match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 and \[3\] at entry 1",
    ):
        default_collate([ember.zeros(2), ember.zeros(3)])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="numpy arrays"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_collate_mixed_dtypes_promote():
    out = default_collate([ember.tensor([1, 2]), ember.tensor([0.5, 1.0])])
    assert out.dtype == ember.float32
    np.testing.assert_array_equal(out.numpy(), [[1, 2], [0.5, 1.0]])


# -- datasets -------------------------------------------------------------------------------


class Squares(Dataset):
    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i * i


def test_tensor_dataset():
    x, y = ember.randn(5, 3), ember.arange(5)
    ds = TensorDataset(x, y)
    assert len(ds) == 5
    xi, yi = ds[2]
    np.testing.assert_array_equal(xi.numpy(), x.numpy()[2])
    assert yi.item() == 2
    with pytest.raises(
        ValueError, match=r"Size mismatch between tensors: first dimensions are \[5, 4\]"
    ):
        TensorDataset(x, ember.arange(4))
    with pytest.raises(TypeError, match="expects tensors"):
        TensorDataset(np.zeros(3))


def test_subset_concat_stack_chain():
    sub = Subset(Squares(), [1, 3, 5])
    assert len(sub) == 3 and sub[1] == 9 and sub.__getitems__([0, 2]) == [1, 25]
    cat = ConcatDataset([Squares(3), Squares(2)])
    assert len(cat) == 5 and [cat[i] for i in range(5)] == [0, 1, 4, 0, 1]
    assert cat[-1] == 1 and cat.cumulative_sizes == [3, 5]
    assert len(Squares(3) + Squares(4)) == 7
    with pytest.raises(ValueError, match="empty iterable"):
        ConcatDataset([])
    with pytest.raises(ValueError, match="does not support IterableDataset"):
        ConcatDataset([Stream(3)])
    st = StackDataset(Squares(3), Squares(3))
    assert st[2] == (4, 4)
    assert StackDataset(a=Squares(3), b=Squares(3))[1] == {"a": 1, "b": 1}
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        StackDataset(Squares(3), Squares(4))
    chain = ChainDataset([Stream(2), Stream(3)])
    assert list(chain) == [0, 1, 0, 1, 2] and len(chain) == 5
    assert list(Stream(1) + Stream(2)) == [0, 0, 1]


def test_random_split():
    g = ember.Generator().manual_seed(0)
    parts = random_split(range(10), [3, 7], generator=g)
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    again = random_split(range(10), [3, 7], generator=ember.Generator().manual_seed(0))
    assert list(again[0]) == list(parts[0])
    fractions = [0.33, 0.33, 0.34]
    ours = random_split(range(10), fractions, generator=g)
    theirs = tud.random_split(range(10), fractions)
    assert [len(p) for p in ours] == [len(p) for p in theirs]
    with pytest.raises(ValueError, match=r"Sum of input lengths \(9\) does not equal"):
        random_split(range(10), [4, 5])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(range(10), [1.5, -0.5])


# -- samplers -------------------------------------------------------------------------------


def test_sequential_and_random_sampler():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    s = RandomSampler(range(10), generator=ember.Generator().manual_seed(1))
    first = list(s)
    assert sorted(first) == list(range(10)) and len(s) == 10
    assert list(RandomSampler(range(10), generator=ember.Generator().manual_seed(1))) == first
    assert list(s) != first  # the generator advances between epochs
    more = list(RandomSampler(range(4), num_samples=10, generator=ember.Generator().manual_seed(0)))
    assert (
        len(more) == 10
        and sorted(more[:4]) == list(range(4))
        and sorted(more[4:8]) == list(range(4))
    )
    rep = list(RandomSampler(range(3), replacement=True, num_samples=50))
    assert len(rep) == 50 and set(rep) <= {0, 1, 2}
    ember.manual_seed(3)
    a = list(RandomSampler(range(20)))
    ember.manual_seed(3)
    assert list(RandomSampler(range(20))) == a
    with pytest.raises(TypeError, match="replacement should be a boolean value"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(
        ValueError, match="num_samples should be a positive integer value, but got num_samples=0"
    ):
        RandomSampler(range(3), num_samples=0)


def test_subset_random_and_weighted_sampler():
    s = SubsetRandomSampler([10, 20, 30], generator=ember.Generator().manual_seed(0))
    assert sorted(s) == [10, 20, 30] and len(s) == 3
    w = WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=ember.Generator().manual_seed(0))
    draws = np.array(list(w))
    assert len(w) == 400 and 0 not in draws
    assert 0.65 < (draws == 2).mean() < 0.85
    no_rep = list(WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False))
    assert sorted(no_rep) == [0, 1, 2]
    with pytest.raises(
        ValueError, match=r"weights should be a 1d sequence but given weights have shape \(2, 2\)"
    ):
        WeightedRandomSampler([[1, 2], [3, 4]], 2)
    with pytest.raises(RuntimeError, match="without replacement"):
        WeightedRandomSampler([1, 0], 2, replacement=False)
    with pytest.raises(RuntimeError, match="non-negative"):
        WeightedRandomSampler([1, -1], 2)


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_matches_torch(drop_last):
    ours = BatchSampler(SequentialSampler(range(10)), 3, drop_last)
    theirs = tud.BatchSampler(tud.SequentialSampler(range(10)), 3, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)
    with pytest.raises(
        ValueError, match="batch_size should be a positive integer value, but got batch_size=0"
    ):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler(range(3), 2, "no")


# -- DataLoader, main process ---------------------------------------------------------------


def test_loader_batches_len_drop_last():
    ds = TensorDataset(ember.arange(10).float(), ember.arange(10))
    for bs, drop, n in [(3, False, 4), (3, True, 3), (5, False, 2), (1, False, 10)]:
        loader = DataLoader(ds, batch_size=bs, drop_last=drop)
        batches = list(loader)
        assert len(loader) == len(batches) == n
        got = np.concatenate([b[1].numpy() for b in batches])
        np.testing.assert_array_equal(got, np.arange(n * bs if drop else 10))
        assert batches[0][0].dtype == ember.float32 and batches[0][1].dtype == ember.int64


def test_loader_shuffle_reproducible_with_generator():
    ds = Squares(20)

    def epochs(seed):
        loader = DataLoader(
            ds, batch_size=4, shuffle=True, generator=ember.Generator().manual_seed(seed)
        )
        return [[b.tolist() for b in loader] for _ in range(2)]

    a = epochs(7)
    assert a == epochs(7)
    assert a[0] != a[1]  # reshuffled each epoch
    assert sorted(sum(a[0], [])) == sorted(i * i for i in range(20))
    assert a != epochs(8)


def test_loader_batch_sampler_and_no_batching():
    loader = DataLoader(Squares(6), batch_sampler=[[0, 1], [5], [2, 3, 4]])
    assert [b.tolist() for b in loader] == [[0, 1], [25], [4, 9, 16]] and len(loader) == 3
    loader = DataLoader(Squares(3), batch_size=None)
    out = list(loader)
    assert out == [0, 1, 4] and len(loader) == 3  # default_convert leaves ints alone
    arrays = DataLoader([np.ones(2), np.zeros(2)], batch_size=None)
    assert all(isinstance(b, ember.Tensor) for b in arrays)
    custom = DataLoader(Squares(4), batch_size=2, collate_fn=lambda b: sum(b))
    assert list(custom) == [1, 13]
    sampler = DataLoader(Squares(4), batch_size=2, sampler=[3, 2, 1, 0])
    assert [b.tolist() for b in sampler] == [[9, 4], [1, 0]]


def test_loader_argument_errors():
    ds = Squares(4)
    cases = [
        (dict(num_workers=-1), "num_workers option should be non-negative"),
        (dict(timeout=-1), "timeout option should be non-negative"),
        (
            dict(prefetch_factor=2),
            "prefetch_factor option could only be specified in multiprocessing",
        ),
        (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
        (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
        (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive"),
        (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive"),
        (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
        (dict(batch_size=0), "batch_size should be a positive integer value"),
        (dict(num_workers=1, prefetch_factor=0), "prefetch_factor option should be a positive"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            DataLoader(ds, **kwargs)
    for kwargs, msg in [
        (dict(shuffle=True), "expected unspecified shuffle option, but got shuffle=True"),
        (dict(sampler=[0]), "expected unspecified sampler option"),
        (dict(batch_sampler=[[0]]), "expected unspecified batch_sampler option"),
    ]:
        with pytest.raises(ValueError, match=msg):
            DataLoader(Stream(3), **kwargs)
    loader = DataLoader(ds)
    with pytest.raises(
        ValueError, match="batch_size attribute should not be set after DataLoader is initialized"
    ):
        loader.batch_size = 3
    loader.num_workers = 0  # not frozen, as in PyTorch


# -- iterable datasets ----------------------------------------------------------------------


class Stream(IterableDataset):
    """0..n-1, sharded across workers by get_worker_info()."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


def test_iterable_dataset_main_process():
    loader = DataLoader(Stream(7), batch_size=3)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]] and len(loader) == 3
    loader = DataLoader(Stream(7), batch_size=3, drop_last=True)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5]] and len(loader) == 2
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]


# -- DataLoader, worker processes -----------------------------------------------------------


class Noisy(Dataset):
    """Samples that depend on the worker's seeded NumPy and ember generators."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {
            "i": i,
            "np": np.random.rand(),
            "ember": ember.rand(2),
            "x": np.full(3, i, np.float32),
        }


class WhoAmI(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return (i, info.id, info.num_workers, info.seed, len(info.dataset), os.getpid())


class Faulty(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise KeyError(f"bad sample {i}")
        return i


def no_children():
    deadline = time.time() + 5
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


def test_workers_give_same_batches_as_main_process():
    ds = TensorDataset(
        ember.tensor(np.arange(23.0).reshape(23, 1), dtype=ember.float32), ember.arange(23)
    )

    def run(workers):
        loader = DataLoader(
            ds,
            batch_size=4,
            shuffle=True,
            num_workers=workers,
            generator=ember.Generator().manual_seed(3),
        )
        return [[t.numpy().tolist() for t in b] for b in loader]

    assert run(2) == run(0)
    assert no_children()


def test_worker_seeds_reproduce():
    def run():
        loader = DataLoader(
            Noisy(), batch_size=3, num_workers=2, generator=ember.Generator().manual_seed(11)
        )
        return [(b["i"].tolist(), b["np"].tolist(), b["ember"].numpy().tolist()) for b in loader]

    a, b = run(), run()
    assert a == b
    assert [x[0] for x in a] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert a[0][1] != a[1][1]  # different workers, different streams
    assert no_children()


def test_get_worker_info():
    assert get_worker_info() is None
    loader = DataLoader(
        WhoAmI(), batch_size=2, num_workers=2, generator=ember.Generator().manual_seed(0)
    )
    rows = [row for b in loader for row in zip(*(t.tolist() for t in b))]
    assert [r[0] for r in rows] == list(range(8))
    assert [r[1] for r in rows] == [0, 0, 1, 1, 0, 0, 1, 1]  # round-robin batches
    assert {r[2] for r in rows} == {2} and {r[4] for r in rows} == {8}
    seeds = {r[1]: r[3] for r in rows}
    assert seeds[1] == seeds[0] + 1
    assert os.getpid() not in {r[5] for r in rows} and len({r[5] for r in rows}) == 2
    with pytest.raises(RuntimeError, match="Cannot assign attributes"):
        ember.utils.data.WorkerInfo(id=0).id = 1


def test_worker_exception_propagates_with_traceback():
    loader = DataLoader(Faulty(), batch_size=2, num_workers=2)
    it = iter(loader)
    assert next(it).tolist() == [0, 1]
    assert next(it).tolist() == [2, 3]
    with pytest.raises(KeyError) as info:
        next(it)
    msg = str(info.value)
    assert "Caught KeyError in DataLoader worker process 0" in msg
    assert "Original Traceback" in msg and "bad sample 5" in msg and "__getitem__" in msg
    assert next(it).tolist() == [6, 7]  # like PyTorch, later batches still arrive
    del it, info
    assert no_children()


def test_worker_init_fn_error_and_crash():
    def bad_init(worker_id):
        raise ValueError(f"init failed in {worker_id}")

    class LocalError(Exception):
        pass

    class RaisesLocal(Squares):
        def __getitem__(self, i):
            raise LocalError("unpicklable type")

    with pytest.raises(RuntimeError, match="Caught LocalError in DataLoader worker process 0"):
        list(DataLoader(RaisesLocal(2), num_workers=1))
    with pytest.raises(ValueError, match="init failed in 0"):
        list(DataLoader(Squares(4), batch_size=1, num_workers=1, worker_init_fn=bad_init))

    class Crash(Squares):
        def __getitem__(self, i):
            os._exit(3)

    with pytest.raises(
        RuntimeError,
        match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly with exit code\(s\) 3",
    ):
        list(DataLoader(Crash(4), batch_size=1, num_workers=1))
    assert no_children()


def test_worker_timeout():
    class Slow(Squares):
        def __getitem__(self, i):
            time.sleep(1.0)
            return i

    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.2 seconds"):
        next(iter(DataLoader(Slow(2), num_workers=1, timeout=0.2)))
    assert no_children()


def test_iterable_sharding_with_workers():
    loader = DataLoader(Stream(10), batch_size=2, num_workers=2)
    batches = [b.tolist() for b in loader]
    # Worker 0 streams the evens, worker 1 the odds; batches alternate between them.
    assert batches == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    loader = DataLoader(Stream(10), batch_size=2, num_workers=2, drop_last=True)
    assert sorted(sum((b.tolist() for b in loader), [])) == [0, 1, 2, 3, 4, 5, 6, 7]
    unbatched = DataLoader(Stream(5), batch_size=None, num_workers=2)
    assert sorted(unbatched) == [0, 1, 2, 3, 4]
    assert no_children()


def test_early_break_shuts_workers_down():
    loader = DataLoader(Squares(100), batch_size=2, num_workers=2)
    for i, _ in enumerate(loader):
        if i == 3:
            break
    assert no_children()


def test_persistent_workers_reuse_processes():
    loader = DataLoader(WhoAmI(), batch_size=2, num_workers=2, persistent_workers=True)
    pids = []
    for _ in range(3):
        rows = [row for b in loader for row in zip(*(t.tolist() for t in b))]
        assert [r[0] for r in rows] == list(range(8))
        pids.append({r[5] for r in rows})
    assert pids[0] == pids[1] == pids[2]
    it = iter(loader)
    next(it)  # an epoch cut short must not leak into the next one
    assert [b[0].tolist() for b in loader] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    stream = DataLoader(Stream(6), batch_size=2, num_workers=2, persistent_workers=True)
    assert [b.tolist() for b in stream] == [b.tolist() for b in stream]
    del loader, it, stream
    assert no_children()


def test_workers_preserve_structures():
    class Structured(Squares):
        def __getitem__(self, i):
            return Point(
                ember.full((2,), float(i)), {"label": i, "name": f"n{i}", "arr": np.arange(2)}
            )

    main = list(DataLoader(Structured(4), batch_size=2))
    workers = list(DataLoader(Structured(4), batch_size=2, num_workers=2))
    for a, b in zip(main, workers):
        assert type(b) is Point and isinstance(b.x, ember.Tensor)
        np.testing.assert_array_equal(a.x.numpy(), b.x.numpy())
        assert b.y["name"] == a.y["name"] and b.y["label"].tolist() == a.y["label"].tolist()
        assert b.y["arr"].dtype == ember.int64


def test_spawn_context():
    loader = DataLoader(Squares(6), batch_size=2, num_workers=1, multiprocessing_context="spawn")
    assert [b.tolist() for b in loader] == [[0, 1], [4, 9], [16, 25]]
    with pytest.raises(
        ValueError,
        match="should specify a valid start method in .* but got multiprocessing_context='nope'",
    ):
        DataLoader(Squares(2), num_workers=1, multiprocessing_context="nope")
    with pytest.raises(ValueError, match="only be used with multi-process loading"):
        DataLoader(Squares(2), multiprocessing_context="fork")
    with pytest.raises(TypeError, match="valid context object"):
        DataLoader(Squares(2), num_workers=1, multiprocessing_context=3)


def slow_collate(batch):
    return default_collate(batch)  # not default_collate itself: forces sample-by-sample


def test_batch_gather_equals_sample_by_sample():
    from ember.utils.data.datasets import CharCorpus, Digits

    x = ember.tensor(np.arange(40.0).reshape(20, 2), dtype=ember.float32)
    td = TensorDataset(x, ember.arange(20), ember.tensor(np.arange(20) % 2 == 0))
    datasets = [td, Subset(td, [19, 3, 5, 7, 0]), Digits(train=False), CharCorpus(8, train=False)]
    index_lists = [[0, 4, 2], [-1, 3], [1], [4, 2, 0, 1, 3]]
    for ds in datasets:
        for idx in index_lists:
            fast = DataLoader(ds, batch_sampler=[idx])
            slow = DataLoader(ds, batch_sampler=[idx], collate_fn=slow_collate)
            (f,), (s,) = list(fast), list(slow)
            assert type(f) is type(s) is list and len(f) == len(s)
            for a, b in zip(f, s):
                assert a.dtype == b.dtype and a.shape == b.shape and a.is_contiguous()
                np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(IndexError):
        next(iter(DataLoader(td, batch_sampler=[[0, 20]])))
    with pytest.raises(IndexError, match="out of range for CharCorpus"):
        next(iter(DataLoader(CharCorpus(8, train=False), batch_sampler=[[0, 10**7]])))
