"""Fused CUDA kernels (CuPy), used by ops only when their arrays are CuPy arrays.

Each kernel replaces a chain of CuPy calls (one launch and one temporary each) by one
launch: GELU and SiLU forward/backward, softmax/log_softmax over the last dim,
LayerNorm/RMSNorm forward and input gradient, and the Adam/AdamW update of one tensor. Kernels are built on first use and cached; CuPy keeps
the compiled binaries per device and dtype. Half-precision inputs compute in float32.
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


# -- row kernels: softmax / log_softmax and LayerNorm / RMSNorm over the last dims -------

_ROW_SOURCE = r"""
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
template <typename T, bool MAX>
__device__ T ember_block_reduce(T v, T* scratch) {
    for (int off = 16; off > 0; off >>= 1) {
        T o = __shfl_down_sync(0xffffffffu, v, off);
        v = MAX ? (o > v ? o : v) : v + o;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nwarps = blockDim.x >> 5;
        v = lane < nwarps ? scratch[lane] : (MAX ? ember_neg_inf(v) : (T)0);
        for (int off = 16; off > 0; off >>= 1) {
            T o = __shfl_down_sync(0xffffffffu, v, off);
            v = MAX ? (o > v ? o : v) : v + o;
        }
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    const T out = scratch[0];
    __syncthreads();  // scratch is reused by the next reduction
    return out;
}

// One block per row; `row >= rows` is uniform per block, so no thread skips a barrier.
template <typename T, bool LOG>
__global__ void ember_softmax_rows(const T* x, T* y, long long rows, long long n) {
    __shared__ T scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const T* xr = x + row * n;
    T* yr = y + row * n;
    T m = ember_neg_inf((T)0);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) m = xr[i] > m ? xr[i] : m;
    m = ember_block_reduce<T, true>(m, scratch);
    T s = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += ember_exp(xr[i] - m);
    s = ember_block_reduce<T, false>(s, scratch);
    if (LOG) {
        const T shift = m + ember_log(s);
        for (long long i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] - shift;
    } else {
        const T inv = (T)1 / s;
        for (long long i = threadIdx.x; i < n; i += blockDim.x)
            yr[i] = ember_exp(xr[i] - m) * inv;
    }
}

// y = xhat * w + b with xhat = (x - mean) * invstd (RMS: mean = 0); keeps xhat and invstd.
template <typename T, bool RMS>
__global__ void ember_norm_fwd(const T* x, const T* w, const T* b, T* y, T* xhat, T* invstd,
                               long long rows, long long n, T eps, int has_w, int has_b) {
    __shared__ T scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const T* xr = x + row * n;
    T mean = 0;
    if (!RMS) {
        T s = 0;
        for (long long i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
        mean = ember_block_reduce<T, false>(s, scratch) / (T)n;
    }
    T ss = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const T d = xr[i] - mean;
        ss += d * d;
    }
    const T inv = ember_rsqrt(ember_block_reduce<T, false>(ss, scratch) / (T)n + eps);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const T h = (xr[i] - mean) * inv;
        xhat[row * n + i] = h;
        T v = has_w ? h * w[i] : h;
        y[row * n + i] = has_b ? v + b[i] : v;
    }
    if (threadIdx.x == 0) invstd[row] = inv;
}

// d/dx of the above: (g*w - xhat * mean(g*w*xhat) - mean(g*w)) * invstd (RMS: no mean(g*w)).
template <typename T, bool RMS>
__global__ void ember_norm_bwd(const T* g, const T* xhat, const T* w, const T* invstd, T* gx,
                               long long rows, long long n, int has_w) {
    __shared__ T scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const T* gr = g + row * n;
    const T* hr = xhat + row * n;
    T s0 = 0, s1 = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const T gw = has_w ? gr[i] * w[i] : gr[i];
        s0 += gw;
        s1 += gw * hr[i];
    }
    const T mean_g = RMS ? (T)0 : ember_block_reduce<T, false>(s0, scratch) / (T)n;
    const T proj = ember_block_reduce<T, false>(s1, scratch) / (T)n;
    const T inv = invstd[row];
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        const T gw = has_w ? gr[i] * w[i] : gr[i];
        gx[row * n + i] = (gw - hr[i] * proj - mean_g) * inv;
    }
}
"""

_C_TYPES = {"float32": "float", "float64": "double"}
_ROW_NAMES = {
    (kernel, dt, flag): f"{kernel}<{dt}, {'true' if flag else 'false'}>"
    for kernel in ("ember_softmax_rows", "ember_norm_fwd", "ember_norm_bwd")
    for dt in _C_TYPES.values()
    for flag in (False, True)
}


@functools.cache
def _row_module(device_id: int):
    """One module per device; it compiles on its first ``get_function``."""
    return _cupy().RawModule(code=_ROW_SOURCE, name_expressions=list(_ROW_NAMES.values()))


def _launch_rows(kernel: str, flag: bool, x, rows: int, n: int, args: tuple) -> None:
    """Run row kernel ``kernel`` for ``x``'s dtype with one block per row."""
    threads = min(1024, max(32, 1 << (n - 1).bit_length()))  # a power of two, >= one warp
    name = _ROW_NAMES[(kernel, _C_TYPES[x.dtype.name], flag)]
    with x.device:
        fn = _row_module(x.device.id).get_function(name)
        fn((rows,), (threads,), args)


def softmax_fits(x, dim: int) -> bool:
    """Whether the fused softmax applies: float32/float64, non-empty, over the last dim."""
    return x.dtype.name in _C_TYPES and x.size > 0 and dim == x.ndim - 1


def softmax_lastdim(x, log: bool = False):
    """softmax (``log=False``) or log_softmax of ``x`` over its last dim (see
    ``softmax_fits``)."""
    cupy = _cupy()
    x = cupy.ascontiguousarray(x)
    n = x.shape[-1]
    rows = x.size // n
    y = cupy.empty_like(x)
    _launch_rows("ember_softmax_rows", log, x, rows, n, (x, y, cupy.int64(rows), cupy.int64(n)))
    return y


def norm_fits(x, ndim: int, *params) -> bool:
    """Whether the fused LayerNorm/RMSNorm applies: float32/float64, non-empty, and
    weight/bias (or None) of the same dtype."""
    return (
        x.dtype.name in _C_TYPES
        and x.size > 0
        and all(p is None or p.dtype == x.dtype for p in params)
    )


def norm_forward(x, weight, bias, ndim: int, eps: float, rms: bool):
    """LayerNorm (or RMSNorm) of ``x`` over its last ``ndim`` dims: ``(y, xhat, invstd)``
    with ``invstd`` shaped like the NumPy path's (kept dims of size 1)."""
    cupy = _cupy()
    x = cupy.ascontiguousarray(x)
    n = math.prod(x.shape[x.ndim - ndim :])
    rows = x.size // n
    y, xhat = cupy.empty_like(x), cupy.empty_like(x)
    invstd = cupy.empty(x.shape[: x.ndim - ndim] + (1,) * ndim, x.dtype)
    w = x if weight is None else cupy.ascontiguousarray(weight)  # a dummy pointer if None
    b = x if bias is None else cupy.ascontiguousarray(bias)
    args = (x, w, b, y, xhat, invstd, cupy.int64(rows), cupy.int64(n), x.dtype.type(eps))
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
