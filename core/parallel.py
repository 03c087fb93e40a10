"""ember's CPU threads: large NumPy work split into row chunks that run side by side.

NumPy releases the GIL inside its loops over large arrays, so chunks of one computation,
each a few plain NumPy calls on a slice, run truly in parallel on a small thread pool.
This keeps every kernel written once in NumPy (its single-chunk run is the reference
path), needs no compiler and no compile time, and shares one thread count with the BLAS
(``ember.set_num_threads``), so GEMMs and elementwise work never oversubscribe the cores.

Measured on a 2-core machine (2026-12-06): handing chunks to the pool and collecting them
costs ~50 µs, so work is split only when each chunk gets at least ``MIN_CHUNK_ELEMENTS``
elements (~100 µs of elementwise work); below that, the caller's thread runs it alone.
Exact GELU on 2M float32 elements: 6.0 ms on one thread, 3.7 ms on two.

While chunks run, the BLAS is held at one thread (restored by the last ``parallel_for``
in flight): a kernel that multiplies matrices inside its chunks (attention) already has
a core per chunk, and OpenBLAS's own threads woken beside the pool took causal attention
forward on 16x4x128x64 from 5 ms to 166 ms on 2 cores (measured under load, 2026-12-06).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .threads import get_num_threads

MIN_CHUNK_ELEMENTS = 1 << 16

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _workers(count: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != count:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="ember-cpu")
            _pool_size = count
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked child (DataLoader workers, multiprocessing) inherits no threads: start afresh.
    global _pool, _pool_size, _blas_users
    _pool, _pool_size, _blas_users = None, 0, 0


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def chunk_bounds(rows: int, row_elements: int, threads: int | None = None) -> list[tuple[int, int]]:
    """Split ``range(rows)`` into at most ``threads`` contiguous ``(start, stop)`` pieces of
    equal length, each holding at least ``MIN_CHUNK_ELEMENTS`` elements (one piece when the
    work is small)."""
    threads = get_num_threads() if threads is None else threads
    by_size = (rows * max(row_elements, 1)) // MIN_CHUNK_ELEMENTS
    count = max(1, min(threads, rows, by_size))
    step, extra = divmod(rows, count)
    bounds, start = [], 0
    for i in range(count):
        stop = start + step + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def tapering_bounds(start: int, stop: int, threads: int, min_rows: int) -> list[tuple[int, int]]:
    """Split ``range(start, stop)``, the share of ``threads`` pool threads, into pieces that
    halve in length down to a quarter of an equal share (and never below ``min_rows``).

    A pool thread that wakes on time takes the pieces one after the other, as if they were
    one; one that wakes late (~0.1 ms on a VM, several ms while the host is busy) takes a
    piece, and the caller, done with its own share, takes the rest instead of waiting for
    the late thread to work through all of it. Measured in one process on the 2-core VM
    with a niced busy loop beside it, alternating steps (2026-12-07): the mean GPT step
    506 -> 465 ms, the CNN's 60.2 -> 57.7 ms; on the quiet machine the same within 2%.
    """
    floor = max(min_rows, -(-(stop - start) // (4 * threads)), 1)
    bounds = []
    while start < stop:
        left = stop - start
        size = max(-(-left // (2 * threads)), floor)
        if left - size < floor:
            size = left
        bounds.append((start, start + size))
        start += size
    return bounds


def parallel_for(body: Callable[[int, int], object], rows: int, row_elements: int = 1) -> None:
    """Run ``body(start, stop)`` over ``range(rows)`` in row chunks on ember's CPU threads.

    ``body`` must write only its own rows of preallocated outputs. The calling thread and
    the pool's threads take chunks one at a time until none are left, so when a pool
    thread wakes late (a sleeping thread takes ~0.1 ms to wake on a VM) the caller, done
    with its own chunk, takes the next one rather than wait: the caller's first chunk is
    an equal share, the pool's share comes in tapering pieces (``tapering_bounds``). The
    first exception raised by a chunk stops the handing out and is re-raised here once
    every chunk already started has finished, so nothing is still writing when the caller
    continues. While the chunks run, the BLAS runs one thread per call: a matrix product
    inside a chunk already has a core of its own.
    """
    if rows * row_elements < 2 * MIN_CHUNK_ELEMENTS or _region.active:
        body(0, rows)  # small work, or already inside a chunk: the cores are taken
        return
    threads = get_num_threads()
    bounds = chunk_bounds(rows, row_elements, threads)
    if len(bounds) == 1:
        body(0, rows)
        return
    min_rows = -(-MIN_CHUNK_ELEMENTS // max(row_elements, 1))
    first = bounds[0]  # the caller's, who starts at once; the pool's share tapers
    _run_chunks(body, [first, *tapering_bounds(first[1], rows, len(bounds) - 1, min_rows)])


def _run_chunks(body, bounds: list[tuple[int, int]]) -> None:
    """Run ``body`` over ``bounds`` on the caller and the pool's threads, the caller taking
    the first piece; see ``parallel_for``."""
    threads = get_num_threads()
    pool = _workers(threads - 1)  # sized by the thread count, not by this call
    chunks = _Chunks(body, bounds)
    _pin_blas()
    try:
        for _ in range(min(threads, len(bounds)) - 1):  # each takes pieces until none are left
            pool.submit(chunks.work)
        chunks.work()
        while True:
            try:
                chunks.all_done.wait()
                break
            except BaseException as exc:  # interrupted while waiting (Ctrl-C): wait on
                chunks.fail(exc)
    finally:
        _unpin_blas()
    if chunks.error is not None:
        raise chunks.error


class _Chunks:
    """The chunks of one ``parallel_for``, handed out in order to whichever thread asks.

    A pool thread that wakes after the others took every chunk finds none and returns:
    nobody waits for a thread that has nothing left to do.
    """

    def __init__(self, body, bounds):
        self.body, self.bounds = body, bounds
        self.lock = threading.Lock()
        self.claimed = self.finished = 0
        self.stopped = False
        self.error: BaseException | None = None
        self.all_done = threading.Event()

    def _claim(self) -> tuple[int, int] | None:
        with self.lock:
            if self.stopped or self.claimed == len(self.bounds):
                return None
            self.claimed += 1
            return self.bounds[self.claimed - 1]

    def _finish(self, error: BaseException | None) -> None:
        with self.lock:
            self.finished += 1
            if error is not None:
                self._stop(error)
            self._check_done()

    def fail(self, exc: BaseException) -> None:
        """Stop handing out chunks; ``exc`` is raised once the running ones finish."""
        with self.lock:
            self._stop(exc)
            self._check_done()

    def _stop(self, exc: BaseException) -> None:
        self.error = self.error or exc
        self.stopped = True

    def _check_done(self) -> None:
        done = self.stopped or self.claimed == len(self.bounds)
        if done and self.finished == self.claimed:
            self.all_done.set()

    def work(self) -> None:
        """Run chunks on this thread until none are left or one has failed."""
        # A parallel_for inside a chunk runs inline: the pool's threads are all busy with
        # this one, and waiting on tasks queued behind ourselves would never end.
        _region.active = True
        try:
            while (chunk := self._claim()) is not None:
                try:
                    self.body(*chunk)
                except BaseException as exc:
                    self._finish(exc)
                    return
                self._finish(None)
        finally:
            _region.active = False


class _Region(threading.local):
    active = False  # this thread is running a chunk of a parallel_for


_region = _Region()


# Products below this many multiply-adds stay one BLAS call: OpenBLAS itself runs them on one
# thread, so no BLAS worker wakes (and spins) for them.
MATMUL_MIN_WORK = 1 << 21


def matmul(a, b, bias=None):
    """``a @ b`` (``+ bias``, a row broadcast over the result's rows) of NumPy arrays (2-D,
    a batch by a matrix, or batches of the same leading shape), split over ember's threads
    by output rows or columns (whichever dim is longer, so the operand every piece packs
    again is the smaller) or by the first batch dim, each piece a one-thread BLAS call
    that adds its part of ``bias`` while the piece is in cache; any other broadcast is
    NumPy's own ``matmul``.

    ember's own pool does the threading instead of the BLAS's: OpenBLAS's workers spin for a
    while after each threaded product, and the elementwise chunks that follow then share
    their cores with spinning threads (measured on 2 cores, 2026-12-06: the GPT step at 2
    threads 374 ms with both pools, 314 ms with ember's alone; a 2048x256 by 256x1024
    product 5.8 ms split here, 5.6 ms threaded by OpenBLAS, 11 ms on one thread).
    """
    work = a.size * b.shape[-1]
    if work < MATMUL_MIN_WORK:  # the common small product: no more Python than this
        return _add_bias(np.matmul(a, b), bias)
    if a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous:  # x @ W: fold the batch in
        out = matmul(a.reshape(-1, a.shape[-1]), b, bias)
        return out.reshape(a.shape[:-1] + b.shape[-1:])
    same_batch = a.ndim == b.ndim > 2 and a.shape[:-2] == b.shape[:-2]
    if not (a.ndim == b.ndim == 2 or same_batch):
        return _add_bias(np.matmul(a, b), bias)
    by_columns, length = _split(a, b)
    threads = get_num_threads()
    if threads == 1 or length < 2 * threads or _region.active:
        return _add_bias(np.matmul(a, b), bias)
    out = np.empty(a.shape[:-1] + b.shape[-1:], np.result_type(a.dtype, b.dtype))

    def piece(start, stop):
        _product_piece(a, b, out, by_columns, start, stop, bias)

    parallel_for(piece, length, 2 * MIN_CHUNK_ELEMENTS)  # the work was measured above
    return out


def matmul_pair(first, second, sum_second_rows: bool = False):
    """``a1 @ b1`` and ``a2 @ b2`` of 2-D NumPy arrays in one parallel region: each product
    takes half of ember's threads (split as ``matmul`` splits; the first, the pool's, in
    tapering pieces), so a layer's two backward GEMMs (input and weight gradients: the same
    number of multiply-adds) wake the pool once and pack their operands in fewer pieces.
    Small products, one thread or a call from inside a chunk: the two products one after
    the other.

    Returns ``(a1 @ b1, a2 @ b2, sums)``: with ``sum_second_rows``, ``sums`` is ``a2.sum(1)``
    (a Linear's bias gradient, ``a2`` being the output gradient transposed), each piece of
    the second product summing its share of ``a2``'s rows right after multiplying them,
    rather than one serial pass over the whole gradient after the region; else None.
    """
    threads = get_num_threads()
    products = (first, second)
    if (
        threads == 1
        or _region.active
        or any(a.size * b.shape[-1] < MATMUL_MIN_WORK for a, b in products)
    ):
        sums = second[0].sum(1) if sum_second_rows else None
        return (*(matmul(a, b) for a, b in products), sums)
    a2 = second[0]
    sums = np.empty(a2.shape[0], a2.dtype) if sum_second_rows else None
    outs, tasks = [], []
    for i, (a, b) in enumerate(products):
        out = np.empty((a.shape[0], b.shape[1]), np.result_type(a.dtype, b.dtype))
        outs.append(out)
        share = (threads + 1 - i) // 2  # the first product takes the odd thread
        by_columns, length = _split(a, b)
        if i == 0:  # the pool's product: tapering, for a late thread
            bounds = tapering_bounds(0, length, share, 1)
        else:
            bounds = chunk_bounds(length, a.size if by_columns else b.size, share)
        pieces = [
            (a, b, out, by_columns, start, stop, None, sums if i == 1 else None)
            for start, stop in bounds
        ]
        # the second product's pieces first: the caller, who starts at once, takes them,
        # and a pool thread, which wakes later, the first's. In a training step the second
        # (the weight gradient, reading the layer's saved input back from memory) is the
        # slower one: the GPT step's caller waited 10-31 ms a step at the region ends when it
        # took the input gradient, 2-3 ms this way (2 threads, 2026-12-07).
        tasks = pieces + tasks

    def run(task, _):
        _product_piece(*tasks[task])

    _run_chunks(run, [(k, k + 1) for k in range(len(tasks))])
    return (*outs, sums)


def _split(a, b) -> tuple[bool, int]:
    """How a product is cut: by output columns when they outnumber the rows (each piece
    then packs all of a (m x k) again rather than all of b (k x n)), else by rows or the
    first batch dim; and that dim's length."""
    by_columns = a.ndim == 2 and b.shape[1] > a.shape[0]
    return by_columns, (b.shape[1] if by_columns else a.shape[0])


def _product_piece(a, b, out, by_columns, start, stop, bias=None, row_sums=None) -> None:
    """Columns (or rows, or batch entries) ``start:stop`` of ``a @ b (+ bias)`` into ``out``;
    with ``row_sums``, also this piece's share of ``a.sum(1)``: its own rows of ``a``, or
    for a piece of columns the same fraction of ``a``'s rows, so the pieces cover them all."""
    if by_columns:
        part = out[:, start:stop]
        np.matmul(a, b[:, start:stop], out=part)
        bias = None if bias is None else bias[start:stop]
    else:
        part = out[start:stop]
        np.matmul(a[start:stop], b if a.ndim == 2 else b[start:stop], out=part)
    if bias is not None:
        part += bias
    if row_sums is not None:
        if by_columns:
            rows, columns = a.shape[0], b.shape[1]
            start, stop = start * rows // columns, stop * rows // columns
        np.add.reduce(a[start:stop], axis=1, out=row_sums[start:stop])


def _add_bias(out, bias):
    if bias is not None:
        out += bias
    return out


# BLAS thread counts to restore, saved by the first of the parallel_for calls in flight
# (several Python threads may run kernels at once; the last one out restores them).
_blas: list | None = None
_blas_saved: list[int] = []
_blas_users = 0


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's), found once."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        controllers = ThreadpoolController().lib_controllers
        _blas = [lib for lib in controllers if lib.user_api == "blas"]
    return _blas


def _pin_blas() -> None:
    global _blas_users, _blas_saved
    blas = _blas_libraries()
    with _lock:
        if _blas_users == 0:
            _blas_saved = [lib.get_num_threads() for lib in blas]
            for lib in blas:
                lib.set_num_threads(1)
        _blas_users += 1


def _unpin_blas() -> None:
    global _blas_users
    with _lock:
        _blas_users -= 1
        if _blas_users == 0:
            for lib, count in zip(_blas_libraries(), _blas_saved):
                lib.set_num_threads(count)
