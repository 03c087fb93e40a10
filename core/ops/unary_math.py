"""More elementwise math: trigonometric and hyperbolic functions and their inverses,
``erf``/``erfc``/``erfinv``, ``exp2``, ``sign``, and the binary ``atan2``, ``logaddexp``,
``logaddexp2``, ``copysign`` and ``lerp``.

Every backward is written with operators and ``call`` so that it also runs on Tensors:
all of these support double backward (``create_graph=True``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..tensor import Tensor
from . import special
from ._util import attach, call, inplace, sum_to, xp_of
from .elementwise import _apply_binary, _operands, _unary, as_tensor_like, to_copy

_LN2 = math.log(2)
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2

# -- unary ------------------------------------------------------------------------------------


class Tan(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).tan(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (y * y + 1)


def _input_op(name, compute, derivative):
    """A Function computing ``compute(x)`` (a NumPy/CuPy function name, or a function of
    the array) whose gradient is ``grad * derivative(x)``."""

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return compute(x) if callable(compute) else getattr(xp_of(x), compute)(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * derivative(x)

    return type(
        name,
        (Function,),
        {
            "differentiable_backward": True,
            "forward": staticmethod(forward),
            "backward": staticmethod(backward),
        },
    )


Asin = _input_op("Asin", "arcsin", lambda x: 1 / call("sqrt", 1 - x * x))
Acos = _input_op("Acos", "arccos", lambda x: -1 / call("sqrt", 1 - x * x))
Atan = _input_op("Atan", "arctan", lambda x: 1 / (x * x + 1))
Sinh = _input_op("Sinh", "sinh", lambda x: call("cosh", x))
Cosh = _input_op("Cosh", "cosh", lambda x: call("sinh", x))
Asinh = _input_op("Asinh", "arcsinh", lambda x: 1 / call("sqrt", x * x + 1))
Acosh = _input_op("Acosh", "arccosh", lambda x: 1 / call("sqrt", (x - 1) * (x + 1)))
Atanh = _input_op("Atanh", "arctanh", lambda x: 1 / (1 - x * x))
Erf = _input_op("Erf", special.erf, lambda x: call("exp", -(x * x)) * _TWO_OVER_SQRT_PI)
Erfc = _input_op("Erfc", special.erfc, lambda x: call("exp", -(x * x)) * -_TWO_OVER_SQRT_PI)


class Erfinv(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        y = special.erfinv(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * call("exp", y * y) * _SQRT_PI_OVER_TWO


class Exp2(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).exp2(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * _LN2


class Sign(Function):
    """``sign``: piecewise constant, so its gradient (and every higher one) is zero."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        return xp_of(x).sign(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 0


tan = _unary(Tan)
asin = _unary(Asin)
acos = _unary(Acos)
atan = _unary(Atan)
sinh = _unary(Sinh)
cosh = _unary(Cosh)
asinh = _unary(Asinh)
acosh = _unary(Acosh)
atanh = _unary(Atanh)
erf = _unary(Erf)
erfc = _unary(Erfc)
erfinv = _unary(Erfinv)
exp2 = _unary(Exp2)
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


def sign(input: Tensor) -> Tensor:
    r"""-1, 0 or 1 by the sign of each element (bool stays bool). Its gradient is zero."""
    if input.dtype == dtypes.bool_:
        return input.clone()
    return Sign.apply(input)


def log2(input: Tensor) -> Tensor:
    r"""Base-2 logarithm, elementwise."""
    return call("log", input) / _LN2


def log10(input: Tensor) -> Tensor:
    r"""Base-10 logarithm, elementwise."""
    return call("log", input) / math.log(10)


# -- binary -----------------------------------------------------------------------------------


class Atan2(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).arctan2(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        scale = grad / (a * a + b * b)
        ga = sum_to(scale * b, np.shape(a)) if ctx.needs_input_grad[0] else None
        gb = sum_to(-scale * a, np.shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


def _log_add_op(name, np_name, power):
    """``log(e^a + e^b)`` (``power`` is exp) or ``log2(2^a + 2^b)`` (exp2): the gradient
    of each input is ``power(input - out)``, the share its term has in the sum."""

    def forward(ctx, a, b):
        y = getattr(xp_of(a), np_name)(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    def backward(ctx, grad):
        a, b, y = ctx.saved_tensors
        ga = sum_to(grad * call(power, a - y), np.shape(a)) if ctx.needs_input_grad[0] else None
        gb = sum_to(grad * call(power, b - y), np.shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb

    return type(
        name,
        (Function,),
        {
            "differentiable_backward": True,
            "forward": staticmethod(forward),
            "backward": staticmethod(backward),
        },
    )


LogAddExp = _log_add_op("LogAddExp", "logaddexp", "exp")
LogAddExp2 = _log_add_op("LogAddExp2", "logaddexp2", "exp2")


class Copysign(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b):
        y = xp_of(a).copysign(a, b)
        ctx.save_for_backward(a, y)
        ctx.shape_b = np.shape(b)
        return y

    @staticmethod
    def backward(ctx, grad):
        a, y = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            # +-1 where the sign flipped or not; 0 at a == 0, as PyTorch
            ratio = call("sign", a) * call("sign", y)
            ga = sum_to(grad * ratio, np.shape(a))
        if ctx.needs_input_grad[1]:
            gb = sum_to(grad * 0, ctx.shape_b)
        return ga, gb


def _float_operands(op, input, other):
    """Promoted operands of a binary float op; integer results go to the default dtype."""
    a, b = _operands(op, input, other)
    like = a if isinstance(a, Tensor) else b
    if not like.is_floating_point():
        dt = dtypes.get_default_dtype()
        a = to_copy(a, None, dt) if isinstance(a, Tensor) else a
        b = to_copy(b, None, dt) if isinstance(b, Tensor) else b
        like = a if isinstance(a, Tensor) else b
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, like)
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, like)
    return a, b


def atan2(input: Tensor, other: Tensor) -> Tensor:
    r"""Elementwise arctangent of ``input / other`` in the quadrant of (other, input)."""
    return _apply_binary(Atan2, *_float_operands("atan2", input, other))


arctan2 = atan2


def logaddexp(input: Tensor, other: Tensor) -> Tensor:
    r"""``log(exp(input) + exp(other))`` without overflow."""
    return _apply_binary(LogAddExp, *_float_operands("logaddexp", input, other))


def logaddexp2(input: Tensor, other: Tensor) -> Tensor:
    r"""``log2(2**input + 2**other)`` without overflow."""
    return _apply_binary(LogAddExp2, *_float_operands("logaddexp2", input, other))


def copysign(input: Tensor, other) -> Tensor:
    r"""The magnitude of ``input`` with the sign of ``other`` (a Tensor or a number)."""
    return _apply_binary(Copysign, *_float_operands("copysign", input, other))


def lerp(input: Tensor, end: Tensor, weight) -> Tensor:
    r"""Linear interpolation ``input + weight * (end - input)``; ``weight`` is a number
    or a Tensor (broadcast with the others).

    Example::

        >>> ember.lerp(ember.zeros(3), ember.ones(3), 0.25)
        tensor([0.2500, 0.2500, 0.2500])
    """
    for name, value in (("input", input), ("end", end)):
        if not isinstance(value, Tensor):
            raise TypeError(f"lerp(): argument '{name}' must be Tensor, not {type(value).__name__}")
    if input.dtype != end.dtype or (isinstance(weight, Tensor) and weight.dtype != input.dtype):
        raise RuntimeError(
            f"lerp: expected input, end and weight to have the same dtype, but got "
            f"{input.dtype}, {end.dtype} and "
            f"{weight.dtype if isinstance(weight, Tensor) else type(weight).__name__}"
        )
    return input + weight * (end - input)


attach(
    tan=tan,
    asin=asin,
    arcsin=asin,
    acos=acos,
    arccos=acos,
    atan=atan,
    arctan=atan,
    sinh=sinh,
    cosh=cosh,
    asinh=asinh,
    arcsinh=asinh,
    acosh=acosh,
    arccosh=acosh,
    atanh=atanh,
    arctanh=atanh,
    erf=erf,
    erfc=erfc,
    erfinv=erfinv,
    exp2=exp2,
    sign=sign,
    log2=log2,
    log10=log10,
    atan2=atan2,
    arctan2=atan2,
    logaddexp=logaddexp,
    logaddexp2=logaddexp2,
    copysign=copysign,
    lerp=lerp,
)
attach(
    **{
        name + "_": inplace(fn)
        for name, fn in (
            ("tan", tan),
            ("asin", asin),
            ("arcsin", asin),
            ("acos", acos),
            ("arccos", acos),
            ("atan", atan),
            ("arctan", atan),
            ("sinh", sinh),
            ("cosh", cosh),
            ("asinh", asinh),
            ("arcsinh", asinh),
            ("acosh", acosh),
            ("arccosh", acosh),
            ("atanh", atanh),
            ("arctanh", atanh),
            ("erf", erf),
            ("erfc", erfc),
            ("erfinv", erfinv),
            ("exp2", exp2),
            ("sign", sign),
            ("log2", log2),
            ("log10", log10),
            ("atan2", atan2),
            ("arctan2", atan2),
            ("copysign", copysign),
            ("lerp", lerp),
        )
    }
)
