"""Collectives on Tensors, with PyTorch's names and signatures.

Each writes its result in place into the given tensors (bumping their version) and,
with ``async_op=True``, returns a ``Work`` handle instead of waiting. ``src``/``dst``
are global ranks, as in torch. Tensor data never goes through pickle; only the
explicitly-object APIs (``broadcast_object_list``, ``all_gather_object``,
``gather_object``) pickle, like torch's.
"""

from __future__ import annotations

import pickle

import numpy as np

from ..core.backend import xp_of
from ..core.tensor import Tensor, wrap_array
from .backends.base import ReduceOp
from .detail import gather_bytes
from .process_group import ProcessGroup, resolve


def _check(name: str, t, what: str = "tensor") -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {what} must be an ember.Tensor, got {type(t).__name__}")


def _buffer(t: Tensor):
    """A contiguous array for ``t`` and the copy-back needed when it had to be copied."""
    a = t._array
    if a.flags.c_contiguous:
        return a, None
    c = xp_of(a).ascontiguousarray(a)
    return c, lambda: a.__setitem__(Ellipsis, c)


def _reduce_op(name: str, op, dtype) -> ReduceOp:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{name}: op must be a dist.ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and dtype.kind not in "fcV" and str(dtype) != "bfloat16":
        raise TypeError(f"{name}: ReduceOp.AVG needs a floating-point tensor, got {dtype}")
    return op


def _finish(*steps):
    steps = [s for s in steps if s is not None]
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run():
        for s in steps:
            s()

    return run


def _averager(array, pg: ProcessGroup, op: ReduceOp):
    if op is not ReduceOp.AVG or pg.size() == 1:
        return None
    n = pg.size()
    return lambda: array.__itruediv__(n)


def _backend_op(op: ReduceOp) -> ReduceOp:
    return ReduceOp.SUM if op is ReduceOp.AVG else op


def _meta(t: Tensor) -> dict:
    # The dtype object itself: str() of a NumPy dtype costs microseconds, and this runs
    # for every collective; reports and the debug check format it when they need text.
    return {"shape": list(t._array.shape), "dtype": t._array.dtype}


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    r"""Reduce ``tensor`` across all ranks of ``group``; every rank gets the result.

    Example::

        >>> t = ember.ones(3) * (dist.get_rank() + 1)
        >>> dist.all_reduce(t, op=dist.ReduceOp.SUM)  # t == 1 + 2 + ... + world_size
    """
    _check("all_reduce", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    op = _reduce_op("all_reduce", op, tensor._array.dtype)
    buf, back = _buffer(tensor)
    backend = pg.backend_for(buf)
    tensor._bump_version()
    return pg.run(
        "all_reduce",
        lambda: backend.all_reduce(buf, _backend_op(op)),
        [tensor],
        _finish(_averager(buf, pg, op), back),
        async_op,
        lambda: {**_meta(tensor), "op": op.name},
    )


def broadcast(tensor: Tensor, src: int = 0, group=None, async_op: bool = False):
    """Copy ``tensor`` from global rank ``src`` to every rank of ``group``."""
    _check("broadcast", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    root = pg.group_rank(src)
    buf, back = _buffer(tensor)
    backend = pg.backend_for(buf)
    tensor._bump_version()
    return pg.run(
        "broadcast",
        lambda: backend.broadcast(buf, root),
        [tensor],
        back,
        async_op,
        lambda: {**_meta(tensor), "src": src},
    )


def reduce(tensor: Tensor, dst: int = 0, op: ReduceOp = ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` onto global rank ``dst`` (other ranks' tensors are left as is)."""
    _check("reduce", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    op = _reduce_op("reduce", op, tensor._array.dtype)
    root = pg.group_rank(dst)
    buf, back = _buffer(tensor)
    backend = pg.backend_for(buf)
    tensor._bump_version()
    avg = _averager(buf, pg, op) if pg.rank() == root else None
    if pg.rank() != root:  # MPI leaves the send buffer alone; keep it that way
        back = None
    return pg.run(
        "reduce",
        lambda: backend.reduce(buf, _backend_op(op), root),
        [tensor],
        _finish(avg, back),
        async_op,
        lambda: {**_meta(tensor), "dst": dst, "op": op.name},
    )


def _check_list(name: str, tensors, n: int, like: Tensor, what: str) -> None:
    if not isinstance(tensors, list | tuple) or len(tensors) != n:
        got = len(tensors) if isinstance(tensors, list | tuple) else type(tensors).__name__
        raise ValueError(f"{name}: {what} must be a list of {n} tensors (world size), got {got}")
    for i, t in enumerate(tensors):
        _check(name, t, f"{what}[{i}]")
        if t.shape != like.shape or t._array.dtype != like._array.dtype:
            raise ValueError(
                f"{name}: {what}[{i}] has shape {list(t.shape)} and dtype {t.dtype}, expected "
                f"shape {list(like.shape)} and dtype {like.dtype}"
            )


def _scatter_into(tensors, blocks):
    def run():
        for t, b in zip(tensors, blocks):
            t._array[...] = b.reshape(t._array.shape)

    return run


def all_gather(tensor_list: list, tensor: Tensor, group=None, async_op: bool = False):
    """Gather ``tensor`` from every rank into ``tensor_list`` (one tensor per rank)."""
    _check("all_gather", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    _check_list("all_gather", tensor_list, pg.size(), tensor, "tensor_list")
    buf, _ = _buffer(tensor)
    out = xp_of(buf).empty((pg.size(),) + buf.shape, buf.dtype)
    backend = pg.backend_for(buf)
    for t in tensor_list:
        t._bump_version()
    return pg.run(
        "all_gather",
        lambda: backend.all_gather(out, buf),
        list(tensor_list),
        _scatter_into(tensor_list, out),
        async_op,
        lambda: _meta(tensor),
    )


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group=None, async_op=False):
    """Gather every rank's ``input_tensor`` into ``output_tensor`` (world size × as many
    elements), concatenated along dim 0 or stacked."""
    _check("all_gather_into_tensor", output_tensor, "output_tensor")
    _check("all_gather_into_tensor", input_tensor, "input_tensor")
    pg = resolve(group)
    if pg is None:
        return None
    _check_sizes("all_gather_into_tensor", output_tensor, input_tensor, pg.size())
    out, back = _buffer(output_tensor)
    buf, _ = _buffer(input_tensor)
    backend = pg.backend_for(buf)
    output_tensor._bump_version()
    return pg.run(
        "all_gather_into_tensor",
        lambda: backend.all_gather(out, buf),
        [output_tensor],
        back,
        async_op,
        lambda: _meta(input_tensor),
    )


def _check_sizes(name, big: Tensor, small: Tensor, n: int) -> None:
    if big._array.dtype != small._array.dtype:
        raise TypeError(f"{name}: dtypes differ: {big.dtype} and {small.dtype}")
    if big.numel() != n * small.numel():
        raise ValueError(
            f"{name}: the larger tensor must have world size ({n}) times the elements of the "
            f"smaller: got shapes {list(big.shape)} and {list(small.shape)}"
        )


def reduce_scatter_tensor(
    output: Tensor, input: Tensor, op=ReduceOp.SUM, group=None, async_op=False
):
    """Reduce ``input`` (world size blocks along dim 0) and give rank r block r."""
    _check("reduce_scatter_tensor", output, "output")
    _check("reduce_scatter_tensor", input, "input")
    pg = resolve(group)
    if pg is None:
        return None
    _check_sizes("reduce_scatter_tensor", input, output, pg.size())
    op = _reduce_op("reduce_scatter_tensor", op, output._array.dtype)
    out, back = _buffer(output)
    buf, _ = _buffer(input)
    backend = pg.backend_for(buf)
    output._bump_version()
    return pg.run(
        "reduce_scatter_tensor",
        lambda: backend.reduce_scatter(out, buf, _backend_op(op)),
        [output],
        _finish(_averager(out, pg, op), back),
        async_op,
        lambda: {**_meta(input), "op": op.name},
    )


def reduce_scatter(output: Tensor, input_list: list, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``input_list[r]`` across ranks into rank r's ``output``."""
    _check("reduce_scatter", output, "output")
    pg = resolve(group)
    if pg is None:
        return None
    _check_list("reduce_scatter", input_list, pg.size(), output, "input_list")
    op = _reduce_op("reduce_scatter", op, output._array.dtype)
    xp = xp_of(output._array)
    stacked = xp.stack([t._array for t in input_list])
    out, back = _buffer(output)
    backend = pg.backend_for(out)
    output._bump_version()
    return pg.run(
        "reduce_scatter",
        lambda: backend.reduce_scatter(out, stacked, _backend_op(op)),
        [output],
        _finish(_averager(out, pg, op), back),
        async_op,
        lambda: {**_meta(output), "op": op.name},
    )


def all_to_all_single(
    output: Tensor,
    input: Tensor,
    output_split_sizes=None,
    input_split_sizes=None,
    group=None,
    async_op=False,
):
    """Split ``input`` along dim 0 (evenly, or by ``input_split_sizes``), send piece r to
    rank r, and concatenate what arrives into ``output`` (split by ``output_split_sizes``)."""
    _check("all_to_all_single", output, "output")
    _check("all_to_all_single", input, "input")
    pg = resolve(group)
    if pg is None:
        return None
    if output._array.dtype != input._array.dtype:
        raise TypeError(f"all_to_all_single: dtypes differ: {output.dtype} and {input.dtype}")
    n = pg.size()
    send = _split_counts("input", input, input_split_sizes, n)
    recv = _split_counts("output", output, output_split_sizes, n)
    out, back = _buffer(output)
    buf, _ = _buffer(input)
    backend = pg.backend_for(buf)
    output._bump_version()
    return pg.run(
        "all_to_all_single",
        lambda: backend.all_to_all(out, buf, send, recv),
        [output],
        back,
        async_op,
        lambda: {"dtype": input._array.dtype},
    )


def _split_counts(what: str, t: Tensor, sizes, n: int) -> list[int]:
    rows = t.shape[0] if t.ndim else 1
    row = t.numel() // rows if rows else 0
    if sizes is None:
        if rows % n:
            raise ValueError(
                f"all_to_all_single: {what} dim 0 ({rows}) must divide evenly by the world "
                f"size ({n}) when no split sizes are given"
            )
        return [rows // n * row] * n
    sizes = list(sizes)
    if len(sizes) != n or sum(sizes) != rows:
        raise ValueError(
            f"all_to_all_single: {what}_split_sizes {sizes} must have {n} entries summing "
            f"to dim 0 of {what} ({rows})"
        )
    return [s * row for s in sizes]


def all_to_all(output_tensor_list: list, input_tensor_list: list, group=None, async_op=False):
    """Send ``input_tensor_list[r]`` to rank r; receive rank r's into ``output_tensor_list[r]``."""
    pg = resolve(group)
    if pg is None:
        return None
    n = pg.size()
    for what, lst in (
        ("output_tensor_list", output_tensor_list),
        ("input_tensor_list", input_tensor_list),
    ):
        if not isinstance(lst, list | tuple) or len(lst) != n:
            raise ValueError(f"all_to_all: {what} must be a list of {n} tensors (world size)")
        for i, t in enumerate(lst):
            _check("all_to_all", t, f"{what}[{i}]")
    dtype = input_tensor_list[0]._array.dtype
    if any(t._array.dtype != dtype for t in (*input_tensor_list, *output_tensor_list)):
        raise TypeError("all_to_all: all tensors must have the same dtype")
    xp = xp_of(input_tensor_list[0]._array)
    buf = xp.concatenate([t._array.reshape(-1) for t in input_tensor_list])
    recv = [t.numel() for t in output_tensor_list]
    out = xp.empty(sum(recv), dtype)
    starts = np.concatenate([[0], np.cumsum(recv)]).tolist()
    pieces = [out[starts[r] : starts[r + 1]] for r in range(n)]
    backend = pg.backend_for(buf)
    for t in output_tensor_list:
        t._bump_version()
    return pg.run(
        "all_to_all",
        lambda: backend.all_to_all(out, buf, [t.numel() for t in input_tensor_list], recv),
        list(output_tensor_list),
        _scatter_into(output_tensor_list, pieces),
        async_op,
        lambda: {"dtype": dtype},
    )


def gather(tensor: Tensor, gather_list=None, dst: int = 0, group=None, async_op=False):
    """Collect ``tensor`` from every rank into ``gather_list`` on global rank ``dst``."""
    _check("gather", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    root = pg.group_rank(dst)
    buf, _ = _buffer(tensor)
    out, finish = None, None
    if pg.rank() == root:
        _check_list("gather", gather_list, pg.size(), tensor, "gather_list")
        out = xp_of(buf).empty((pg.size(),) + buf.shape, buf.dtype)
        finish = _scatter_into(gather_list, out)
        for t in gather_list:
            t._bump_version()
    elif gather_list:
        raise ValueError(f"gather: gather_list must be empty on non-destination ranks (dst={dst})")
    backend = pg.backend_for(buf)
    return pg.run(
        "gather",
        lambda: backend.gather(out, buf, root),
        list(gather_list or []),
        finish,
        async_op,
        lambda: {**_meta(tensor), "dst": dst},
    )


def scatter(tensor: Tensor, scatter_list=None, src: int = 0, group=None, async_op=False):
    """Global rank ``src`` sends ``scatter_list[r]`` to rank r's ``tensor``."""
    _check("scatter", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    root = pg.group_rank(src)
    out, back = _buffer(tensor)
    stacked = None
    if pg.rank() == root:
        _check_list("scatter", scatter_list, pg.size(), tensor, "scatter_list")
        stacked = xp_of(out).stack([t._array for t in scatter_list])
    elif scatter_list:
        raise ValueError(f"scatter: scatter_list must be empty on non-source ranks (src={src})")
    backend = pg.backend_for(out)
    tensor._bump_version()
    return pg.run(
        "scatter",
        lambda: backend.scatter(out, stacked, root),
        [tensor],
        back,
        async_op,
        lambda: {**_meta(tensor), "src": src},
    )


def isend(tensor: Tensor, dst: int, group=None, tag: int = 0):
    """Start sending ``tensor`` to global rank ``dst``; returns a Work."""
    _check("isend", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    buf, _ = _buffer(tensor)
    backend = pg.backend_for(buf)
    peer = pg.group_rank(dst)
    return pg.run("send", lambda: backend.send(buf, peer, tag), [tensor], async_op=True)


def irecv(tensor: Tensor, src: int, group=None, tag: int = 0):
    """Start receiving into ``tensor`` from global rank ``src``; returns a Work."""
    _check("irecv", tensor)
    pg = resolve(group)
    if pg is None:
        return None
    if src is None:
        raise ValueError("recv: src must be given (receiving from any source is not supported)")
    buf, back = _buffer(tensor)
    backend = pg.backend_for(buf)
    peer = pg.group_rank(src)
    tensor._bump_version()
    return pg.run("recv", lambda: backend.recv(buf, peer, tag), [tensor], back, async_op=True)


def send(tensor: Tensor, dst: int, group=None, tag: int = 0) -> None:
    isend(tensor, dst, group, tag).wait()


def recv(tensor: Tensor, src: int, group=None, tag: int = 0) -> int:
    irecv(tensor, src, group, tag).wait()
    return src


# -- objects (pickled, like torch) ---------------------------------------------------------


def _gather_bytes(pg: ProcessGroup, payload: bytes) -> list[bytes]:
    """Every rank's ``payload``, through this module's all-gather (checked and recorded
    like any collective)."""

    def gather(out, array):
        all_gather_into_tensor(wrap_array(out), wrap_array(array), group=pg)

    return gather_bytes(payload, pg.size(), gather)


def all_gather_object(object_list: list, obj, group=None) -> None:
    """Fill ``object_list`` (world size long) with every rank's picklable ``obj``."""
    pg = resolve(group)
    if pg is None:
        return
    if len(object_list) != pg.size():
        raise ValueError(
            f"all_gather_object: object_list must have {pg.size()} entries, got {len(object_list)}"
        )
    for i, b in enumerate(_gather_bytes(pg, pickle.dumps(obj))):
        object_list[i] = pickle.loads(b)


def gather_object(obj, object_gather_list=None, dst: int = 0, group=None) -> None:
    """Collect every rank's ``obj`` into ``object_gather_list`` on global rank ``dst``."""
    pg = resolve(group)
    if pg is None:
        return
    is_dst = pg.rank() == pg.group_rank(dst)
    if is_dst and (object_gather_list is None or len(object_gather_list) != pg.size()):
        raise ValueError(f"gather_object: object_gather_list must have {pg.size()} entries on dst")
    gathered = _gather_bytes(pg, pickle.dumps(obj))
    if is_dst:
        for i, b in enumerate(gathered):
            object_gather_list[i] = pickle.loads(b)


def broadcast_object_list(object_list: list, src: int = 0, group=None, device=None) -> None:
    """Replace ``object_list``'s entries on every rank with those of global rank ``src``."""
    pg = resolve(group)
    if pg is None:
        return
    is_src = pg.rank() == pg.group_rank(src)
    payload = pickle.dumps(list(object_list)) if is_src else b""
    size = wrap_array(np.array([len(payload)], np.int64))
    broadcast(size, src, group=pg)
    data = np.zeros(int(size._array[0]), np.uint8)
    if is_src:
        data[:] = np.frombuffer(payload, np.uint8)
    broadcast(wrap_array(data), src, group=pg)
    if not is_src:
        received = pickle.loads(data.tobytes())
        if len(received) != len(object_list):
            raise ValueError(
                f"broadcast_object_list: src has {len(received)} objects, this rank's list has "
                f"{len(object_list)}"
            )
        object_list[:] = received
