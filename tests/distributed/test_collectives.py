"""Collectives across MPI ranks: run with ``mpiexec -n 2|3 python -m pytest --with-mpi``."""

import time

import ml_dtypes
import numpy as np
import pytest

import ember
import ember.distributed as dist
from ember.distributed import ReduceOp

pytestmark = pytest.mark.mpi(min_size=2)

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.float16, ml_dtypes.bfloat16]


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.group.WORLD


def rank_n():
    return dist.get_rank(), dist.get_world_size()


def t(array):
    return ember.from_numpy(np.ascontiguousarray(array))


def per_rank(r, dtype, shape=(2, 3)):
    """Values small enough to be exact in every dtype (also in products)."""
    return (np.arange(np.prod(shape)).reshape(shape) % 3 + 1 + r).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [ReduceOp.SUM, ReduceOp.MAX, ReduceOp.MIN, ReduceOp.PRODUCT])
@pytest.mark.parametrize("async_op", [False, True])
def test_all_reduce(dtype, op, async_op):
    rank, n = rank_n()
    x = t(per_rank(rank, dtype))
    version = x._version
    work = dist.all_reduce(x, op=op, async_op=async_op)
    if async_op:
        assert work.wait() and work.is_completed()
        assert work.result()[0] is x
    else:
        assert work is None
    stacked = np.stack([per_rank(r, np.float64) for r in range(n)])
    expect = {
        ReduceOp.SUM: stacked.sum(0),
        ReduceOp.MAX: stacked.max(0),
        ReduceOp.MIN: stacked.min(0),
        ReduceOp.PRODUCT: stacked.prod(0),
    }[op]
    assert x._array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(x._array.astype(np.float64), expect)
    assert x._version > version


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
def test_all_reduce_avg(dtype):
    rank, n = rank_n()
    x = t(np.full(4, 2.0 * (rank + 1), dtype))
    dist.all_reduce(x, op=ReduceOp.AVG)
    np.testing.assert_allclose(x._array.astype(np.float64), np.full(4, n + 1.0))


def test_all_reduce_avg_int_raises():
    with pytest.raises(TypeError, match="AVG needs a floating-point"):
        dist.all_reduce(t(np.ones(3, np.int64)), op=ReduceOp.AVG)


def test_all_reduce_bool_is_logical():
    rank, n = rank_n()
    x = t(np.array([rank == 0, False, True]))
    dist.all_reduce(x, op=ReduceOp.SUM)
    np.testing.assert_array_equal(x._array, [True, False, True])
    y = t(np.array([rank == 0, True]))
    dist.all_reduce(y, op=ReduceOp.MIN)
    np.testing.assert_array_equal(y._array, [False, True])


def test_all_reduce_noncontiguous_view():
    rank, n = rank_n()
    base = t(np.arange(12, dtype=np.float64).reshape(3, 4) * (rank + 1))
    view = ember.Tensor._make(base._array.T, False, None, 0)
    dist.all_reduce(view)
    total = n * (n + 1) / 2
    np.testing.assert_array_equal(base._array, np.arange(12).reshape(3, 4) * total)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("async_op", [False, True])
def test_broadcast(dtype, async_op):
    rank, n = rank_n()
    src = n - 1
    x = t(per_rank(rank, dtype))
    work = dist.broadcast(x, src=src, async_op=async_op)
    if async_op:
        work.wait()
    np.testing.assert_array_equal(x._array, per_rank(src, dtype))


@pytest.mark.parametrize("op", [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MAX])
@pytest.mark.parametrize("async_op", [False, True])
def test_reduce(op, async_op):
    rank, n = rank_n()
    x = t(per_rank(rank, np.float64))
    work = dist.reduce(x, dst=1, op=op, async_op=async_op)
    if async_op:
        assert work.result() == [x]
    stacked = np.stack([per_rank(r, np.float64) for r in range(n)])
    expect = {
        ReduceOp.SUM: stacked.sum(0),
        ReduceOp.AVG: stacked.mean(0),
        ReduceOp.MAX: stacked.max(0),
    }
    if rank == 1:
        np.testing.assert_allclose(x._array, expect[op])
    else:
        np.testing.assert_array_equal(x._array, per_rank(rank, np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("async_op", [False, True])
def test_all_gather(dtype, async_op):
    rank, n = rank_n()
    out = [t(np.zeros((2, 3), dtype)) for _ in range(n)]
    work = dist.all_gather(out, t(per_rank(rank, dtype)), async_op=async_op)
    if async_op:
        assert work.result() == out
    for r in range(n):
        np.testing.assert_array_equal(out[r]._array, per_rank(r, dtype))


def test_all_gather_into_tensor_cat_and_stack():
    rank, n = rank_n()
    inp = t(per_rank(rank, np.float32))
    cat = t(np.zeros((2 * n, 3), np.float32))
    dist.all_gather_into_tensor(cat, inp)
    np.testing.assert_array_equal(
        cat._array, np.concatenate([per_rank(r, np.float32) for r in range(n)])
    )
    stack = t(np.zeros((n, 2, 3), np.float32))
    dist.all_gather_into_tensor(stack, inp, async_op=True).wait()
    np.testing.assert_array_equal(
        stack._array, np.stack([per_rank(r, np.float32) for r in range(n)])
    )


def test_all_gather_wrong_list_length():
    rank, n = rank_n()
    with pytest.raises(ValueError, match=f"list of {n} tensors"):
        dist.all_gather([t(np.zeros(3))], t(np.zeros(3)))
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        dist.all_gather([t(np.zeros(4)) for _ in range(n)], t(np.zeros(3)))


@pytest.mark.parametrize(
    "op, dtype",
    [
        (op, dt)
        for op in (ReduceOp.SUM, ReduceOp.MIN)
        for dt in (np.float32, np.int64, ml_dtypes.bfloat16)
    ]
    + [(ReduceOp.AVG, np.float64), (ReduceOp.AVG, ml_dtypes.bfloat16)],
)
def test_reduce_scatter_tensor(op, dtype):
    rank, n = rank_n()
    inp = t(np.stack([per_rank(rank + r, dtype) for r in range(n)]))
    out = t(np.zeros((2, 3), dtype))
    dist.reduce_scatter_tensor(out, inp, op=op)
    blocks = np.stack([per_rank(q + rank, np.float64) for q in range(n)])
    expect = {
        ReduceOp.SUM: blocks.sum(0),
        ReduceOp.AVG: blocks.mean(0),
        ReduceOp.MIN: blocks.min(0),
    }
    np.testing.assert_allclose(out._array.astype(np.float64), expect[op], rtol=1e-2)


def test_reduce_scatter_list_async():
    rank, n = rank_n()
    inputs = [t(np.full(3, 10.0 * r + rank)) for r in range(n)]
    out = t(np.zeros(3))
    dist.reduce_scatter(out, inputs, async_op=True).wait()
    np.testing.assert_array_equal(out._array, np.full(3, n * 10.0 * rank + n * (n - 1) / 2))


def test_all_to_all_single_even_and_uneven():
    rank, n = rank_n()
    inp = t(np.array([100 * rank + r for r in range(n)], np.int64))
    out = t(np.zeros(n, np.int64))
    dist.all_to_all_single(out, inp)
    np.testing.assert_array_equal(out._array, [100 * r + rank for r in range(n)])
    # rank r sends r+1 rows of width 2 to each peer (so receives q+1 rows from peer q)
    inp = t(np.full((n * (rank + 1), 2), rank, np.float32))
    recv_sizes = [q + 1 for q in range(n)]
    out = t(np.zeros((sum(recv_sizes), 2), np.float32))
    dist.all_to_all_single(out, inp, recv_sizes, [rank + 1] * n, async_op=True).wait()
    np.testing.assert_array_equal(out._array[:, 0], np.repeat(np.arange(n), recv_sizes))


def test_all_to_all_lists():
    rank, n = rank_n()
    inputs = [t(np.full(r + 1, 10 * rank + r, np.float64)) for r in range(n)]
    outputs = [t(np.zeros(rank + 1)) for _ in range(n)]
    assert dist.all_to_all(outputs, inputs, async_op=True).result() == outputs
    for q in range(n):
        np.testing.assert_array_equal(outputs[q]._array, np.full(rank + 1, 10 * q + rank))


def test_gather_and_scatter():
    rank, n = rank_n()
    dst = n - 1
    gl = [t(np.zeros(3)) for _ in range(n)] if rank == dst else None
    dist.gather(t(np.full(3, float(rank))), gl, dst=dst, async_op=True).wait()
    if rank == dst:
        for r in range(n):
            np.testing.assert_array_equal(gl[r]._array, np.full(3, float(r)))
    out = t(np.zeros(2, np.int32))
    sl = [t(np.full(2, 7 * r, np.int32)) for r in range(n)] if rank == 0 else None
    dist.scatter(out, sl, src=0, async_op=True).wait()
    np.testing.assert_array_equal(out._array, np.full(2, 7 * rank))


def test_send_recv_ring():
    rank, n = rank_n()
    out = t(np.zeros(4))
    send = dist.isend(t(np.full(4, float(rank))), dst=(rank + 1) % n, tag=3)
    assert dist.recv(out, src=(rank - 1) % n, tag=3) == (rank - 1) % n
    send.wait()
    np.testing.assert_array_equal(out._array, np.full(4, float((rank - 1) % n)))


def test_barrier_and_work_handle():
    work = dist.barrier(async_op=True)
    assert work.wait(timeout=30)
    assert work.is_completed()
    dist.barrier()


def test_objects():
    rank, n = rank_n()
    got = [None] * n
    dist.all_gather_object(got, {"rank": rank, "pad": "x" * rank})
    assert got == [{"rank": r, "pad": "x" * r} for r in range(n)]
    objs = [f"from {rank}", rank] if rank == 1 else [None, None]
    dist.broadcast_object_list(objs, src=1)
    assert objs == ["from 1", 1]
    gathered = [None] * n if rank == 0 else None
    dist.gather_object(("g", rank), gathered, dst=0)
    if rank == 0:
        assert gathered == [("g", r) for r in range(n)]


def test_ranks_and_groups():
    rank, n = rank_n()
    assert dist.get_backend() == "mpi"
    assert 0 <= dist.get_local_rank() < dist.get_local_world_size() <= n
    assert dist.is_main_process() == (rank == 0)
    pair = dist.new_group([0, 1])
    if rank < 2:
        assert dist.get_rank(pair) == rank and dist.get_world_size(pair) == 2
        assert dist.get_global_rank(pair, 1) == 1 and dist.get_group_rank(pair, 0) == 0
        assert dist.get_process_group_ranks(pair) == [0, 1]
        x = t(np.full(2, rank + 1.0))
        dist.all_reduce(x, group=pair)
        np.testing.assert_array_equal(x._array, [3.0, 3.0])
        y = t(np.full(2, float(rank)))
        dist.broadcast(y, src=1, group=pair)  # src is a global rank
        np.testing.assert_array_equal(y._array, [1.0, 1.0])
    else:
        assert pair is dist.NON_GROUP_MEMBER
        assert dist.all_reduce(t(np.ones(2)), group=pair) is None
        assert dist.get_rank(pair) == -1
    dist.destroy_process_group(pair)


def test_debug_mode_reports_mismatch():
    rank, n = rank_n()
    dist.set_debug_level("DETAIL")
    try:
        shape = (3,) if rank == 0 else (4,)
        with pytest.raises(RuntimeError, match=r"shape: rank 0 has \[3\] but rank 1 has \[4\]"):
            dist.all_reduce(t(np.zeros(shape)))
        op = ReduceOp.SUM if rank == 0 else ReduceOp.MAX
        with pytest.raises(RuntimeError, match="op: rank 0 has SUM but rank 1 has MAX"):
            dist.all_reduce(t(np.zeros(2)), op=op)
        x = t(np.ones(2))
        dist.all_reduce(x)  # matching calls pass
        np.testing.assert_array_equal(x._array, [n, n])
    finally:
        dist.set_debug_level("OFF")


def test_wait_timeout_raises_when_a_peer_is_late():
    rank, n = rank_n()
    x = t(np.ones(1))
    if rank != 0:
        time.sleep(0.3)
    work = dist.all_reduce(x, async_op=True)
    if rank == 0:
        with pytest.raises(RuntimeError, match=r"all_reduce \(collective #\d+\) did not finish"):
            work.wait(timeout=0.05)
    work.wait()
    np.testing.assert_array_equal(x._array, [n])
