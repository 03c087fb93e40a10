"""The always-on collective check: ranks that call a collective with different shapes,
dtypes, reduce ops or roots raise on every rank, naming both sides, instead of getting
wrong results. Run under ``mpiexec -n 2`` and ``-n 3`` (``--with-mpi``).

Each case runs on a fresh group: a failed check leaves the group unusable (some ranks may
already have started the collective), and the test abandons it."""

import re
import time

import numpy as np
import pytest

import ember
import ember.distributed as dist
from ember.distributed.board import MismatchError, describe, encode


@pytest.fixture
def group():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.new_group()


def t(a):
    return ember.from_numpy(np.asarray(a))


def odd_one_out(group, mine, theirs):
    """Rank 1 passes `theirs`, every other rank `mine`."""
    return theirs if dist.get_rank(group) == 1 else mine


def expect_mismatch(group, call, pattern):
    with pytest.raises(MismatchError) as info:
        call()
    message = str(info.value)
    assert message.startswith("Detected mismatch between collectives on ranks (collective #")
    assert re.search(pattern, message), message
    assert "rank 1 " in message  # the odd rank is one of the two sides named
    with pytest.raises(RuntimeError, match="this process group is unusable"):
        dist.all_reduce(t(np.ones(1)), group=group)
    return message


@pytest.mark.mpi(min_size=2)
def test_all_reduce_shapes_3_vs_4(group):
    shape = odd_one_out(group, (3,), (4,))
    message = expect_mismatch(
        group,
        lambda: dist.all_reduce(t(np.ones(shape, np.float32)), group=group),
        r"shape: rank \d has \[[34]\] but rank \d has \[[34]\]",
    )
    assert re.search(r"called all_reduce\(dtype=float32, op=SUM, shape=\[[34]\]\)", message)


@pytest.mark.mpi(min_size=2)
def test_all_reduce_dtypes(group):
    dtype = odd_one_out(group, np.float32, np.float64)
    expect_mismatch(
        group,
        lambda: dist.all_reduce(t(np.ones(3, dtype)), group=group),
        r"dtype: rank \d has float(32|64) but rank \d has float(64|32)",
    )


@pytest.mark.mpi(min_size=2)
def test_all_reduce_ops(group):
    op = odd_one_out(group, dist.ReduceOp.SUM, dist.ReduceOp.MAX)
    expect_mismatch(
        group,
        lambda: dist.all_reduce(t(np.ones(3)), op=op, group=group),
        r"op: rank \d has (SUM|MAX) but rank \d has (MAX|SUM)",
    )


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("late", [0, 1, None])
def test_mismatch_raises_everywhere_whoever_arrives_last(group, late):
    # no rank waits for its neighbours' fingerprints before an all_reduce: the last of
    # each pair to arrive compares, so the odd rank's mismatch must raise on every rank
    # whether it comes first, last or together with the others
    op = odd_one_out(group, dist.ReduceOp.SUM, dist.ReduceOp.MAX)
    x = t(np.arange(3.0) + dist.get_rank(group))

    def call():
        if dist.get_rank(group) == late:
            time.sleep(0.2)
        dist.all_reduce(x, op=op, group=group)

    expect_mismatch(group, call, r"op: rank \d has (SUM|MAX) but rank \d has (MAX|SUM)")


@pytest.mark.mpi(min_size=2)
def test_broadcast_src(group):
    src = odd_one_out(group, 0, 1)
    expect_mismatch(
        group,
        lambda: dist.broadcast(t(np.ones(3)), src=group.ranks[src], group=group),
        r"src: rank \d has [01] but rank \d has [01]",
    )


@pytest.mark.mpi(min_size=2)
def test_different_collectives(group):
    def call():
        if dist.get_rank(group) == 1:
            dist.broadcast(t(np.ones(3)), src=group.ranks[0], group=group)
        else:
            dist.all_reduce(t(np.ones(3)), group=group)

    expect_mismatch(group, call, r"rank \d called (all_reduce|broadcast) but rank \d called")


@pytest.mark.mpi(min_size=2)
def test_matching_calls_pass_and_async_calls_do_not_wait_for_the_neighbour(group):
    n = group.size()
    x = t(np.ones(4))
    dist.all_reduce(x, group=group)
    works = [dist.all_reduce(t(np.full(2, float(i))), group=group, async_op=True) for i in range(3)]
    b = t(np.arange(3.0) if dist.get_rank(group) == 0 else np.zeros(3))
    dist.broadcast(b, src=group.ranks[0], group=group)
    for w in works:
        w.wait()
    np.testing.assert_array_equal(x._array, [n] * 4)
    np.testing.assert_array_equal(b._array, [0.0, 1.0, 2.0])
    assert [w.result()[0]._array.tolist() for w in works] == [[i * n] * 2 for i in range(3)]


def test_fingerprint_round_trip():
    fields = {"shape": [2, 3, 4, 5], "dtype": np.dtype(np.float16), "op": "MAX", "src": 2}
    op, described = describe((*encode("broadcast", fields), 7))
    assert op == "broadcast"
    assert described == {
        "dtype": "float16",
        "op": "MAX",
        "shape": "[2, 3, 4, ...] (120 elements)",
        "src": 2,
    }
    assert encode("all_reduce", {"shape": [3], "dtype": np.dtype(np.float32)}) != encode(
        "all_reduce", {"shape": [4], "dtype": np.dtype(np.float32)}
    )
    # shapes that differ past the third dimension still differ in the fingerprint
    a = encode("all_gather", {"shape": [1, 1, 1, 2, 3], "dtype": np.dtype(np.int64)})
    b = encode("all_gather", {"shape": [1, 1, 1, 3, 2], "dtype": np.dtype(np.int64)})
    assert a != b
