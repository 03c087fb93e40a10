"""MPI backend: collectives on NumPy (and CuPy) buffers through mpi4py's upper-case,
non-blocking buffer methods (``Iallreduce``, ``Ibcast``, ...).

Data types: MPI has no bfloat16, so bfloat16 goes through a float32 staging copy (the
reduction then happens in float32 and is rounded once at the end). float16 is sent
natively where the MPI library has ``MPI_FLOAT16_T`` (MPICH >= 4.2), else staged too.
``bool`` reductions use the logical ops (SUM/MAX = or, MIN/PRODUCT = and), as in torch.

CuPy arrays go to MPI directly when the library is CUDA-aware (probed once), else
through a host copy. That path needs a GPU and could not be run where this was written:
it is kept deliberately small.
"""

from __future__ import annotations

import functools

import numpy as np

from .base import DONE, Backend, ReduceOp, Request


@functools.cache
def _mpi():
    from mpi4py import MPI

    return MPI


@functools.cache
def _mpi_op(op: ReduceOp, is_bool: bool):
    MPI = _mpi()
    if is_bool:
        return MPI.LOR if op in (ReduceOp.SUM, ReduceOp.MAX) else MPI.LAND
    return {
        ReduceOp.SUM: MPI.SUM,
        ReduceOp.PRODUCT: MPI.PROD,
        ReduceOp.MIN: MPI.MIN,
        ReduceOp.MAX: MPI.MAX,
    }[op]


@functools.cache
def _native_float16() -> bool:
    MPI = _mpi()
    dt = getattr(MPI, "FLOAT16_T", MPI.DATATYPE_NULL)
    return dt != MPI.DATATYPE_NULL


@functools.cache
def _cuda_aware() -> bool:
    """Whether the MPI library accepts device pointers (MPIX_Query_cuda_support)."""
    MPI = _mpi()
    query = getattr(MPI, "Query_cuda_support", None)
    if query is not None:
        try:
            return bool(query())
        except Exception:
            return False
    return "CUDA" in MPI.Get_library_version().upper() and "CUDA-AWARE" in (
        MPI.Get_library_version().upper()
    )


class MPIRequest(Request):
    __slots__ = ("req",)

    def __init__(self, req):
        self.req = req

    def test(self) -> bool:
        return self.req.Test()


class _Finish(Request):
    """Runs ``fn`` once the wrapped request is done (copy back from a staging buffer)."""

    __slots__ = ("inner", "fn")

    def __init__(self, inner: Request, fn):
        self.inner, self.fn = inner, fn

    def test(self) -> bool:
        if self.fn is None:
            return True
        if not self.inner.test():
            return False
        fn, self.fn = self.fn, None
        fn()
        return True


class MPIBackend(Backend):
    """Collectives over an mpi4py communicator."""

    name = "mpi"

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    # -- staging --------------------------------------------------------------------------
    def supports(self, array) -> bool:
        if not isinstance(array, np.ndarray):
            return _cuda_aware()
        kind = array.dtype
        if kind == np.float16:
            return _native_float16()
        return kind.kind in "biuf"

    def _staged(self, arrays, start):
        """Run ``start(*buffers)`` on buffers MPI can take, copying results back into
        ``arrays[0]`` (the output) once the request is done."""
        first = arrays[0] if arrays[0] is not None else arrays[1]
        if isinstance(first, np.ndarray):
            if self.supports(first):
                return start(*arrays)
            staged = [None if a is None else a.astype(np.float32) for a in arrays]
            out = arrays[0]
            req = start(*staged)
            if out is None:
                return req
            return _Finish(req, lambda: np.copyto(out, staged[0], casting="unsafe"))
        return self._staged_device(arrays, start)

    def _staged_device(self, arrays, start):  # pragma: no cover - needs a GPU
        import cupy

        cupy.cuda.get_current_stream().synchronize()  # MPI reads memory, not streams
        first = arrays[0] if arrays[0] is not None else arrays[1]
        native = first.dtype.kind in "biuf" and (first.dtype != np.float16 or _native_float16())
        if native and _cuda_aware():
            return start(*arrays)
        hosts = [None if a is None else _to_pinned_host(a) for a in arrays]
        out = arrays[0]
        req = self._staged(hosts, start)
        if out is None:
            return req
        return _Finish(req, lambda: out.set(hosts[0]))

    # -- collectives ----------------------------------------------------------------------
    def all_reduce(self, array, op):
        MPI = _mpi()

        def start(buf):
            return MPIRequest(
                self.comm.Iallreduce(MPI.IN_PLACE, buf, _mpi_op(op, buf.dtype == np.bool_))
            )

        return self._staged([array], start)

    def broadcast(self, array, root):
        if array.dtype == np.float16 or str(array.dtype) == "bfloat16":
            # a broadcast only moves bytes: send the raw 16-bit pattern, no staging
            array = array.view(np.uint16)
        return self._staged([array], lambda buf: MPIRequest(self.comm.Ibcast(buf, root=root)))

    def reduce(self, array, op, root):
        MPI = _mpi()

        def start(buf):
            mop = _mpi_op(op, buf.dtype == np.bool_)
            if self.rank == root:
                return MPIRequest(self.comm.Ireduce(MPI.IN_PLACE, buf, mop, root=root))
            return MPIRequest(self.comm.Ireduce(buf, None, mop, root=root))

        return self._staged([array], start)

    def all_gather(self, out, array):
        return self._staged(
            [_raw(out), _raw(array)], lambda o, a: MPIRequest(self.comm.Iallgather(a, o))
        )

    def reduce_scatter(self, out, array, op):
        def start(o, a):
            return MPIRequest(
                self.comm.Ireduce_scatter_block(a, o, _mpi_op(op, a.dtype == np.bool_))
            )

        return self._staged([out, array], start)

    def all_to_all(self, out, array, send_counts, recv_counts):
        send_displs = np.concatenate([[0], np.cumsum(send_counts)[:-1]]).tolist()
        recv_displs = np.concatenate([[0], np.cumsum(recv_counts)[:-1]]).tolist()

        def start(o, a):
            return MPIRequest(
                self.comm.Ialltoallv(
                    [a, (list(send_counts), send_displs)], [o, (list(recv_counts), recv_displs)]
                )
            )

        return self._staged([_raw(out), _raw(array)], start)

    def gather(self, out, array, root):
        def start(o, a):
            return MPIRequest(self.comm.Igather(a, o, root=root))

        return self._staged([_raw(out), _raw(array)], start)

    def scatter(self, out, array, root):
        def start(o, a):
            return MPIRequest(self.comm.Iscatter(a, o, root=root))

        return self._staged([_raw(out), _raw(array)], start)

    def send(self, array, peer, tag):
        return self._staged([_raw(array)], lambda a: MPIRequest(self.comm.Isend(a, peer, tag)))

    def recv(self, array, peer, tag):
        return self._staged([_raw(array)], lambda a: MPIRequest(self.comm.Irecv(a, peer, tag)))

    def barrier(self):
        if self.size == 1:
            return DONE
        return MPIRequest(self.comm.Ibarrier())


def _raw(array):
    """Collectives that only move data send 16-bit floats as their raw bits."""
    if array is not None and (array.dtype == np.float16 or str(array.dtype) == "bfloat16"):
        return array.view(np.uint16)
    return array


def _to_pinned_host(array):  # pragma: no cover - needs a GPU
    import cupyx

    host = cupyx.empty_pinned(array.shape, array.dtype)
    array.get(out=host)
    return host
