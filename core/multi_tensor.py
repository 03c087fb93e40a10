"""Multi-tensor CUDA kernels (CuPy): one launch over a list of tensors instead of one (or
several) per tensor. Used for the SGD/momentum update, ``clip_grad_norm_`` and DDP's
bucket pack/unpack.

A launch gets a device table of the tensors' addresses and the running start offset of
each; a thread walks the flat index space of all of them (grid-stride) and finds its
tensor by binary search in the offsets. All tensors of one launch share a dtype and a
device; 16-bit types compute in float32.
"""

from __future__ import annotations

import functools

import numpy as np

from .backend import _cupy
from .kernels import STORAGE_TYPES

_SOURCE = (
    STORAGE_TYPES
    + r"""

// (tensor, offset within it) of flat index i; starts has ntensors + 1 entries.
__device__ inline void ember_locate(const long long* starts, int ntensors, long long i,
                                    int* which, long long* at) {
    int lo = 0, hi = ntensors - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (starts[mid] <= i) lo = mid; else hi = mid - 1;
    }
    *which = lo;
    *at = i - starts[lo];
}

#define EMBER_FOR_EACH(total)                                                            \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total);    \
         i += (long long)gridDim.x * blockDim.x)

// SGD with momentum, dampening, weight decay, Nesterov, maximize (PyTorch's arithmetic).
// init_buf: the momentum buffers are new, so buf = grad (no dampening), as in PyTorch.
template <typename T>
__global__ void ember_sgd(const long long* params, const long long* grads,
                          const long long* bufs, const long long* starts, int ntensors,
                          long long total, double lr, double momentum, double dampening,
                          double weight_decay, int nesterov, int maximize, int init_buf) {
    typedef typename ember_acc<T>::type A;
    EMBER_FOR_EACH(total) {
        int k;
        long long j;
        ember_locate(starts, ntensors, i, &k, &j);
        T* p = reinterpret_cast<T*>(params[k]) + j;
        const T* gp = reinterpret_cast<const T*>(grads[k]) + j;
        A g = ember_ld(*gp);
        if (maximize) g = -g;
        const A pv = ember_ld(*p);
        if (weight_decay != 0.0) g += (A)weight_decay * pv;
        if (momentum != 0.0) {
            T* b = reinterpret_cast<T*>(bufs[k]) + j;
            const A bv = init_buf ? g : (A)momentum * ember_ld(*b) + (A)(1.0 - dampening) * g;
            *b = ember_st<T, A>(bv);
            g = nesterov ? g + (A)momentum * bv : bv;
        }
        *p = ember_st<T, A>(pv - (A)lr * g);
    }
}

// Per-block partial sums of squares (NORM_INF: maxima of |x|) of all tensors, in double;
// partial has gridDim.x entries.
template <typename T, bool NORM_INF>
__global__ void ember_norm_partials(const long long* arrays, const long long* starts,
                                    int ntensors, long long total, double* partial) {
    __shared__ double scratch[256];  // blockDim.x == 256 (_THREADS)
    double acc = 0.0;
    EMBER_FOR_EACH(total) {
        int k;
        long long j;
        ember_locate(starts, ntensors, i, &k, &j);
        const double v = (double)ember_ld(reinterpret_cast<const T*>(arrays[k])[j]);
        if (NORM_INF) {
            const double a = fabs(v);
            acc = (a > acc || a != a) ? a : acc;  // NaN propagates
        } else {
            acc += v * v;
        }
    }
    scratch[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x >> 1; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const double o = scratch[threadIdx.x + s];
            const double m = scratch[threadIdx.x];
            scratch[threadIdx.x] = NORM_INF ? ((o > m || o != o) ? o : m) : m + o;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = scratch[0];
}

// Multiply every element by *coef (a device scalar: no host round trip).
template <typename T>
__global__ void ember_scale(const long long* arrays, const long long* starts, int ntensors,
                            long long total, const double* coef) {
    typedef typename ember_acc<T>::type A;
    const A c = (A)*coef;
    EMBER_FOR_EACH(total) {
        int k;
        long long j;
        ember_locate(starts, ntensors, i, &k, &j);
        T* x = reinterpret_cast<T*>(arrays[k]) + j;
        *x = ember_st<T, A>(ember_ld(*x) * c);
    }
}

// PACK: flat[i] = tensors[k][j]; else tensors[k][j] = flat[i] * scale.
template <typename T, bool PACK>
__global__ void ember_pack(const long long* arrays, const long long* starts, int ntensors,
                           long long total, T* flat, double scale) {
    typedef typename ember_acc<T>::type A;
    EMBER_FOR_EACH(total) {
        int k;
        long long j;
        ember_locate(starts, ntensors, i, &k, &j);
        T* x = reinterpret_cast<T*>(arrays[k]) + j;
        if (PACK) flat[i] = *x;
        else *x = scale == 1.0 ? flat[i] : ember_st<T, A>(ember_ld(flat[i]) * (A)scale);
    }
}
"""
)

_C_TYPES = {
    "float16": "__half",
    "bfloat16": "__nv_bfloat16",
    "float32": "float",
    "float64": "double",
}
_TEMPLATES = {
    "ember_sgd": ("{t}",),
    "ember_norm_partials": ("{t}, false", "{t}, true"),
    "ember_scale": ("{t}",),
    "ember_pack": ("{t}, true", "{t}, false"),
}
_NAMES = [
    f"{kernel}<{args.format(t=t)}>"
    for kernel, variants in _TEMPLATES.items()
    for t in _C_TYPES.values()
    for args in variants
]
_THREADS = 256
_MAX_BLOCKS = 4096


@functools.cache
def _module(device_id: int):
    return _cupy().RawModule(code=_SOURCE, options=("--std=c++17",), name_expressions=_NAMES)


def fits(arrays) -> bool:
    """Whether the multi-tensor kernels apply: CuPy arrays, one floating dtype, one device,
    all C-contiguous."""
    if not arrays or any(isinstance(a, np.ndarray) for a in arrays):
        return False
    first = arrays[0]
    return first.dtype.name in _C_TYPES and all(
        a.dtype == first.dtype and a.device.id == first.device.id and a.flags.c_contiguous
        for a in arrays
    )


def _table(arrays):
    """Device arrays of the tensors' addresses and start offsets, and the total size."""
    cupy = _cupy()
    sizes = np.fromiter((a.size for a in arrays), np.int64, len(arrays))
    starts = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    ptrs = np.fromiter((a.data.ptr for a in arrays), np.int64, len(arrays))
    with arrays[0].device:
        return cupy.asarray(ptrs), cupy.asarray(starts), int(starts[-1])


def _launch(kernel: str, variant: str, like, total: int, args: tuple) -> None:
    if total == 0:
        return
    name = f"{kernel}<{variant.format(t=_C_TYPES[like.dtype.name])}>"
    blocks = min(_MAX_BLOCKS, -(-total // _THREADS))  # total_norm allocates this many partials
    with like.device:
        _module(like.device.id).get_function(name)((blocks,), (_THREADS,), args)


def sgd_step(
    params,
    grads,
    bufs,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    init_buf: bool,
) -> None:
    """One SGD step of every array in ``params`` in place, in one launch (PyTorch's
    arithmetic). ``bufs`` are the momentum buffers (ignored when ``momentum`` is 0);
    ``init_buf`` says they are new and take the gradient as is."""
    p_ptrs, starts, total = _table(params)
    g_ptrs, _, _ = _table(grads)
    b_ptrs = _table(bufs)[0] if momentum != 0 else p_ptrs
    args = (p_ptrs, g_ptrs, b_ptrs, starts, np.int32(len(params)), np.int64(total))
    args += tuple(np.float64(v) for v in (lr, momentum, dampening, weight_decay))
    args += (np.int32(nesterov), np.int32(maximize), np.int32(init_buf))
    _launch("ember_sgd", "{t}", params[0], total, args)


def total_norm(arrays, norm_type: float):
    """The ``norm_type`` (2 or inf) norm of all ``arrays`` together, as a 0-d float64
    device array (no host synchronisation)."""
    cupy = _cupy()
    ptrs, starts, total = _table(arrays)
    inf = norm_type == float("inf")
    with arrays[0].device:
        blocks = max(1, min(_MAX_BLOCKS, -(-total // _THREADS)))
        partial = cupy.zeros(blocks, np.float64)
        args = (ptrs, starts, np.int32(len(arrays)), np.int64(total), partial)
        _launch("ember_norm_partials", "{t}, true" if inf else "{t}, false", arrays[0], total, args)
        if inf:
            return partial.max()
        return cupy.sqrt(partial.sum())


def scale_(arrays, coef) -> None:
    """Multiply every array in place by ``coef``, a 0-d float64 device array."""
    ptrs, starts, total = _table(arrays)
    args = (ptrs, starts, np.int32(len(arrays)), np.int64(total), coef)
    _launch("ember_scale", "{t}", arrays[0], total, args)


def pack(arrays, flat) -> None:
    """Copy ``arrays`` one after another into the 1-d ``flat``, in one launch."""
    ptrs, starts, total = _table(arrays)
    if total != flat.size:
        raise ValueError(f"pack: the arrays hold {total} elements but flat has {flat.size}")
    args = (ptrs, starts, np.int32(len(arrays)), np.int64(total), flat, np.float64(1.0))
    _launch("ember_pack", "{t}, true", flat, total, args)


def unpack(flat, arrays, scale: float = 1.0) -> None:
    """Copy consecutive pieces of ``flat`` (times ``scale``) into ``arrays``, in one
    launch: the inverse of ``pack``."""
    ptrs, starts, total = _table(arrays)
    if total != flat.size:
        raise ValueError(f"unpack: the arrays hold {total} elements but flat has {flat.size}")
    args = (ptrs, starts, np.int32(len(arrays)), np.int64(total), flat, np.float64(scale))
    _launch("ember_pack", "{t}, false", flat, total, args)
