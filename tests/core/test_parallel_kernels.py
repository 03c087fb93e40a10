"""The CPU kernels that run in row chunks on ember's threads: forced to split (tiny
chunks, 2 and 3 threads, odd row counts), each must give what one thread gives, bit for
bit, and agree with PyTorch in value and gradient."""

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from threadpoolctl import threadpool_info

import ember
import ember.nn.functional as F
from ember.core import parallel
from ember.core.ops import cpu_rows


@pytest.fixture
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_CHUNK_ELEMENTS", 4)
    before = ember.get_num_threads()
    yield
    ember.set_num_threads(before)


def _run(lib, fn, arrays, seed=1):
    """Output and input gradients (of ``sum(out * v)``) of ``fn(functional, *inputs)``."""
    functional = F if lib is ember else TF
    inputs = [lib.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(functional, *inputs)
    v = np.random.default_rng(seed).standard_normal(tuple(out.shape)).astype(arrays[0].dtype)
    out.backward(lib.tensor(v))
    grads = [t.grad.detach().numpy() for t in inputs if t.requires_grad]
    return [out.detach().numpy()] + grads


def _check_threads_and_torch(fn, arrays, atol, rtol=1e-5, exact=None):
    """``exact``: how many of (output, gradients...) must match one thread's bit for bit
    (default all); the rest are sums over rows, added up per chunk."""
    ember.set_num_threads(1)
    reference = _run(ember, fn, arrays)
    for threads in (2, 3):
        ember.set_num_threads(threads)
        for i, (got, want) in enumerate(zip(_run(ember, fn, arrays), reference)):
            if exact is None or i < exact:
                np.testing.assert_array_equal(got, want)
            else:
                close = 1e-6 if got.dtype == np.float32 else 1e-14
                np.testing.assert_allclose(got, want, rtol=close, atol=close)
    for got, want in zip(reference, _run(torch, fn, arrays)):
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)


def _tol(dtype):
    return 2e-5 if dtype == "float32" else 1e-10


DTYPES = ["float32", "float64"]
RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(tiny_chunks, dtype, approximate):
    x = RNG.uniform(-4, 4, (7, 33)).astype(dtype)
    _check_threads_and_torch(lambda f, x: f.gelu(x, approximate=approximate), [x], _tol(dtype))


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_strided_input_and_gradient(tiny_chunks, name):
    x = RNG.uniform(-4, 4, (33, 7)).astype("float32")
    fn = lambda f, x: getattr(f, name)(x.t()).t()  # noqa: E731
    _check_threads_and_torch(fn, [x], _tol("float32"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu(tiny_chunks, dtype):
    x = RNG.uniform(-6, 6, (7, 33)).astype(dtype)
    _check_threads_and_torch(lambda f, x: f.silu(x), [x], _tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu(tiny_chunks, dtype):
    x = RNG.uniform(-2, 2, (7, 33)).astype(dtype)
    x[0, :5] = 0  # relu'(0) = 0, as in PyTorch
    _check_threads_and_torch(lambda f, x: f.relu(x), [x], _tol(dtype))
    _check_threads_and_torch(lambda f, x: f.relu(x.t()), [x], _tol(dtype))  # strided


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block", [8, None], ids=["blocks", "small"])
def test_relu_special_values_as_torch(tiny_chunks, monkeypatch, dtype, threads, block):
    # blocks of 8 zeros: the kernel's loop over blocks runs many times, with a short tail;
    # else the array is below one block and takes NumPy's own loop
    from ember.core.ops import cpu_rows

    if block is not None:
        monkeypatch.setattr(cpu_rows, "_ZERO_BLOCK", block)
        monkeypatch.setattr(cpu_rows, "_zeros", {np.dtype(dtype): np.zeros(block, dtype)})
    ember.set_num_threads(threads)
    x = RNG.uniform(-2, 2, (5, 41)).astype(dtype)
    x[0, :6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, -1e-30]
    g = RNG.standard_normal(x.shape).astype(dtype)
    outs = []
    for lib in (ember, torch):
        t = lib.tensor(x, requires_grad=True)
        y = lib.relu(t)
        y.backward(lib.tensor(g))
        outs.append((y.detach().numpy(), t.grad.numpy()))
    (y, gx), (ty, tgx) = outs
    assert y.tobytes() == ty.tobytes()  # -0.0 stays -0.0, NaN stays NaN
    # a NaN output passes its gradient, as PyTorch's; a blocked gradient is a product with
    # zero (-0.0 for a negative gradient, where PyTorch writes 0.0: equal as numbers)
    np.testing.assert_array_equal(gx, tgx)
    assert np.isfinite(gx[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_last_dim(tiny_chunks, dtype, name):
    x = RNG.uniform(-5, 5, (5, 7, 19)).astype(dtype)
    _check_threads_and_torch(lambda f, x: getattr(f, name)(x, dim=-1), [x], _tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(tiny_chunks, dtype):
    x = RNG.uniform(-3, 3, (3, 7, 16)).astype(dtype) + 5
    w, b = RNG.uniform(0.5, 1.5, 16).astype(dtype), RNG.uniform(-1, 1, 16).astype(dtype)
    fn = lambda f, x, w, b: f.layer_norm(x, (16,), w, b)  # noqa: E731
    _check_threads_and_torch(fn, [x, w, b], _tol(dtype) * 10, exact=2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm(tiny_chunks, dtype):
    x = RNG.uniform(-3, 3, (3, 7, 4, 4)).astype(dtype)
    w = RNG.uniform(0.5, 1.5, (4, 4)).astype(dtype)
    fn = lambda f, x, w: f.rms_norm(x, (4, 4), w, eps=1e-6)  # noqa: E731
    _check_threads_and_torch(fn, [x, w], _tol(dtype) * 10, exact=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing, weighted", [(0.0, False), (0.1, False), (0.2, True)])
def test_cross_entropy(tiny_chunks, dtype, smoothing, weighted):
    logits = RNG.uniform(-4, 4, (35, 11)).astype(dtype)
    target = RNG.integers(0, 11, 35)
    target[[3, 20]] = -100  # ignored rows
    weight = RNG.uniform(0.5, 2, 11).astype(dtype) if weighted else None

    def fn(f, x, t):
        w = None if weight is None else (ember if f is F else torch).tensor(weight)
        return f.cross_entropy(x, t, weight=w, label_smoothing=smoothing)

    _check_threads_and_torch(fn, [logits, target], _tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_per_position(tiny_chunks, dtype):
    logits = RNG.uniform(-4, 4, (3, 5, 7)).astype(dtype)  # (N, C, d): classes moved last
    target = RNG.integers(0, 5, (3, 7))
    fn = lambda f, x, t: f.cross_entropy(x, t, reduction="none")  # noqa: E731
    _check_threads_and_torch(fn, [logits, target], _tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strided", [False, True])
def test_causal_attention(tiny_chunks, dtype, strided):
    # 130 positions: three row blocks (64, 64, 2), the (batch, head) slices split over the
    # threads; strided: heads split from one (batch, position, head, dim) array, as in GPT
    shape = (3, 130, 2, 4) if strided else (3, 1, 130, 4)
    q, k, v = (RNG.standard_normal(shape).astype(dtype) for _ in range(3))

    def fn(f, q, k, v):
        if strided:
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        return f.scaled_dot_product_attention(q, k, v, is_causal=True)

    _check_threads_and_torch(fn, [q, k, v], _tol(dtype) * 5)


@pytest.mark.parametrize(
    "shape", [(3, 130, 4), (1, 3, 130, 4), (2, 1, 3, 130, 4)], ids=["3-d", "batch of one", "5-d"]
)
def test_causal_attention_batch_layouts(tiny_chunks, shape):
    # the threads split the first batch dim, or the second when the first is one
    q, k, v = (RNG.standard_normal(shape) for _ in range(3))
    fn = lambda f, q, k, v: f.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    _check_threads_and_torch(fn, [q, k, v], 1e-9)


def test_causal_attention_gradients_lie_as_the_projection_did(tiny_chunks):
    # heads split from one (batch, position, 3 * width) projection, as in GPT: the output is
    # laid out like q (transposing the heads back is a view), and the q, k, v gradients lie
    # in one buffer as q, k and v lay in the projection, so split's backward joins them
    # without a copy
    ember.set_num_threads(2)
    qkv = ember.randn(2, 130, 3 * 8, requires_grad=True)
    q, k, v = (z.view(2, 130, 2, 4).transpose(1, 2) for z in qkv.split(8, dim=2))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert y.transpose(1, 2).is_contiguous()
    grads = ember.autograd.grad(y.sum(), [q, k, v], retain_graph=True)
    assert [g.stride() for g in grads] == [t.stride() for t in (q, k, v)]
    assert grads[0]._array.base is not None
    assert all(g._array.base is grads[0]._array.base for g in grads)
    (joined,) = ember.autograd.grad(y.sum(), [qkv])
    assert joined._array.base is not None  # a view of the gradients' buffer, not a copy
    pieces = [g.transpose(1, 2).reshape(2, 130, 8).numpy() for g in grads]
    np.testing.assert_array_equal(joined.numpy(), np.concatenate(pieces, axis=2))


@pytest.mark.parametrize("pick", [(0, 0, 0), (0, 1, 0), (2, 1, 0)], ids=["q q q", "q k q", "v k q"])
def test_causal_attention_on_overlapping_or_reordered_views_matches_torch(tiny_chunks, pick):
    # q, k, v drawn from one projection, the same piece more than once or out of order:
    # their gradients must not share memory (nor be joined in the wrong order)
    x = RNG.standard_normal((2, 130, 3 * 8))

    def fn(lib, x):
        pieces = [z.view(2, 130, 2, 4).transpose(1, 2) for z in x.split(8, dim=2)]
        q, k, v = (pieces[i] for i in pick)
        return lib.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    ember.set_num_threads(2)
    xe, xt = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ye, yt = fn(ember, xe), fn(torch, xt)
    ye.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_joined_only_views_that_lie_side_by_side():
    from ember.core.ops._util import joined

    buffer = np.arange(24.0).reshape(2, 12)
    parts = [buffer[:, 0:4], buffer[:, 4:8], buffer[:, 8:12]]
    whole = joined(parts, 1)
    np.testing.assert_array_equal(whole, buffer)
    assert np.shares_memory(whole, buffer)
    assert joined(parts[::-1], 1) is None  # out of order
    assert joined([parts[0], parts[2]], 1) is None  # a gap between them
    assert joined([parts[0], buffer.copy()[:, 4:8]], 1) is None  # another buffer
    np.testing.assert_array_equal(joined([buffer[0:1], buffer[1:2]], 0), buffer)
    assert joined([p.copy() for p in parts], 1) is None  # not views


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_attention(tiny_chunks, dtype):
    q = RNG.standard_normal((3, 5, 7, 4)).astype(dtype)
    k, v = (RNG.standard_normal((3, 5, 9, 4)).astype(dtype) for _ in range(2))
    mask = RNG.random((7, 9)) > 0.3
    mask[2] = False  # a fully masked row: zeros, as PyTorch's math path

    def fn(f, q, k, v):
        m = (ember if f is F else torch).tensor(mask)
        return f.scaled_dot_product_attention(q, k, v, attn_mask=m)

    _check_threads_and_torch(fn, [q, k, v], _tol(dtype) * 5)


@pytest.mark.parametrize(
    "case",
    [
        "short causal",
        "float mask, one batch entry",
        "mask needing its gradient",
        "broadcast key and value batch",
    ],
)
def test_batched_attention(tiny_chunks, case):
    dtype = "float64"
    batch = (1, 5) if case == "float mask, one batch entry" else (3, 5)
    q, k, v = (RNG.standard_normal(batch + (7, 4)).astype(dtype) for _ in range(3))
    if case == "broadcast key and value batch":  # the whole-array path, softmax in chunks
        k, v = k[:1], v[:1]
    mask = RNG.standard_normal((1, 1, 1, 7)).astype(dtype)
    arrays = [q, k, v] + ([mask] if case == "mask needing its gradient" else [])

    def fn(f, q, k, v, *trainable_mask):
        if case == "short causal":
            return f.scaled_dot_product_attention(q, k, v, is_causal=True)
        m = trainable_mask[0] if trainable_mask else (ember if f is F else torch).tensor(mask)
        return f.scaled_dot_product_attention(q, k, v, attn_mask=m)

    _check_threads_and_torch(fn, arrays, 1e-10, exact=None if len(arrays) == 3 else 4)


def test_attention_dropout_is_independent_of_threads(tiny_chunks):
    q, k, v = (RNG.standard_normal((3, 2, 9, 4)).astype("float32") for _ in range(3))
    results = []
    for threads in (1, 2, 3):
        ember.set_num_threads(threads)
        ember.manual_seed(3)
        fn = lambda f, q, k, v: f.scaled_dot_product_attention(q, k, v, dropout_p=0.3)  # noqa: E731
        results.append(_run(ember, fn, [q, k, v]))
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_is_independent_of_threads(tiny_chunks, dtype):
    x = RNG.uniform(1, 2, (7, 33)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        ember.set_num_threads(threads)
        ember.manual_seed(7)
        results.append(_run(ember, lambda f, x: f.dropout(x, 0.3), [x]))
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)
    y, gx = results[0]
    kept = y != 0
    assert 0.5 < kept.mean() < 0.9
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    v = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    np.testing.assert_allclose(gx, np.where(kept, v / 0.7, 0), rtol=1e-6)


def test_parallel_for_covers_rows_once_when_fewer_rows_than_threads(tiny_chunks):
    ember.set_num_threads(3)
    assert parallel.chunk_bounds(2, 1000) == [(0, 1), (1, 2)]
    hits = np.zeros(2, int)

    def body(start, stop):
        hits[start:stop] += 1

    parallel.parallel_for(body, 2, 1000)
    assert hits.tolist() == [1, 1]


def test_parallel_for_runs_chunks_side_by_side(tiny_chunks):
    """Each chunk waits for the other at a barrier: only two threads at once get past it."""
    ember.set_num_threads(2)
    meet = threading.Barrier(2, timeout=10)
    threads = set()

    def body(start, stop):
        meet.wait()
        threads.add(threading.get_ident())

    parallel.parallel_for(body, 2, 1000)
    assert len(threads) == 2


def test_parallel_for_caller_takes_the_chunks_a_late_thread_left(tiny_chunks):
    """A pool thread that is still busy (here with a task of its own) leaves its chunk to
    the caller instead of making it wait."""
    ember.set_num_threads(2)
    release = threading.Event()
    parallel._workers(1).submit(release.wait, 10)  # the one pool thread, held
    try:
        chunks = []
        parallel.parallel_for(lambda a, b: chunks.append((a, b, threading.get_ident())), 4, 100)
        me = threading.get_ident()
        assert chunks == [(0, 2, me), (2, 3, me), (3, 4, me)]  # every chunk, on this thread
    finally:
        release.set()


def test_a_late_pool_thread_takes_one_tapering_piece_and_the_caller_the_rest(tiny_chunks):
    """The pool's share comes in pieces halving in length: a thread that wakes while the
    caller finishes its own share takes one piece, not the whole share."""
    ember.set_num_threads(2)
    release, pool_started, caller_at_end = (threading.Event() for _ in range(3))
    parallel._workers(1).submit(release.wait, 10)  # the pool thread, asleep until released
    me = threading.get_ident()
    ran = []

    def body(start, stop):
        ran.append((start, stop, "caller" if threading.get_ident() == me else "pool"))
        if threading.get_ident() != me:
            pool_started.set()
            assert caller_at_end.wait(10)
        elif start == 0:  # the caller's own share: now the pool thread wakes, late
            release.set()
            assert pool_started.wait(10)
        elif stop == 8:
            caller_at_end.set()

    parallel.parallel_for(body, 8, 100)
    assert sorted(ran) == [(0, 4, "caller"), (4, 6, "pool"), (6, 7, "caller"), (7, 8, "caller")]


@pytest.mark.parametrize(
    "rows,threads,min_rows", [(1000, 1, 1), (1000, 3, 1), (999, 7, 20), (5, 2, 1)]
)
def test_tapering_bounds_cover_the_range_in_shrinking_pieces(rows, threads, min_rows):
    bounds = parallel.tapering_bounds(10, 10 + rows, threads, min_rows)
    assert bounds[0][0] == 10 and bounds[-1][1] == 10 + rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    floor = min(max(min_rows, -(-rows // (4 * threads))), rows)
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # halving, then the floor
    assert sizes[0] <= max(-(-rows // (2 * threads)), floor)
    assert floor <= sizes[-1] < 2 * floor or len(sizes) == 1
    assert min(sizes) >= floor and len(sizes) <= rows // floor


def test_parallel_for_raises_a_chunk_error_after_every_chunk_finished(tiny_chunks):
    ember.set_num_threads(3)
    done = []

    def body(start, stop):
        if start > 0:
            raise ValueError(f"bad chunk {start}")
        done.append(start)

    with pytest.raises(ValueError, match="bad chunk"):
        parallel.parallel_for(body, 9, 100)
    assert done == [0]
    started, finished = set(), set()

    def slow_first(start, stop):
        if start == 0:
            raise KeyError("first")
        started.add(start)
        threading.Event().wait(0.05)
        finished.add(start)

    with pytest.raises(KeyError):
        parallel.parallel_for(slow_first, 9, 100)
    assert started == finished  # every chunk begun had finished when the error came back


def test_parallel_for_restores_the_blas_thread_count(tiny_chunks):
    ember.set_num_threads(2)
    seen = []
    parallel.parallel_for(lambda a, b: seen.append(_blas_threads()), 4, 100)
    assert seen and all(n == [1] * len(n) for n in seen)
    assert _blas_threads() == [2] * len(_blas_threads())


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_parallel_for_from_several_python_threads(tiny_chunks):
    ember.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((64, 50)).astype(np.float32)
    want = F.softmax(ember.tensor(x), dim=-1).numpy()
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(F.softmax(ember.tensor(x), dim=-1).numpy())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert len(results) == 60 and all(np.array_equal(r, want) for r in results)
    assert _blas_threads() == [2] * len(_blas_threads())


def test_parallel_for_inside_a_chunk_runs_inline(tiny_chunks):
    ember.set_num_threads(2)
    inner_threads = []

    outer_chunks = []

    def outer(start, stop):
        outer_chunks.append((start, stop))
        parallel.parallel_for(lambda a, b: inner_threads.append(threading.get_ident()), 8, 100)

    parallel.parallel_for(outer, 4, 100)
    assert len(outer_chunks) > 1
    assert len(inner_threads) == len(outer_chunks)  # one inline inner call each: no deadlock


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [((37, 29), (29, 23)), ((7, 3), (3, 200)), ((9, 5, 4), (4, 6)), ((9, 5, 4), (9, 4, 6))],
    ids=["rows", "columns", "folded-batch", "batch"],
)
def test_matmul_split_by_rows_or_batch_matches_blas(tiny_chunks, monkeypatch, a_shape, b_shape):
    monkeypatch.setattr(parallel, "MATMUL_MIN_WORK", 1)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape)
    b = rng.standard_normal(b_shape[:-2] + b_shape[:-3:-1]).swapaxes(-1, -2)  # a strided view
    for threads in (1, 2, 3):
        ember.set_num_threads(threads)
        np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-13, atol=1e-13)


@pytest.fixture
def regions(tiny_chunks, monkeypatch):
    """Every product split (MATMUL_MIN_WORK 1); the pieces of each parallel region run."""
    monkeypatch.setattr(parallel, "MATMUL_MIN_WORK", 1)
    pieces = []
    real = parallel._run_chunks
    monkeypatch.setattr(parallel, "_run_chunks", lambda body, b: pieces.append(b) or real(body, b))
    return pieces


def test_matmul_splits_the_longer_output_dim(regions):
    """Two rows by many columns still splits (by columns) on 3 threads."""
    ember.set_num_threads(3)
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 5)), rng.standard_normal((5, 300))
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(parallel.matmul(b.T, a.T), b.T @ a.T, rtol=1e-13, atol=1e-13)
    assert [bounds[-1][1] for bounds in regions] == [300, 300]


@pytest.mark.parametrize("shape", [(40, 7), (3, 7)], ids=["by rows", "by columns"])
def test_matmul_adds_the_bias_in_each_piece(tiny_chunks, monkeypatch, shape):
    monkeypatch.setattr(parallel, "MATMUL_MIN_WORK", 1)
    rng = np.random.default_rng(3)
    a, b, bias = rng.standard_normal(shape), rng.standard_normal((7, 30)), rng.standard_normal(30)
    want = a @ b + bias
    for threads in (1, 2, 3):
        ember.set_num_threads(threads)
        np.testing.assert_allclose(parallel.matmul(a, b, bias), want, rtol=1e-13, atol=1e-13)


def test_matmul_pair_splits_each_product_over_half_the_threads(regions):
    rng = np.random.default_rng(4)
    # the input gradient splits by rows (9 > 7 columns), the weight gradient (5 x 7) by columns
    g, w, x = rng.standard_normal((9, 5)), rng.standard_normal((5, 7)), rng.standard_normal((9, 7))
    for threads in (1, 2, 3, 4, 5):
        ember.set_num_threads(threads)
        regions.clear()
        gx, gw, gb = parallel.matmul_pair((g, w), (g.T, x), sum_second_rows=True)
        np.testing.assert_allclose(gx, g @ w, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(gw, g.T @ x, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(gb, g.sum(0))  # the bias gradient, same sums
        if threads == 1:
            assert regions == []
            continue
        assert len(regions) == 1 and len(regions[0]) >= threads  # one region for both
        if threads == 2:  # the caller's weight gradient whole, the input gradient tapering
            assert len(regions[0]) == 1 + len(parallel.tapering_bounds(0, 9, 1, 1)) == 3
    assert parallel.matmul_pair((g, w), (g.T, x))[2] is None


@pytest.mark.parametrize("outputs, inputs", [(30, 13), (13, 30)], ids=["by rows", "by columns"])
def test_matmul_pair_bias_sums_cover_every_row_once(regions, outputs, inputs):
    """The weight gradient's pieces (of its rows, or of its columns when the layer has more
    inputs than outputs) each sum their share of the output gradient's columns; together
    every column once."""
    rng = np.random.default_rng(5)
    g, w, x = (rng.standard_normal(s) for s in ((40, outputs), (outputs, inputs), (40, inputs)))
    assert parallel._split(g.T, x)[0] == (inputs > outputs)
    for threads in (2, 3, 4, 7):
        ember.set_num_threads(threads)
        np.testing.assert_array_equal(
            parallel.matmul_pair((g, w), (g.T, x), sum_second_rows=True)[2], g.sum(0)
        )


def test_linear_on_threads_matches_torch(tiny_chunks, monkeypatch):
    monkeypatch.setattr(parallel, "MATMUL_MIN_WORK", 1)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in ((3, 11, 7), (5, 7), (5,))]
    ember.set_num_threads(3)
    for got, want in zip(
        _run(ember, lambda f, x, w, b: f.linear(x, w, b), arrays),
        _run(torch, lambda f, x, w, b: f.linear(x, w, b), arrays),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


BIG = (60, 26)  # with tiny chunks, above the single-pass split size


@pytest.fixture
def tiny_arithmetic(tiny_chunks, monkeypatch):
    from ember.core.ops import arithmetic, cpu_rows

    monkeypatch.setattr(arithmetic, "_SPLIT", cpu_rows.split_size(single_pass=True))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize(
    "other_shape", [BIG, (26,), (60, 1), ()], ids=["same", "row", "column", "0-d"]
)
def test_large_arithmetic_on_threads(tiny_arithmetic, op, other_shape):
    """x (op) y with a large x: split into row chunks on 2 and 3 threads, the same bits as
    one thread and NumPy, gradients as PyTorch's (a broadcast y's gradient summed)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(BIG).astype(np.float32)
    y = rng.uniform(0.5, 2, other_shape).astype(np.float32)
    fn = {
        "add": lambda f, a, b: a + b,
        "sub": lambda f, a, b: a - b,
        "mul": lambda f, a, b: a * b,
        "div": lambda f, a, b: a / b,
    }[op]
    ember.set_num_threads(1)
    reference = _run(ember, fn, [x, y])
    np.testing.assert_array_equal(reference[0], fn(None, x, y))
    for threads in (2, 3):
        ember.set_num_threads(threads)
        for got, want in zip(_run(ember, fn, [x, y]), reference):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(reference, _run(torch, fn, [x, y])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_binary_splits_large_operands_and_declines_the_rest(tiny_chunks, monkeypatch):
    from ember.core.ops import cpu_rows

    calls = []
    real = cpu_rows.parallel_for
    monkeypatch.setattr(cpu_rows, "parallel_for", lambda *a: calls.append(a[1]) or real(*a))
    x = np.ones(BIG, np.float32)
    ember.set_num_threads(2)
    assert cpu_rows.binary(np.add, x, np.ones(26, np.float32)) is not None
    assert calls == [60]  # split by rows, the bias row whole in every chunk
    assert cpu_rows.binary(np.add, x, np.ones(26)) is None  # float64 + float32: NumPy's
    assert cpu_rows.binary(np.add, x[:1], x[:1]) is None  # small
    assert cpu_rows.binary(np.add, np.ones((60, 1)), np.ones((1, 26))) is None  # both grow
    out = np.zeros(BIG, np.float32)
    assert cpu_rows.binary(np.add, out, np.full(26, 2, np.float32), out=out) is out
    assert (out == 2).all()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_leaf_gradients_copied_and_accumulated_in_chunks(tiny_chunks, monkeypatch, threads):
    # One gradient array reaches both leaves of an add and is the caller's own: each leaf
    # takes a copy of it in chunks, and a second backward adds into .grad in chunks.
    regions = []
    real = cpu_rows.parallel_for
    monkeypatch.setattr(
        cpu_rows, "parallel_for", lambda body, n, e=1: regions.append(n) or real(body, n, e)
    )
    ember.set_num_threads(threads)
    rng = np.random.default_rng(3)
    a_np, b_np, g_np = (rng.standard_normal((37, 5)).astype(np.float32) for _ in range(3))
    grads = {}
    for lib in (torch, ember):
        a, b = lib.tensor(a_np, requires_grad=True), lib.tensor(b_np, requires_grad=True)
        g = lib.tensor(g_np)
        (a + b).backward(g)
        first = [t.grad.numpy().copy() for t in (a, b)]
        assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
        assert not np.shares_memory(a.grad.numpy(), g.numpy())
        (a * 2 + b).backward(g)
        grads[lib] = first + [t.grad.numpy() for t in (a, b)]
    for ours, theirs in zip(grads[ember], grads[torch]):
        np.testing.assert_array_equal(ours, theirs)
    assert len(regions) == 4  # two copies, two in-place sums
