"""Activations beyond those in ``activation`` (hardtanh/relu6, hardsigmoid, hardswish,
mish, logsigmoid, selu, celu, softsign, prelu), and torch.nn.functional's forms of
relu/leaky_relu/elu/silu, which take ``inplace``."""

from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from . import activation as basic
from ._util import attach, check_same_device, sum_to, xp_of
from .elementwise import _sigmoid


def _floating(name: str, input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not input.is_floating_point():
        raise RuntimeError(f"{name}: expected a floating point input, got {input.dtype}")


def _maybe_inplace(fn, input: Tensor, inplace: bool, *args) -> Tensor:
    if inplace:
        return input._inplace_from(fn(input._snapshot(), *args))
    return fn(input, *args)


# torch.nn.functional's signatures (with ``inplace``) for the activations in ``activation``


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``max(0, x)``."""
    return _maybe_inplace(basic.relu, input, inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    r"""``x`` where positive, else ``negative_slope * x``."""
    return _maybe_inplace(basic.leaky_relu, input, inplace, negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    r"""``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    return _maybe_inplace(basic.elu, input, inplace, alpha)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``x * sigmoid(x)``."""
    return _maybe_inplace(basic.silu, input, inplace)


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


def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    r"""Clamp to ``[min_val, max_val]``; the gradient is zero outside the open interval."""
    _floating("hardtanh", input)
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(_hardtanh, input, inplace, min_val, max_val)


def _hardtanh(input: Tensor, min_val: float, max_val: float) -> Tensor:
    return Hardtanh.apply(input, min_val=min_val, max_val=max_val)


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


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``relu6(x + 3) / 6``."""
    _floating("hardsigmoid", input)
    return _maybe_inplace(Hardsigmoid.apply, input, inplace)


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


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``x * relu6(x + 3) / 6``."""
    _floating("hardswish", input)
    return _maybe_inplace(Hardswish.apply, input, inplace)


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


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``x * tanh(softplus(x))``."""
    _floating("mish", input)
    return _maybe_inplace(Mish.apply, input, inplace)


class LogSigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return -_softplus(-x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _sigmoid(-x)


def logsigmoid(input: Tensor) -> Tensor:
    r"""``log(sigmoid(x))``, computed stably."""
    _floating("logsigmoid", input)
    return LogSigmoid.apply(input)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


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


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    _floating("celu", input)
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _maybe_inplace(lambda x: Celu.apply(x, alpha=alpha), input, inplace)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""``scale * elu(x, alpha)`` with the self-normalising constants."""
    _floating("selu", input)
    return _maybe_inplace(_Selu.apply, input, inplace)


class _Selu(Function):
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


def softsign(input: Tensor) -> Tensor:
    r"""``x / (1 + |x|)``."""
    _floating("softsign", input)
    return Softsign.apply(input)


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


attach(relu6=relu6, hardtanh=hardtanh, prelu=prelu)
