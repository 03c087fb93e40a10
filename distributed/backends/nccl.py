"""NCCL backend through ``cupy.cuda.nccl`` (imported lazily; needs CuPy and a GPU).

Rank 0 makes the NCCL unique id and broadcasts it over MPI; each group gets one
``NcclCommunicator``. Collectives run on a dedicated CUDA stream: it first waits on an
event recorded on the caller's current stream (so inputs are ready), and records a
"done" event after the collective; the request tests that event, and a finished
request makes the caller's stream wait on it, so later kernels see the result.

CuPy (>= 14) loads NCCL from the ``nvidia-nccl-cu12`` / ``nvidia-nccl-cu13`` wheel (the
``ember[cuda12]`` / ``ember[cuda13]`` extras); ``unavailable_reason()`` says when it can't.
bfloat16 is ncclBfloat16 (NCCL >= 2.10). Written from the CuPy documentation; the GPU
paths could not be run where this was written (no GPU): ``scripts/gpu_check`` runs them.
``dtype_code``/``op_code`` and the probe are tested without one.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .base import Backend, ReduceOp, Request

# ncclDataType_t / ncclRedOp_t values (nccl.h), used where cupy lacks a constant
_NCCL_DTYPES = {
    "int8": 0,
    "bool": 0,
    "uint8": 1,
    "int32": 2,
    "uint32": 3,
    "int64": 4,
    "uint64": 5,
    "float16": 6,
    "float32": 7,
    "float64": 8,
    "bfloat16": 9,
}
_NCCL_OPS = {ReduceOp.SUM: 0, ReduceOp.PRODUCT: 1, ReduceOp.MAX: 2, ReduceOp.MIN: 3}


def dtype_code(dtype) -> int:
    """The ncclDataType_t for a NumPy/ml_dtypes dtype; TypeError if NCCL has none."""
    name = str(np.dtype(dtype)) if str(dtype) != "bfloat16" else "bfloat16"
    try:
        return _NCCL_DTYPES[name]
    except KeyError:
        raise TypeError(f"NCCL does not support dtype {name}") from None


def op_code(op: ReduceOp, dtype) -> int:
    if np.dtype(dtype) == np.bool_ and op is not ReduceOp.MAX and op is not ReduceOp.MIN:
        raise TypeError(f"NCCL reductions on bool support only MAX/MIN, got {op}")
    return _NCCL_OPS[op]


def _load_nccl():
    """``cupy.cuda.nccl`` with its "library could not be loaded" warning silenced (ember
    reports the reason itself), or None when NCCL can't be loaded."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*library could not be loaded")
        try:
            from cupy.cuda import nccl
        except ImportError:
            return None
    return nccl if getattr(nccl, "available", True) else None


@functools.cache
def unavailable_reason() -> str | None:
    """Why the ``nccl`` backend can't run here (probed once), or None when it can. NCCL is
    probed only where CUDA is available."""
    from ...core.backend import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is not None:
        return f"CUDA is not available: {reason}"
    if _load_nccl() is None:
        return (
            "CuPy could not load the NCCL library; install the wheel matching CuPy's CUDA "
            "major version: pip install nvidia-nccl-cu13 (or nvidia-nccl-cu12), which "
            "the ember[cuda13] / ember[cuda12] extras include"
        )
    return None


def is_available() -> bool:
    return unavailable_reason() is None


def version() -> tuple[int, int, int]:
    """NCCL's version as (major, minor, patch); needs ``is_available()``."""
    code = _load_nccl().get_version()  # e.g. 22703 for 2.27.3
    return code // 10000, code // 100 % 100, code % 100


class NCCLRequest(Request):  # pragma: no cover - needs a GPU
    __slots__ = ("event", "keep")

    def __init__(self, event, keep):
        self.event, self.keep = event, keep  # keep: arrays alive until done

    def test(self) -> bool:
        if self.keep is None:
            return True
        if not self.event.done:
            return False
        import cupy

        cupy.cuda.get_current_stream().wait_event(self.event)
        self.keep = None
        return True


class NCCLBackend(Backend):  # pragma: no cover - needs a GPU
    """Collectives on CuPy arrays over one NCCL communicator."""

    name = "nccl"

    def __init__(self, mpi_comm, device_index: int):
        import cupy

        nccl = _load_nccl()
        self._cupy, self._nccl = cupy, nccl
        self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        self.device = cupy.cuda.Device(device_index)
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = mpi_comm.bcast(uid, root=0)
        with self.device:
            self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
            self.stream = cupy.cuda.Stream(non_blocking=True)

    def supports(self, array) -> bool:
        return not isinstance(array, np.ndarray)

    def _launch(self, arrays, body) -> NCCLRequest:
        cupy = self._cupy
        with self.device:
            ready = cupy.cuda.Event(disable_timing=True)
            ready.record(cupy.cuda.get_current_stream())
            self.stream.wait_event(ready)
            body(self.stream.ptr)
            done = cupy.cuda.Event(disable_timing=True)
            done.record(self.stream)
        return NCCLRequest(done, arrays)

    def all_reduce(self, array, op):
        code, dt = op_code(op, array.dtype), dtype_code(array.dtype)
        ptr = array.data.ptr
        return self._launch(
            [array], lambda s: self.comm.allReduce(ptr, ptr, array.size, dt, code, s)
        )

    def broadcast(self, array, root):
        dt, ptr = dtype_code(array.dtype), array.data.ptr
        return self._launch([array], lambda s: self.comm.bcast(ptr, array.size, dt, root, s))

    def reduce(self, array, op, root):
        code, dt, ptr = op_code(op, array.dtype), dtype_code(array.dtype), array.data.ptr
        return self._launch(
            [array], lambda s: self.comm.reduce(ptr, ptr, array.size, dt, code, root, s)
        )

    def all_gather(self, out, array):
        dt = dtype_code(array.dtype)
        return self._launch(
            [out, array],
            lambda s: self.comm.allGather(array.data.ptr, out.data.ptr, array.size, dt, s),
        )

    def reduce_scatter(self, out, array, op):
        code, dt = op_code(op, array.dtype), dtype_code(array.dtype)
        return self._launch(
            [out, array],
            lambda s: self.comm.reduceScatter(array.data.ptr, out.data.ptr, out.size, dt, code, s),
        )

    def _p2p(self, sends, recvs, stream):
        """Grouped point-to-point: (array, peer) pairs, NCCL matches them per peer."""
        nccl = self._nccl
        nccl.groupStart()
        for a, peer in sends:
            self.comm.send(a.data.ptr, a.size, dtype_code(a.dtype), peer, stream)
        for a, peer in recvs:
            self.comm.recv(a.data.ptr, a.size, dtype_code(a.dtype), peer, stream)
        nccl.groupEnd()

    def all_to_all(self, out, array, send_counts, recv_counts):
        flat_in, flat_out = array.reshape(-1), out.reshape(-1)
        so = np.concatenate([[0], np.cumsum(send_counts)]).tolist()
        ro = np.concatenate([[0], np.cumsum(recv_counts)]).tolist()
        sends = [(flat_in[so[p] : so[p + 1]], p) for p in range(self.size)]
        recvs = [(flat_out[ro[p] : ro[p + 1]], p) for p in range(self.size)]
        return self._launch([out, array], lambda s: self._p2p(sends, recvs, s))

    def gather(self, out, array, root):
        sends = [(array, root)]
        recvs = []
        if self.rank == root:
            blocks = out.reshape(self.size, -1)
            recvs = [(blocks[p], p) for p in range(self.size)]
        return self._launch([out, array], lambda s: self._p2p(sends, recvs, s))

    def scatter(self, out, array, root):
        recvs = [(out, root)]
        sends = []
        if self.rank == root:
            blocks = array.reshape(self.size, -1)
            sends = [(blocks[p], p) for p in range(self.size)]
        return self._launch([out, array], lambda s: self._p2p(sends, recvs, s))

    def send(self, array, peer, tag):
        return self._launch([array], lambda s: self._p2p([(array, peer)], [], s))

    def recv(self, array, peer, tag):
        return self._launch([array], lambda s: self._p2p([], [(array, peer)], s))

    def barrier(self):
        one = self._cupy.ones(1, np.float32)
        return self.all_reduce(one, ReduceOp.SUM)
