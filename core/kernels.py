"""Fused CUDA kernels (CuPy), used by ops only when their arrays are CuPy arrays.

Each kernel replaces a chain of CuPy calls (one launch and one temporary each) by one
launch: GELU and SiLU forward/backward, softmax/log_softmax over the last dim,
LayerNorm/RMSNorm forward and input gradient, cross-entropy forward and backward,
dropout, and the Adam/AdamW update of one tensor (the multi-tensor kernels are in
``multi_tensor.py``). Kernels are built on first use and cached; CuPy keeps the compiled
binaries per device and dtype. float16 and bfloat16 inputs compute in float32.
"""

from __future__ import annotations

import functools
import math

from .backend import _cupy

# Math type per storage type: float for half and float, double for double.
_PREAMBLE = r"""
template <typename T> struct ember_acc { typedef float type; };
template <> struct ember_acc<double> { typedef double type; };
"""

_GELU_ERF_FWD = "A v = (A)x; y = (T)((A)0.5 * v * ((A)1 + erf(v * (A)EMBER_SQRT1_2)));"
_GELU_ERF_BWD = (
    "A v = (A)x; A cdf = (A)0.5 * ((A)1 + erf(v * (A)EMBER_SQRT1_2));"
    "A pdf = exp((A)-0.5 * v * v) * (A)EMBER_INV_SQRT_2PI;"
    "gx = (T)((A)g * (cdf + v * pdf));"
)
_GELU_TANH_FWD = (
    "A v = (A)x; A t = tanh((A)K * (v + (A)0.044715 * v * v * v));y = (T)((A)0.5 * v * ((A)1 + t));"
)
_GELU_TANH_BWD = (
    "A v = (A)x; A t = tanh((A)K * (v + (A)0.044715 * v * v * v));"
    "A d = (A)0.5 * ((A)1 + t)"
    " + (A)0.5 * v * ((A)1 - t * t) * (A)K * ((A)1 + (A)(3 * 0.044715) * v * v);"
    "gx = (T)((A)g * d);"
)
_SILU_FWD = "A v = (A)x; y = (T)(v / ((A)1 + exp(-v)));"
_SILU_BWD = (
    "A v = (A)x; A s = (A)1 / ((A)1 + exp(-v));gx = (T)((A)g * s * ((A)1 + v * ((A)1 - s)));"
)
_TYPEDEF = "typedef ember_acc<T>::type A;"
_K = (
    f"#define K {math.sqrt(2 / math.pi)!r}\n"
    f"#define EMBER_SQRT1_2 {math.sqrt(0.5)!r}\n"
    f"#define EMBER_INV_SQRT_2PI {1 / math.sqrt(2 * math.pi)!r}\n"
)


@functools.cache
def _elementwise(name: str, in_params: str, out_params: str, body: str):
    cupy = _cupy()
    return cupy.ElementwiseKernel(
        in_params, out_params, _TYPEDEF + body, "ember_" + name, preamble=_PREAMBLE + _K
    )


def gelu_forward(x, approximate: str = "none"):
    if approximate == "tanh":
        return _elementwise("gelu_tanh_fwd", "T x", "T y", _GELU_TANH_FWD)(x)
    return _elementwise("gelu_erf_fwd", "T x", "T y", _GELU_ERF_FWD)(x)


def gelu_backward(x, grad, approximate: str = "none"):
    if approximate == "tanh":
        return _elementwise("gelu_tanh_bwd", "T x, T g", "T gx", _GELU_TANH_BWD)(x, grad)
    return _elementwise("gelu_erf_bwd", "T x, T g", "T gx", _GELU_ERF_BWD)(x, grad)


def silu_forward(x):
    return _elementwise("silu_fwd", "T x", "T y", _SILU_FWD)(x)


def silu_backward(x, grad):
    return _elementwise("silu_bwd", "T x, T g", "T gx", _SILU_BWD)(x, grad)


# -- row kernels: softmax / log_softmax, LayerNorm / RMSNorm, cross-entropy -----------------
# Storage type T (half, bfloat16, float, double); arithmetic in A = ember_acc<T>::type
# (float for the 16-bit types and float, double for double).

# Storage types and their loads/stores in the arithmetic type; multi_tensor.py's kernels
# start from it too.
STORAGE_TYPES = r"""
#include <cuda_fp16.h>
#include <cuda_bf16.h>
template <typename T> struct ember_acc { typedef float type; };
template <> struct ember_acc<double> { typedef double type; };
template <typename T> __device__ inline typename ember_acc<T>::type ember_ld(const T& v) {
    return static_cast<typename ember_acc<T>::type>(v);
}
template <typename T, typename A> __device__ inline T ember_st(A v) { return T(v); }
template <> __device__ inline __half ember_st<__half, float>(float v) {
    return __float2half_rn(v);
}
template <> __device__ inline __nv_bfloat16 ember_st<__nv_bfloat16, float>(float v) {
    return __float2bfloat16_rn(v);
}
"""

_ROW_SOURCE = (
    STORAGE_TYPES
    + r"""

__device__ inline float ember_neg_inf(float) { return -__int_as_float(0x7f800000); }
__device__ inline double ember_neg_inf(double) {
    return -__longlong_as_double(0x7ff0000000000000LL);
}
__device__ inline float ember_exp(float v) { return expf(v); }
__device__ inline double ember_exp(double v) { return exp(v); }
__device__ inline float ember_log(float v) { return logf(v); }
__device__ inline double ember_log(double v) { return log(v); }
__device__ inline float ember_rsqrt(float v) { return rsqrtf(v); }
__device__ inline double ember_rsqrt(double v) { return rsqrt(v); }

// Reduce v over the block (blockDim.x a multiple of 32, at most 1024): warp shuffles,
// then one warp over the per-warp results. Every thread gets the result.
template <typename A, bool MAX>
__device__ A ember_block_reduce(A v, A* scratch) {
    for (int off = 16; off > 0; off >>= 1) {
        A o = __shfl_down_sync(0xffffffffu, v, off);
        v = MAX ? (o > v ? o : v) : v + o;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nwarps = blockDim.x >> 5;
        v = lane < nwarps ? scratch[lane] : (MAX ? ember_neg_inf(v) : (A)0);
        for (int off = 16; off > 0; off >>= 1) {
            A o = __shfl_down_sync(0xffffffffu, v, off);
            v = MAX ? (o > v ? o : v) : v + o;
        }
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    const A out = scratch[0];
    __syncthreads();  // scratch is reused by the next reduction
    return out;
}

// max and log-sum-exp of one row, in A
template <typename T, typename A>
__device__ void ember_row_lse(const T* xr, long long n, A* scratch, A* m_out, A* lse_out) {
    A m = ember_neg_inf((A)0);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const A v = ember_ld(xr[i]);
        m = v > m ? v : m;
    }
    m = ember_block_reduce<A, true>(m, scratch);
    A s = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += ember_exp(ember_ld(xr[i]) - m);
    s = ember_block_reduce<A, false>(s, scratch);
    *m_out = m;
    *lse_out = m + ember_log(s);
}

// One block per row; `row >= rows` is uniform per block, so no thread skips a barrier.
template <typename T, bool LOG>
__global__ void ember_softmax_rows(const T* x, T* y, long long rows, long long n) {
    typedef typename ember_acc<T>::type A;
    __shared__ A scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const T* xr = x + row * n;
    T* yr = y + row * n;
    A m, lse;
    ember_row_lse<T, A>(xr, n, scratch, &m, &lse);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const A v = ember_ld(xr[i]) - lse;
        yr[i] = ember_st<T, A>(LOG ? v : ember_exp(v));
    }
}

// y = xhat * w + b with xhat = (x - mean) * invstd (RMS: mean = 0); keeps xhat (as T)
// and invstd (as A).
template <typename T, bool RMS>
__global__ void ember_norm_fwd(const T* x, const T* w, const T* b, T* y, T* xhat,
                               typename ember_acc<T>::type* invstd, long long rows,
                               long long n, typename ember_acc<T>::type eps, int has_w,
                               int has_b) {
    typedef typename ember_acc<T>::type A;
    __shared__ A scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const T* xr = x + row * n;
    A mean = 0;
    if (!RMS) {
        A s = 0;
        for (long long i = threadIdx.x; i < n; i += blockDim.x) s += ember_ld(xr[i]);
        mean = ember_block_reduce<A, false>(s, scratch) / (A)n;
    }
    A ss = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const A d = ember_ld(xr[i]) - mean;
        ss += d * d;
    }
    const A inv = ember_rsqrt(ember_block_reduce<A, false>(ss, scratch) / (A)n + eps);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const A h = (ember_ld(xr[i]) - mean) * inv;
        xhat[row * n + i] = ember_st<T, A>(h);
        A v = has_w ? h * ember_ld(w[i]) : h;
        y[row * n + i] = ember_st<T, A>(has_b ? v + ember_ld(b[i]) : v);
    }
    if (threadIdx.x == 0) invstd[row] = inv;
}

// d/dx of the above: (g*w - xhat * mean(g*w*xhat) - mean(g*w)) * invstd (RMS: no mean(g*w)).
template <typename T, bool RMS>
__global__ void ember_norm_bwd(const T* g, const T* xhat, const T* w,
                               const typename ember_acc<T>::type* invstd, T* gx,
                               long long rows, long long n, int has_w) {
    typedef typename ember_acc<T>::type A;
    __shared__ A scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const T* gr = g + row * n;
    const T* hr = xhat + row * n;
    A s0 = 0, s1 = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const A gw = has_w ? ember_ld(gr[i]) * ember_ld(w[i]) : ember_ld(gr[i]);
        s0 += gw;
        s1 += gw * ember_ld(hr[i]);
    }
    const A mean_g = RMS ? (A)0 : ember_block_reduce<A, false>(s0, scratch) / (A)n;
    const A proj = ember_block_reduce<A, false>(s1, scratch) / (A)n;
    const A inv = invstd[row];
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const A gw = has_w ? ember_ld(gr[i]) * ember_ld(w[i]) : ember_ld(gr[i]);
        gx[row * n + i] = ember_st<T, A>((gw - ember_ld(hr[i]) * proj - mean_g) * inv);
    }
}

// Cross-entropy of each row of logits x (rows, n) against class targets, with label
// smoothing eps: loss = lse - (1 - eps) * x[t] - eps / n * sum(x); ignored rows give 0.
// Keeps lse (as A) for the backward.
template <typename T, bool UNUSED>
__global__ void ember_xent_fwd(const T* x, const long long* target,
                               typename ember_acc<T>::type* loss,
                               typename ember_acc<T>::type* lse_out, long long rows,
                               long long n, long long ignore_index,
                               typename ember_acc<T>::type eps) {
    typedef typename ember_acc<T>::type A;
    __shared__ A scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const T* xr = x + row * n;
    const long long t = target[row];
    A m, lse;
    ember_row_lse<T, A>(xr, n, scratch, &m, &lse);
    A sum = 0;
    if (eps != (A)0) {
        for (long long i = threadIdx.x; i < n; i += blockDim.x) sum += ember_ld(xr[i]);
        sum = ember_block_reduce<A, false>(sum, scratch);
    }
    if (threadIdx.x == 0) {
        lse_out[row] = lse;
        const bool valid = t != ignore_index && t >= 0 && t < n;
        loss[row] = valid ? lse - ((A)1 - eps) * ember_ld(xr[t]) - eps / (A)n * sum : (A)0;
    }
}

// gx = (softmax(x) - (1 - eps) * onehot(t) - eps / n) * row_grad; 0 for ignored rows.
template <typename T, bool UNUSED>
__global__ void ember_xent_bwd(const T* x, const long long* target,
                               const typename ember_acc<T>::type* lse,
                               const typename ember_acc<T>::type* row_grad, T* gx,
                               long long rows, long long n, long long ignore_index,
                               typename ember_acc<T>::type eps) {
    typedef typename ember_acc<T>::type A;
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const long long t = target[row];
    const bool valid = t != ignore_index && t >= 0 && t < n;
    const A g = valid ? row_grad[row] : (A)0;
    const A l = lse[row];
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const A p = ember_exp(ember_ld(x[row * n + i]) - l);
        const A target_p = (i == t ? (A)1 - eps : (A)0) + eps / (A)n;
        gx[row * n + i] = ember_st<T, A>((p - target_p) * g);
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
_ROW_KERNELS = (
    "ember_softmax_rows",
    "ember_norm_fwd",
    "ember_norm_bwd",
    "ember_xent_fwd",
    "ember_xent_bwd",
)
_ROW_NAMES = {
    (kernel, dt, flag): f"{kernel}<{dt}, {'true' if flag else 'false'}>"
    for kernel in _ROW_KERNELS
    for dt in _C_TYPES.values()
    for flag in (False, True)
}


@functools.cache
def _row_module(device_id: int):
    """One module per device; it compiles on its first ``get_function``."""
    return _cupy().RawModule(
        code=_ROW_SOURCE, options=("--std=c++17",), name_expressions=list(_ROW_NAMES.values())
    )


def _acc_dtype(dtype):
    """The arithmetic dtype of a storage dtype: float64 for float64, else float32."""
    import numpy as np

    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _launch_rows(kernel: str, flag: bool, x, rows: int, n: int, args: tuple) -> None:
    """Run row kernel ``kernel`` for ``x``'s dtype with one block per row."""
    threads = min(1024, max(32, 1 << (n - 1).bit_length()))  # a power of two, >= one warp
    name = _ROW_NAMES[(kernel, _C_TYPES[x.dtype.name], flag)]
    with x.device:
        fn = _row_module(x.device.id).get_function(name)
        fn((rows,), (threads,), args)


def softmax_fits(x, dim: int) -> bool:
    """Whether the fused softmax applies: a floating dtype, non-empty, over the last dim."""
    return x.dtype.name in _C_TYPES and x.size > 0 and dim == x.ndim - 1


def softmax_lastdim(x, log: bool = False):
    """softmax (``log=False``) or log_softmax of ``x`` over its last dim (see
    ``softmax_fits``); 16-bit inputs compute in float32."""
    cupy = _cupy()
    x = cupy.ascontiguousarray(x)
    n = x.shape[-1]
    rows = x.size // n
    y = cupy.empty_like(x)
    _launch_rows("ember_softmax_rows", log, x, rows, n, (x, y, cupy.int64(rows), cupy.int64(n)))
    return y


def norm_fits(x, ndim: int, *params) -> bool:
    """Whether the fused LayerNorm/RMSNorm applies: a floating dtype, non-empty, and
    weight/bias (or None) of the same dtype."""
    return (
        x.dtype.name in _C_TYPES
        and x.size > 0
        and all(p is None or p.dtype == x.dtype for p in params)
    )


def norm_forward(x, weight, bias, ndim: int, eps: float, rms: bool):
    """LayerNorm (or RMSNorm) of ``x`` over its last ``ndim`` dims: ``(y, xhat, invstd)``
    with ``invstd`` shaped like the NumPy path's (kept dims of size 1); for 16-bit ``x``
    ``invstd`` is float32."""
    cupy = _cupy()
    x = cupy.ascontiguousarray(x)
    n = math.prod(x.shape[x.ndim - ndim :])
    rows = x.size // n
    acc = _acc_dtype(x.dtype)
    y, xhat = cupy.empty_like(x), cupy.empty_like(x)
    invstd = cupy.empty(x.shape[: x.ndim - ndim] + (1,) * ndim, acc)
    w = x if weight is None else cupy.ascontiguousarray(weight)  # a dummy pointer if None
    b = x if bias is None else cupy.ascontiguousarray(bias)
    args = (x, w, b, y, xhat, invstd, cupy.int64(rows), cupy.int64(n), acc.type(eps))
    args += (cupy.int32(weight is not None), cupy.int32(bias is not None))
    _launch_rows("ember_norm_fwd", rms, x, rows, n, args)
    return y, xhat, invstd


def norm_input_grad(grad, xhat, weight, invstd, rms: bool):
    """The input gradient of ``norm_forward`` from its saved ``xhat`` and ``invstd``."""
    cupy = _cupy()
    grad = cupy.ascontiguousarray(grad)
    n = xhat.size // invstd.size
    rows = invstd.size
    gx = cupy.empty_like(grad)
    w = grad if weight is None else cupy.ascontiguousarray(weight)
    args = (grad, xhat, w, invstd, gx, cupy.int64(rows), cupy.int64(n))
    _launch_rows("ember_norm_bwd", rms, grad, rows, n, args + (cupy.int32(weight is not None),))
    return gx


def cross_entropy_fits(logits, target, weight) -> bool:
    """Whether the fused cross-entropy applies: (N, C) floating logits, (N,) int64 class
    targets, no class weights."""
    return (
        logits.dtype.name in _C_TYPES
        and logits.ndim == 2
        and logits.size > 0
        and target.ndim == 1
        and target.dtype.name == "int64"
        and weight is None
    )


def cross_entropy_forward(logits, target, ignore_index: int, label_smoothing: float):
    """Per-row cross-entropy losses of ``logits`` (N, C) against ``target`` (N,), 0 for
    rows whose target is ``ignore_index``, and each row's log-sum-exp for the backward;
    both in the arithmetic dtype (float32 for 16-bit logits)."""
    cupy = _cupy()
    logits, target = cupy.ascontiguousarray(logits), cupy.ascontiguousarray(target)
    rows, n = logits.shape
    acc = _acc_dtype(logits.dtype)
    loss, lse = cupy.empty(rows, acc), cupy.empty(rows, acc)
    args = (logits, target, loss, lse, cupy.int64(rows), cupy.int64(n))
    args += (cupy.int64(ignore_index), acc.type(label_smoothing))
    _launch_rows("ember_xent_fwd", False, logits, rows, n, args)
    return loss, lse


def cross_entropy_backward(logits, target, lse, row_grad, ignore_index, label_smoothing):
    """The logits' gradient given each row's upstream gradient ``row_grad`` (N,)."""
    cupy = _cupy()
    logits, target = cupy.ascontiguousarray(logits), cupy.ascontiguousarray(target)
    rows, n = logits.shape
    acc = _acc_dtype(logits.dtype)
    row_grad = cupy.ascontiguousarray(row_grad, dtype=acc)
    gx = cupy.empty_like(logits)
    args = (logits, target, lse, row_grad, gx, cupy.int64(rows), cupy.int64(n))
    args += (cupy.int64(ignore_index), acc.type(label_smoothing))
    _launch_rows("ember_xent_bwd", False, logits, rows, n, args)
    return gx


# -- dropout ------------------------------------------------------------------------------

_DROPOUT_FWD = "A keep = (A)(u >= (float)p); mask = keep != (A)0; y = (T)((A)x * keep * (A)scale);"
_DROPOUT_BWD = "gx = (T)(mask ? (A)g * (A)scale : (A)0);"


def dropout_forward(x, uniform, p: float):
    """``(y, mask)``: ``x`` with the elements whose ``uniform`` draw (float32 in [0, 1))
    is below ``p`` zeroed and the rest scaled by 1 / (1 - p), and the bool keep mask."""
    kernel = _elementwise(
        "dropout_fwd", "T x, float32 u, float64 p, float64 scale", "T y, bool mask", _DROPOUT_FWD
    )
    return kernel(x, uniform, p, 1.0 / (1.0 - p))


def dropout_backward(grad, mask, p: float):
    kernel = _elementwise("dropout_bwd", "T g, bool mask, float64 scale", "T gx", _DROPOUT_BWD)
    return kernel(grad, mask, 1.0 / (1.0 - p))


# -- Adam / AdamW, one tensor per launch -------------------------------------------------

_ADAM = (
    "A v_p = (A)p * (A)decay;"
    "A v_g = (A)sign * (A)g + (A)l2 * v_p;"
    "A v_m = (A)m + (v_g - (A)m) * (A)(1 - beta1);"
    "A v_v = (A)v * (A)beta2 + (A)(1 - beta2) * v_g * v_g;"
    "p = (T)(v_p - (A)step_size * v_m / (sqrt(v_v) / (A)bc2_sqrt + (A)eps));"
    "m = (T)v_m; v = (T)v_v;"
)


def adam_step(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    maximize: bool,
    step: int,
) -> None:
    """One Adam (or AdamW when ``decoupled``) step of ``param`` in place, updating the
    moments in place: the same arithmetic as the NumPy path of ``ember.optim.Adam``."""
    kernel = _elementwise(
        "adam",
        "T g, float64 sign, float64 l2, float64 decay, float64 beta1, float64 beta2, "
        "float64 bc2_sqrt, float64 eps, float64 step_size",
        "T p, T m, T v",
        _ADAM,
    )
    decay = 1.0 - lr * weight_decay if decoupled else 1.0
    l2 = 0.0 if decoupled else weight_decay
    kernel(
        grad,
        -1.0 if maximize else 1.0,
        l2,
        decay,
        beta1,
        beta2,
        (1 - beta2**step) ** 0.5,
        eps,
        lr / (1 - beta1**step),
        param,
        exp_avg,
        exp_avg_sq,
    )
