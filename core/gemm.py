"""Matrix products of CuPy arrays, with float16/bfloat16 batches on cuBLAS.

CuPy 14 runs 2-D float16/bfloat16 products on cuBLAS (``cublasGemmEx``, float32
accumulation, tensor cores), but with more than two dims it copies float16 operands to
float32 and multiplies them there, and sends bfloat16 to its generic integer kernel. So
``matmul`` here takes 16-bit products with batch dims itself: ``x @ W`` with a 2-D ``W``
becomes one 2-D GEMM over the folded batch, and a true batch one
``cublasGemmStridedBatchedEx`` call with float32 accumulation (operands already
transposed in memory are passed as such, and one matrix shared by the whole batch with a
zero stride, without a copy). Everything else is ``cupy.matmul``.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import _cupy

_CUDA_TYPES = {"float16": 2, "bfloat16": 14}  # cudaDataType_t: CUDA_R_16F, CUDA_R_16BF
_CUBLAS_COMPUTE_32F = 68
_CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99
_OP_N, _OP_T = 0, 1


def matmul(a, b, out=None):
    """``a @ b`` of CuPy arrays with NumPy's semantics (batch dims broadcast)."""
    cupy = _cupy()
    if (
        a.dtype.name not in _CUDA_TYPES
        or a.dtype != b.dtype
        or a.ndim < 2
        or b.ndim < 2
        or max(a.ndim, b.ndim) <= 2
    ):
        return cupy.matmul(a, b, out=out)
    if b.ndim == 2:  # x @ W: one GEMM over the rows of every batch
        k = a.shape[-1]
        c = cupy.matmul(a.reshape(-1, k), b).reshape(a.shape[:-1] + (b.shape[-1],))
    else:
        c = _batched(cupy, a, b)
    if out is None:
        return c
    out[...] = c
    return out


def _operand(cupy, x):
    """``(array, transposed)``: ``x`` itself when C-contiguous, its transpose when that is
    (then cuBLAS reads it transposed), else a contiguous copy."""
    if x.flags.c_contiguous:
        return x, False
    xt = x.swapaxes(-1, -2)
    if xt.flags.c_contiguous:
        return xt, True
    return cupy.ascontiguousarray(x), False


def _batch_operand(cupy, x, batch):
    """``(array, transposed, batch stride)`` for cuBLAS: a single matrix (all batch dims
    1) is shared by every product with stride 0, anything else broadcast to ``batch``."""
    rows, cols = x.shape[-2:]
    if math.prod(x.shape[:-2]) == 1:
        x, transposed = _operand(cupy, x.reshape(rows, cols))
        return x, transposed, 0
    x, transposed = _operand(cupy, cupy.broadcast_to(x, batch + (rows, cols)))
    return x, transposed, rows * cols


def _batched(cupy, a, b):
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k = a.shape[-2:]
    if b.shape[-2] != k:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
    n = b.shape[-1]
    count = math.prod(batch)
    c = cupy.empty(batch + (m, n), a.dtype)
    if c.size == 0:
        return c
    if k == 0:
        c.fill(0)
        return c
    a, a_t, a_stride = _batch_operand(cupy, a, batch)
    b, b_t, b_stride = _batch_operand(cupy, b, batch)
    # Row-major C = A @ B is column-major C^T = B^T @ A^T: cuBLAS's first operand is b.
    from cupy_backends.cuda.libs import cublas

    dtype = _CUDA_TYPES[c.dtype.name]
    one, zero = np.array(1.0, np.float32), np.array(0.0, np.float32)
    with c.device:
        handle = cupy.cuda.device.get_cublas_handle()
        cublas.gemmStridedBatchedEx(
            handle,
            _OP_T if b_t else _OP_N,
            _OP_T if a_t else _OP_N,
            n,
            m,
            k,
            one.ctypes.data,
            b.data.ptr,
            dtype,
            k if b_t else n,
            b_stride,
            a.data.ptr,
            dtype,
            m if a_t else k,
            a_stride,
            zero.ctypes.data,
            c.data.ptr,
            dtype,
            n,
            m * n,
            count,
            _CUBLAS_COMPUTE_32F,
            _CUBLAS_GEMM_DEFAULT_TENSOR_OP,
        )
    return c
