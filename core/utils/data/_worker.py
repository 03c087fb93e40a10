"""What runs inside a DataLoader worker process, and what travels between it and the
main process: index batches in, NumPy-backed batches (or a wrapped exception) out."""

from __future__ import annotations

import copy
import os
import pickle
import queue
import random
import sys
import traceback

import numpy as np

from ... import backend
from ... import random as _random
from ...tensor import Tensor, wrap_array
from ._collate import default_collate

STATUS_CHECK_INTERVAL = 1.0  # seconds between liveness checks while waiting on a queue


class WorkerInfo:
    r"""What :func:`get_worker_info` returns inside a worker: ``id``, ``num_workers``,
    ``seed`` and this worker's copy of ``dataset``."""

    __initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs)
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {type(self).__name__} objects")
        super().__setattr__(key, val)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={getattr(self, k)}" for k in self.__keys)
        return f"{type(self).__name__}({items})"


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    r"""Inside a DataLoader worker: its :class:`WorkerInfo` (``id``, ``num_workers``,
    ``seed``, ``dataset``); in the main process: ``None``. Use it to shard an
    IterableDataset or to seed per-worker state in ``worker_init_fn``.

    Example::

        >>> info = get_worker_info()
        >>> start = 0 if info is None else info.id
    """
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, carried as its type and formatted traceback."""

    def __init__(self, exc_info=None, where: str = "in background"):
        exc_info = exc_info or sys.exc_info()
        self.exc_type = exc_info[0]
        self.exc_name = exc_info[0].__name__
        try:
            pickle.dumps(self.exc_type)
        except Exception:  # e.g. a class defined inside a function: it could not travel
            self.exc_type = RuntimeError
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self):
        msg = f"Caught {self.exc_name} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)
        try:
            exception = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        try:
            raise exception
        finally:
            del exception  # no frame -> exception -> traceback -> frame cycle


class _KeyErrorMessage(str):
    """KeyError repr()s its message; this keeps the traceback readable."""

    def __repr__(self):
        return self


class IterableStopped:
    """A worker's answer once its copy of an IterableDataset is exhausted."""

    def __init__(self, worker_id: int):
        self.worker_id = worker_id


class ResumeIteration:
    """Sent to persistent workers at the start of each epoch after the first, with the
    epoch's base seed: the workers reseed, so each epoch's streams depend only on it."""

    def __init__(self, base_seed: int):
        self.base_seed = base_seed


class _Shipped:
    """A tensor in transit: only its NumPy array crosses the process boundary."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __reduce__(self):
        return (_Shipped, (self.array,))


def to_shippable(data):
    """Replace the tensors inside ``data`` by NumPy arrays marked to become tensors again."""
    if isinstance(data, Tensor):
        return _Shipped(backend.move_array(data._array, backend.CPU))
    if isinstance(data, list | tuple | dict) and _has_tensor(data):
        return _map(data, to_shippable)
    return data


def from_shippable(data):
    """Undo :func:`to_shippable` in the main process."""
    if isinstance(data, _Shipped):
        return wrap_array(data.array)
    if isinstance(data, list | tuple | dict):
        return _map(data, from_shippable)
    return data


def _has_tensor(data) -> bool:
    values = data.values() if isinstance(data, dict) else data
    return any(
        isinstance(v, Tensor) or (isinstance(v, list | tuple | dict) and _has_tensor(v))
        for v in values
    )


def _map(data, fn):
    """``fn`` over the values of a dict, namedtuple, tuple or list, keeping its type."""
    if isinstance(data, dict):
        if type(data) is dict:
            return {k: fn(v) for k, v in data.items()}
        clone = copy.copy(data)
        for k, v in data.items():
            clone[k] = fn(v)
        return clone
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(fn(v) for v in data))
    if isinstance(data, list) and type(data) is not list:
        clone = copy.copy(data)
        for i, v in enumerate(data):
            clone[i] = fn(v)
        return clone
    return type(data)(fn(v) for v in data)


class MapFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn
        self.getitems = getattr(dataset, "__getitems__", None)
        # Datasets that can gather a whole batch at once (one fancy index per array instead
        # of a Python loop and a stack) do so when the result is what default_collate gives.
        self.gather = (
            getattr(dataset, "_collated_batch", None) if collate_fn is default_collate else None
        )

    def fetch(self, index):
        if self.auto_collation:
            if self.gather is not None:
                batch = self.gather(index)
                if batch is not NotImplemented:
                    return batch
            if callable(self.getitems):
                data = self.getitems(index)
            else:
                data = [self.dataset[i] for i in index]
        else:
            data = self.dataset[index]
        return self.collate_fn(data)


class IterableFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.auto_collation, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last
        self.dataset_iter = iter(dataset)
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if self.auto_collation:
            data = []
            for _ in index:
                try:
                    data.append(next(self.dataset_iter))
                except StopIteration:
                    self.ended = True
                    break
            if not data or (self.drop_last and len(data) < len(index)):
                raise StopIteration
        else:
            data = next(self.dataset_iter)
        return self.collate_fn(data)


def make_fetcher(iterable: bool, dataset, auto_collation, collate_fn, drop_last):
    cls = IterableFetcher if iterable else MapFetcher
    return cls(dataset, auto_collation, collate_fn, drop_last)


# Where this process's rank comes from: ember.distributed registers its source (core never
# imports ember.distributed, nor starts MPI, itself); None in a lone process.
_rank_source = None


def register_rank_source(fn) -> None:
    """Make workers' seeds depend on this process's rank, read from ``fn()`` (an int, or
    None while no process group is initialized); ``ember.distributed`` registers one."""
    global _rank_source
    _rank_source = fn


def _process_rank() -> int | None:
    """This process's rank when a process group is initialized, else None."""
    return None if _rank_source is None else _rank_source()


def rank_base_seed(base_seed: int, rank: int | None = None) -> int:
    """The workers' base seed on `rank`: `base_seed` itself in a lone process, else a hash
    of (base_seed, rank), so ranks seeded alike never share augmentation randomness."""
    if rank is None:
        return base_seed
    word = np.random.SeedSequence([base_seed, rank]).generate_state(1, np.uint64)[0]
    return int(word) >> 2  # 62 bits, like the drawn base seeds


def seed_worker(seed: int) -> None:
    """Seed Python's, NumPy's and ember's CPU generators for one worker. NumPy's legacy
    seed takes 32 bits, so it gets four words hashed from the whole seed (as PyTorch does)."""
    random.seed(seed)
    np.random.seed(np.random.SeedSequence(seed).generate_state(4))
    _random.default_generator("cpu").manual_seed(seed)


def _start_worker(base_seed: int, worker_id: int, num_workers: int, dataset) -> None:
    global _worker_info
    seed = base_seed + worker_id
    seed_worker(seed)
    _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)


def worker_loop(
    iterable,
    dataset,
    index_queue,
    data_queue,
    auto_collation,
    collate_fn,
    drop_last,
    base_seed,
    init_fn,
    worker_id,
    num_workers,
    parent_pid,
):
    """The body of a worker process: fetch the batches named on ``index_queue`` and put
    ``(task_index, batch)`` on ``data_queue`` until told to stop (``None``) or orphaned."""
    try:
        _start_worker(base_seed, worker_id, num_workers, dataset)
        init_error = None
        fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = make_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
        except Exception:
            init_error = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
        exhausted = False
        while True:
            try:
                task = index_queue.get(timeout=STATUS_CHECK_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    break  # the main process died; don't linger as an orphan
                continue
            if task is None:
                break
            if isinstance(task, ResumeIteration):
                _start_worker(task.base_seed, worker_id, num_workers, dataset)
                data_queue.put((task, None))
                exhausted = False
                if init_error is None:
                    fetcher = make_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
                continue
            if exhausted:
                continue
            idx, index = task
            if init_error is not None:
                data = init_error  # every batch of a worker that failed to start fails
            else:
                try:
                    data = to_shippable(fetcher.fetch(index))
                except StopIteration:
                    if not iterable:
                        data = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
                    else:
                        data = IterableStopped(worker_id)
                        exhausted = True
                except Exception:
                    data = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
            data_queue.put((idx, data))
            del data
    except KeyboardInterrupt:
        pass
    # The main process no longer reads what is still buffered; exit without waiting for it.
    data_queue.cancel_join_thread()
    data_queue.close()
