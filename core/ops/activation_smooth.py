"""The smooth activations: gelu (with a fast float32 kernel on NumPy), silu, mish,
softplus, logsigmoid, softsign, tanhshrink and glu. The rectifiers (relu, elu, ...) are in
``activation.py``."""

from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..autograd import Function
from ..tensor import Tensor
from . import cpu_rows, special
from ._util import xp_of
from .activation import _floating, maybe_inplace
from .cast import float_input
from .declare import declared
from .unary_math import _sigmoid

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class Gelu(Function):
    # Set on the ctx when forward saved gelu'(x) itself (NumPy float32, exact erf).
    saved_derivative = False

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.approximate = approximate
        xp = xp_of(x)
        if xp is np and approximate == "none" and x.dtype == np.float32:
            if not isinstance(ctx, Function):  # not recording
                return _gelu_float32(x)
            # gelu'(x) costs three more passes here and replaces x in memory; backward
            # is then one product instead of recomputing erf
            y, d = _gelu_float32(x, derivative=True)
            ctx.save_for_backward(d)
            ctx.saved_derivative = True
            return y
        ctx.save_for_backward(x)
        if xp is not np:
            return kernels.gelu_forward(x, approximate)
        if cpu_rows.fits(x):

            def chunk(xs, out):
                out[...] = _gelu_numpy(xs, approximate)

            return cpu_rows.map_flat(chunk, (x,), (x.dtype,))[0]
        return _gelu_numpy(x, approximate).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        if ctx.saved_derivative:
            (d,) = ctx.saved_tensors
            out = cpu_rows.binary(np.multiply, grad, d)
            return (grad * d).astype(grad.dtype, copy=False) if out is None else out
        (x,) = ctx.saved_tensors
        xp = xp_of(x)
        if xp is not np:
            return kernels.gelu_backward(x, grad, ctx.approximate)
        if cpu_rows.fits(x, grad) and x.shape == grad.shape:

            def chunk(xs, gs, out):
                out[...] = gs * _gelu_derivative_numpy(xs, ctx.approximate)

            return cpu_rows.map_flat(chunk, (x, grad), (grad.dtype,))[0]
        return (grad * _gelu_derivative_numpy(x, ctx.approximate)).astype(grad.dtype, copy=False)


def _gelu_numpy(x, approximate):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + np.tanh(inner))
    return 0.5 * x * (1 + _erf(np, x / math.sqrt(2)))


def _gelu_derivative_numpy(x, approximate):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
        t = np.tanh(inner)
        d_inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner
    cdf = 0.5 * (1 + _erf(np, x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


# Abramowitz & Stegun 7.1.26 (see _erf) rewritten for x = z * sqrt(2):
# H = 0.5 * erfc(|z|) = poly(t) * exp(-x^2 / 2), t = 1 / (1 + p |x| / sqrt(2)), with the
# 0.5 folded into the coefficients (highest power first).
_GELU_P = np.float32(0.3275911 / math.sqrt(2))
_GELU_POLY = tuple(
    np.float32(0.5 * c) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)
_INV_SQRT_2PI = np.float32(1 / math.sqrt(2 * math.pi))
# Elements per pass: the three scratch buffers stay in cache (L2 and L3); fewer, longer NumPy
# calls also mean fewer GIL hand-offs between threads. 2^18 ran 5-7% faster than 2^17 on
# 1 and 2 threads (2M float32, the 2-core VM, 2026-12-06), 2^15 no faster on 2 threads than 1.
_GELU_CHUNK = 1 << 18


def _gelu_float32(x, derivative=False):
    """Exact-erf GELU of a float32 NumPy array, and with ``derivative`` also gelu'(x).

    Works through the flat array in cache-sized pieces with in-place ufuncs: about twenty
    passes over one piece instead of as many full-size temporaries, and
    ``cdf(x) = 0.5 + copysign(0.5 - H, x)`` spares the sign handling of ``erf``. Each
    thread's chunk of the array has its own scratch buffers.
    """

    def chunk(xs, out, grad=None):
        size = min(xs.size, _GELU_CHUNK)
        a_buf, t_buf, h_buf = (np.empty(size, np.float32) for _ in range(3))
        for start in range(0, xs.size, size):
            stop = min(start + size, xs.size)
            piece = slice(start, stop)
            a, t, h = a_buf[: stop - start], t_buf[: stop - start], h_buf[: stop - start]
            _gelu_piece(xs[piece], out[piece], None if grad is None else grad[piece], a, t, h)

    if x.size == 0:
        empty = np.empty(x.shape, np.float32)
        return (empty, empty.copy()) if derivative else empty
    outputs = (np.float32, np.float32) if derivative else (np.float32,)
    result = cpu_rows.map_flat(chunk, (x,), outputs)
    return result if derivative else result[0]


def _gelu_piece(xs, out, grad, a, t, h):
    np.abs(xs, out=a)
    np.multiply(a, _GELU_P, out=t)
    t += 1
    np.divide(1, t, out=t)  # faster than np.reciprocal for float32
    np.multiply(t, _GELU_POLY[0], out=h)
    for c in _GELU_POLY[1:]:
        h += c
        h *= t
    np.multiply(a, -0.5, out=t)
    t *= a
    np.exp(t, out=t)  # exp(-x^2 / 2)
    h *= t
    np.subtract(0.5, h, out=h)
    np.copysign(h, xs, out=h)
    h += 0.5  # cdf(x)
    np.multiply(xs, h, out=out)
    if grad is not None:
        t *= xs
        t *= _INV_SQRT_2PI  # x * pdf(x)
        np.add(h, t, out=grad)


def _erf(xp, x):
    if xp is not np:
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)
    if x.dtype == np.float64:
        return special.erf(x)  # vectorised, within a few ulp of libm's
    # Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32's resolution near 1
    xf = x.astype(np.float32, copy=False)
    a = np.abs(xf)
    t = 1 / (1 + np.float32(0.3275911) * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    y = 1 - poly.astype(np.float32) * np.exp(-a * a)
    return np.copysign(y, xf).astype(x.dtype, copy=False)


class Silu(Function):
    @staticmethod
    def forward(ctx, x):
        if xp_of(x) is not np:  # the fused kernels recompute the sigmoid: save x alone
            ctx.save_for_backward(x)
            return kernels.silu_forward(x)
        if cpu_rows.fits(x):

            def chunk(xs, y, s):
                s[...] = _sigmoid(xs)
                np.multiply(xs, s, out=y)

            y, s = cpu_rows.map_flat(chunk, (x,), (x.dtype, x.dtype))
        else:
            s = _sigmoid(x)
            y = x * s
        ctx.save_for_backward(x, s)
        return y

    @staticmethod
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        if len(saved) == 1:
            return kernels.silu_backward(saved[0], grad)
        x, s = saved
        if cpu_rows.fits(grad, x, s) and grad.shape == x.shape:

            def chunk(gs, xs, ss, out):
                out[...] = gs * ss * (1 + xs * (1 - ss))

            return cpu_rows.map_flat(chunk, (grad, x, s), (grad.dtype,))[0]
        return grad * s * (1 + x * (1 - s))


class Softplus(Function):
    autocast = "cuda:fp32"

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        xp = xp_of(x)
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        bx = x * beta
        soft = xp.log1p(xp.exp(-xp.abs(bx))) / beta + xp.maximum(x, 0)
        return xp.where(bx > threshold, x, soft).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        bx = x * ctx.beta
        return grad * xp_of(x).where(bx > ctx.threshold, 1, _sigmoid(bx)).astype(
            grad.dtype, copy=False
        )


@declared(Gelu, method=False)
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    r"""``x * Phi(x)``, ``Phi`` the standard normal CDF (``approximate="tanh"``: its tanh
    approximation)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return Gelu.apply(input, approximate=approximate)


@declared(Silu, method=False)
def silu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``x * sigmoid(x)``; an integer input computes in the default float dtype."""
    if not input.is_floating_point():
        input = float_input(input)
    return maybe_inplace(Silu.apply, input, inplace)


@declared(Softplus, method=False)
def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""``log(1 + exp(beta * x)) / beta``, linear above ``threshold``."""
    return Softplus.apply(input, beta=beta, threshold=threshold)


def _softplus(x):
    xp = xp_of(x)
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)


class Mish(Function):
    @staticmethod
    def forward(ctx, x):
        xp = xp_of(x)
        t = xp.tanh(_softplus(x))
        ctx.save_for_backward(x, t)
        return x * t

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved_tensors
        return grad * (t + x * (1 - t * t) * _sigmoid(x))


@declared(Mish, method=False)
def mish(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``x * tanh(softplus(x))``."""
    _floating("mish", input)
    return maybe_inplace(Mish.apply, input, inplace)


class LogSigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return -_softplus(-x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _sigmoid(-x)


@declared(LogSigmoid, method=False)
def logsigmoid(input: Tensor) -> Tensor:
    r"""``log(sigmoid(x))``, computed stably."""
    _floating("logsigmoid", input)
    return LogSigmoid.apply(input)


class Softsign(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + xp_of(x).abs(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        d = 1 + xp_of(x).abs(x)
        return grad / (d * d)


@declared(Softsign, method=False)
def softsign(input: Tensor) -> Tensor:
    r"""``x / (1 + |x|)``."""
    _floating("softsign", input)
    return Softsign.apply(input)


@declared(None, method=False)
def tanhshrink(input: Tensor) -> Tensor:
    r"""``input - tanh(input)``."""
    return input - input.tanh()


@declared(None, method=False)
def glu(input: Tensor, dim: int = -1) -> Tensor:
    r"""Gated linear unit: split ``input`` in halves ``a, b`` along ``dim``; ``a * sigmoid(b)``."""
    if input.shape[dim] % 2:
        raise RuntimeError(
            f"Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}"
        )
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()
