"""The rectifier activations: relu and its relatives (leaky_relu, prelu, rrelu, relu6 /
hardtanh, threshold, hardsigmoid, hardswish), the exponential-linear ones (elu, celu,
selu) and the shrinks. Smooth activations (gelu, silu, softplus, ...) are in
``activation_smooth.py``, softmax in ``softmax.py``. The functional forms take
torch.nn.functional's ``inplace=``."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..random import generator_for
from ..tensor import Tensor
from . import cpu_rows
from ._util import check_same_device, sum_to, xp_of
from .declare import declared
from .elementwise import where


def _floating(name: str, input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not input.is_floating_point():
        raise RuntimeError(f"{name}: expected a floating point input, got {input.dtype}")


def maybe_inplace(fn, input: Tensor, inplace: bool, *args) -> Tensor:
    """``fn(input, *args)``, written back into ``input`` when ``inplace``."""
    if inplace:
        return input._inplace_from(fn(input._snapshot(), *args))
    return fn(input, *args)


# -- relu and the leaky ones ----------------------------------------------------------------


class Relu(Function):
    r"""``max(0, x)``."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        y = cpu_rows.relu(x) if _float_array(x) else xp_of(x).maximum(0, x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        if _float_array(grad) and y.dtype == grad.dtype and y.shape == grad.shape:
            return cpu_rows.relu_grad(grad, y)
        return grad * (y != 0)


def _float_array(x) -> bool:
    return type(x) is np.ndarray and x.dtype in cpu_rows.ROW_DTYPES


@declared(Relu, inplace=True)
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``max(0, x)``."""
    return maybe_inplace(Relu.apply, input, inplace)


class LeakyRelu(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return xp_of(x).where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        pos = x > 0
        return grad * (
            pos + (~pos if not isinstance(pos, Tensor) else pos.logical_not()) * ctx.slope
        )


@declared(LeakyRelu, method=False)
def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    r"""``x`` where positive, else ``negative_slope * x``."""
    return maybe_inplace(_leaky_relu, input, inplace, negative_slope)


def _leaky_relu(input: Tensor, negative_slope: float) -> Tensor:
    return LeakyRelu.apply(input, negative_slope=negative_slope)


class Prelu(Function):
    """``max(0, x) + weight * min(0, x)``; weight has 1 or C (dim 1) elements."""

    @staticmethod
    def forward(ctx, x, w):
        w_b = _prelu_weight_view(w, x.ndim)
        ctx.save_for_backward(x, w)
        return xp_of(x).where(x > 0, x, w_b * x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        xp = xp_of(x)
        w_b = _prelu_weight_view(w, x.ndim)
        pos = x > 0
        gx = (
            (grad * xp.where(pos, 1, w_b)).astype(grad.dtype, copy=False)
            if ctx.needs_input_grad[0]
            else None
        )
        gw = None
        if ctx.needs_input_grad[1]:
            gw = sum_to(xp.where(pos, 0, grad * x), w_b.shape).reshape(w.shape)
        return gx, gw


def _prelu_weight_view(w, ndim):
    if w.size == 1 or ndim < 2:
        return w.reshape(())
    return w.reshape((1, w.size) + (1,) * (ndim - 2))


@declared(Prelu)
def prelu(input: Tensor, weight: Tensor) -> Tensor:
    r"""Parametric ReLU: ``max(0, x) + weight * min(0, x)``, ``weight`` of 1 or C elements."""
    _floating("prelu", input)
    n = weight.numel()
    if n != 1:
        channels = input.shape[1] if input.dim() >= 2 else 1
        if n != channels:
            raise RuntimeError(
                f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                f"{n} and channel size = {channels}."
            )
    check_same_device("prelu", input, weight)
    if weight.dtype is not input.dtype:
        weight = weight.to(input.dtype)
    return Prelu.apply(input, weight)


@declared(None, method=False)
def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
    *,
    generator=None,
) -> Tensor:
    r"""Randomized leaky ReLU: negative inputs scaled by a slope drawn from
    U(lower, upper) per element while training, by ``(lower + upper) / 2`` otherwise."""
    if training:
        slope = _uniform_like(input, lower, upper, generator)
    else:
        slope = (lower + upper) / 2
    out = where(input >= 0, input, input * slope)
    return input._inplace_from(out) if inplace else out


def _uniform_like(input: Tensor, low: float, high: float, generator=None) -> Tensor:
    rng = generator_for(generator, input.device).rng
    draw_dt = input._array.dtype if input._array.dtype in (np.float32, np.float64) else np.float32
    draws = rng.random(input.shape, dtype=draw_dt) * (high - low) + low
    return Tensor._make(draws.astype(input._array.dtype, copy=False), False, None, 0)


# -- clipped: hardtanh, relu6, hardsigmoid, hardswish, threshold ----------------------------


class Hardtanh(Function):
    @staticmethod
    def forward(ctx, x, min_val=-1.0, max_val=1.0):
        ctx.save_for_backward(x)
        ctx.bounds = (min_val, max_val)
        return xp_of(x).clip(x, min_val, max_val).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        return grad * ((x > lo) & (x < hi))


@declared(Hardtanh)
def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    r"""Clamp to ``[min_val, max_val]``; the gradient is zero outside the open interval."""
    _floating("hardtanh", input)
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return maybe_inplace(_hardtanh, input, inplace, min_val, max_val)


def _hardtanh(input: Tensor, min_val: float, max_val: float) -> Tensor:
    return Hardtanh.apply(input, min_val=min_val, max_val=max_val)


@declared(None)
def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``min(max(0, x), 6)``."""
    return hardtanh(input, 0.0, 6.0, inplace)


class Hardsigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (xp_of(x).clip(x / 6 + 0.5, 0, 1)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x > -3) & (x < 3)) / 6


@declared(Hardsigmoid, method=False)
def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``relu6(x + 3) / 6``."""
    _floating("hardsigmoid", input)
    return maybe_inplace(Hardsigmoid.apply, input, inplace)


class Hardswish(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x * xp_of(x).clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = xp_of(x)
        d = xp.where(x < -3, 0, xp.where(x <= 3, x / 3 + 0.5, 1))
        return (grad * d).astype(grad.dtype, copy=False)


@declared(Hardswish, method=False)
def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``x * relu6(x + 3) / 6``."""
    _floating("hardswish", input)
    return maybe_inplace(Hardswish.apply, input, inplace)


@declared(None, method=False)
def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    r"""``input`` where above ``threshold``, else ``value``."""
    out = where(input > threshold, input, value)
    return input._inplace_from(out) if inplace else out


# -- exponential-linear: elu, celu, selu ------------------------------------------------------


class Elu(Function):
    @staticmethod
    def forward(ctx, x, alpha=1.0):
        xp = xp_of(x)
        y = xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0))).astype(x.dtype, copy=False)
        ctx.save_for_backward(x, y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * xp_of(x).where(x > 0, 1, y + ctx.alpha).astype(grad.dtype, copy=False)


@declared(Elu, method=False)
def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    r"""``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    return maybe_inplace(_elu, input, inplace, alpha)


def _elu(input: Tensor, alpha: float) -> Tensor:
    return Elu.apply(input, alpha=alpha)


class Celu(Function):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    @staticmethod
    def forward(ctx, x, alpha=1.0):
        xp = xp_of(x)
        neg = alpha * xp.expm1(xp.minimum(x, 0) / alpha)
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return xp.where(x > 0, x, neg).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = xp_of(x)
        d = xp.where(x > 0, 1, xp.exp(xp.minimum(x, 0) / ctx.alpha))
        return (grad * d).astype(grad.dtype, copy=False)


@declared(Celu, method=False)
def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    _floating("celu", input)
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return maybe_inplace(_celu, input, inplace, alpha)


def _celu(input: Tensor, alpha: float) -> Tensor:
    return Celu.apply(input, alpha=alpha)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class Selu(Function):
    @staticmethod
    def forward(ctx, x):
        xp = xp_of(x)
        ctx.save_for_backward(x)
        neg = _SELU_ALPHA * xp.expm1(xp.minimum(x, 0))
        return (_SELU_SCALE * xp.where(x > 0, x, neg)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = xp_of(x)
        d = xp.where(x > 0, _SELU_SCALE, _SELU_SCALE * _SELU_ALPHA * xp.exp(xp.minimum(x, 0)))
        return (grad * d).astype(grad.dtype, copy=False)


@declared(Selu, method=False)
def selu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``scale * elu(x, alpha)`` with the self-normalising constants."""
    _floating("selu", input)
    return maybe_inplace(Selu.apply, input, inplace)


# -- shrinks ----------------------------------------------------------------------------------


@declared(None, method=False)
def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    r"""Shrink towards zero by ``lambd``; zero inside ``[-lambd, lambd]``."""
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, 0.0))


@declared(None, method=False)
def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    r"""``input`` where ``|input| > lambd``, else 0."""
    return where(input.abs() > lambd, input, 0.0)
