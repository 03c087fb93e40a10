"""Elementwise math of one tensor: exp and log (with expm1, log1p, exp2, log2, log10),
sqrt/rsqrt/reciprocal, trigonometric and hyperbolic functions and their inverses,
sigmoid, ``erf``/``erfc``/``erfinv``, ``sign`` and the rounding ops; and the binary
``atan2``, ``logaddexp``, ``logaddexp2``, ``copysign`` and ``lerp``.

Integer inputs compute in the default float dtype (``promotes = "float"``). Every
backward is written with operators and ``call`` so that it also runs on Tensors: all of
these support double backward (``create_graph=True``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..autograd import Function, traceable
from ..tensor import Tensor
from . import special
from ._util import call, sum_to, xp_of
from .declare import binary, declared, unary

# -- exp, log, powers, trigonometry ---------------------------------------------------------


class Exp(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "float", True

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class Expm1(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "float", True

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (y + 1)


class Log(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "float", True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Log1p(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "float", True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log1p(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (x + 1)


class Sqrt(Function):
    promotes, differentiable_backward = "float", True

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad / (y * 2)


class Square(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x * 2)


class Rsqrt(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "float", True

    @staticmethod
    def forward(ctx, x):
        y = 1 / xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * y * y * -0.5


class Reciprocal(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "float", True

    @staticmethod
    def forward(ctx, x):
        y = (1 / x).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return -grad * y * y


class Sin(Function):
    promotes, differentiable_backward = "float", True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * call("cos", x)


class Cos(Function):
    promotes, differentiable_backward = "float", True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * call("sin", x)


class Tanh(Function):
    promotes, differentiable_backward = "float", True

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class Sigmoid(Function):
    promotes, differentiable_backward = "float", True

    @staticmethod
    def forward(ctx, x):
        y = _sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


def _sigmoid(x):
    xp = xp_of(x)
    # exp of a non-positive number never overflows
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


exp = unary(Exp, "exp", inplace=True)
expm1 = unary(Expm1, "expm1", inplace=True)
log = unary(Log, "log", inplace=True)
log1p = unary(Log1p, "log1p", inplace=True)
sqrt = unary(Sqrt, "sqrt", inplace=True)
rsqrt = unary(Rsqrt, "rsqrt", inplace=True)
square = unary(Square, "square", inplace=True)
reciprocal = unary(Reciprocal, "reciprocal", inplace=True)
sin = unary(Sin, "sin", inplace=True)
cos = unary(Cos, "cos", inplace=True)
tanh = unary(Tanh, "tanh", inplace=True)
sigmoid = unary(Sigmoid, "sigmoid", inplace=True)


def _rounding(name):
    def fn(input: Tensor) -> Tensor:
        return Tensor._make(getattr(xp_of(input._array), name)(input._array), False, None, 0)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{name}`` (its gradient is zero, so none is recorded)."
    return declared(None)(traceable(fn))


floor = _rounding("floor")
ceil = _rounding("ceil")
trunc = _rounding("trunc")
round = _rounding("round")


_LN2 = math.log(2)
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2

# -- unary ------------------------------------------------------------------------------------


class Tan(Function):
    promotes, differentiable_backward = "float", True

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
            "promotes": "float",
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
    promotes, differentiable_backward = "float", True

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
    promotes, differentiable_backward = "float", True

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


tan = unary(Tan, "tan", inplace=True)
asin = unary(Asin, "asin", aliases=("arcsin",), inplace=True)
acos = unary(Acos, "acos", aliases=("arccos",), inplace=True)
atan = unary(Atan, "atan", aliases=("arctan",), inplace=True)
sinh = unary(Sinh, "sinh", inplace=True)
cosh = unary(Cosh, "cosh", inplace=True)
asinh = unary(Asinh, "asinh", aliases=("arcsinh",), inplace=True)
acosh = unary(Acosh, "acosh", aliases=("arccosh",), inplace=True)
atanh = unary(Atanh, "atanh", aliases=("arctanh",), inplace=True)
erf = unary(Erf, "erf", inplace=True)
erfc = unary(Erfc, "erfc", inplace=True)
erfinv = unary(Erfinv, "erfinv", inplace=True)
exp2 = unary(Exp2, "exp2", inplace=True)
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


@declared(Sign, inplace=True)
def sign(input: Tensor) -> Tensor:
    r"""-1, 0 or 1 by the sign of each element (bool stays bool). Its gradient is zero."""
    if input.dtype == dtypes.bool_:
        return input.clone()
    return Sign.apply(input)


@declared(None, inplace=True)
def log2(input: Tensor) -> Tensor:
    r"""Base-2 logarithm, elementwise."""
    return call("log", input) / _LN2


@declared(None, inplace=True)
def log10(input: Tensor) -> Tensor:
    r"""Base-10 logarithm, elementwise."""
    return call("log", input) / math.log(10)


# -- binary -----------------------------------------------------------------------------------


class Atan2(Function):
    r"""Elementwise arctangent of ``input / other`` in the quadrant of (other, input)."""

    autocast, promotes, differentiable_backward = "cuda:promote", "float", True

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


def _log_add_op(name, np_name, power, doc):
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
            "__doc__": doc,
            "promotes": "float",
            "differentiable_backward": True,
            "forward": staticmethod(forward),
            "backward": staticmethod(backward),
        },
    )


LogAddExp = _log_add_op(
    "LogAddExp", "logaddexp", "exp", r"""``log(exp(input) + exp(other))`` without overflow."""
)
LogAddExp2 = _log_add_op(
    "LogAddExp2", "logaddexp2", "exp2", r"""``log2(2**input + 2**other)`` without overflow."""
)


class Copysign(Function):
    r"""The magnitude of ``input`` with the sign of ``other`` (a Tensor or a number)."""

    promotes, differentiable_backward = "float", True

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


atan2 = binary(Atan2, "atan2", aliases=("arctan2",), inplace=True)
arctan2 = atan2
logaddexp = binary(LogAddExp, "logaddexp")
logaddexp2 = binary(LogAddExp2, "logaddexp2")
copysign = binary(Copysign, "copysign", inplace=True)


@declared(None, inplace=True)
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
