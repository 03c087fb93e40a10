"""Arithmetic: ``+ - * / ** %`` and their functional forms (add, sub, mul, div, pow,
remainder, fmod, floor_divide), maximum/minimum, neg and abs, with broadcasting and
PyTorch's type promotion."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..autograd import NO_GRAD_CTX, Function, traceable
from ..tensor import Tensor
from . import cpu_rows
from ._util import as_tensor_like, call, sum_to, xp_of
from .cast import operands, to_copy
from .declare import binary, declared, unary


class Add(Function):
    promotes, differentiable_backward, broadcasts = "common", True, True

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        if ctx is not NO_GRAD_CTX:
            ctx.shapes = (a.shape, getattr(b, "shape", ()))
            ctx.alpha = alpha
        if alpha == 1:
            if a.size >= _SPLIT and (out := cpu_rows.binary(np.add, a, b)) is not None:
                return out
            return a + b
        return a + alpha * b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        ga = sum_to(grad, sa) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            gb = sum_to(grad if ctx.alpha == 1 else grad * ctx.alpha, sb)
        return ga, gb


class Sub(Function):
    promotes, differentiable_backward, broadcasts = "common", True, True

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        if ctx is not NO_GRAD_CTX:
            ctx.shapes = (a.shape, getattr(b, "shape", ()))
            ctx.alpha = alpha
        if alpha == 1:
            if a.size >= _SPLIT and (out := cpu_rows.binary(np.subtract, a, b)) is not None:
                return out
            return a - b
        return a - alpha * b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        ga = sum_to(grad, sa) if ctx.needs_input_grad[0] else None
        gb = (
            sum_to(-grad if ctx.alpha == 1 else grad * -ctx.alpha, sb)
            if ctx.needs_input_grad[1]
            else None
        )
        return ga, gb


# Large NumPy operands (``cpu_rows.binary`` checks the rest) are computed in row chunks on
# ember's CPU threads; the size test comes first, so a small op pays one comparison.
_SPLIT = cpu_rows.SPLIT_ELEMENTS


def _product(x, y):
    return cpu_rows.product(x, y) if type(x) is np.ndarray and x.size >= _SPLIT else x * y


def _shape(x) -> tuple:
    """The shape of an array or tensor operand; () for a Python number (cheaper than
    np.shape on the per-op path)."""
    return getattr(x, "shape", ())


class Mul(Function):
    promotes, differentiable_backward, broadcasts = "common", True, True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.size >= _SPLIT and (out := cpu_rows.binary(np.multiply, a, b)) is not None:
            return out
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = sum_to(_product(grad, b), _shape(a)) if ctx.needs_input_grad[0] else None
        gb = sum_to(_product(grad, a), _shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    promotes, differentiable_backward, broadcasts = "float", True, True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.size >= _SPLIT and (out := cpu_rows.binary(np.divide, a, b)) is not None:
            return out
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = sum_to(grad / b, _shape(a)) if ctx.needs_input_grad[0] else None
        gb = sum_to(-grad * a / (b * b), _shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "common", True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if isinstance(b, dtypes.PYTHON_NUMBERS) and not isinstance(a, dtypes.PYTHON_NUMBERS):
            return a**b if b != 2 else a * a
        return a**b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            if isinstance(b, dtypes.PYTHON_NUMBERS):
                if b == 0:  # PyTorch's zero, not 0 * a ** -1 (nan at a == 0)
                    ga = grad * 0
                else:
                    ga = grad * b * a ** (b - 1) if b != 2 else grad * 2 * a
            else:
                # a ** (b - 1) may be inf where b == 0; that factor is multiplied by 0
                if isinstance(a, Tensor):
                    base = a.where(b != 0, 1)
                else:
                    base = xp_of(a).where(b == 0, 1, a).astype(a.dtype, copy=False)
                ga = grad * b * base ** (b - 1)
            ga = sum_to(ga, np.shape(a))
        if ctx.needs_input_grad[1]:
            if isinstance(grad, Tensor):
                gb = grad * a**b * call("log", a)
            else:
                xp = xp_of(grad)
                with np.errstate(divide="ignore", invalid="ignore"):
                    gb = grad * a**b * xp.log(a)
                # d/db a**b at a == 0 is 0 for b >= 0 (PyTorch's convention), not nan
                gb = xp.where((a == 0) & (b >= 0), 0, gb).astype(grad.dtype, copy=False)
            gb = sum_to(gb, np.shape(b))
        return ga, gb


class Maximum(Function):
    promotes = "common"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return _minmax_backward(ctx, grad, a, b, a > b)


class Minimum(Function):
    promotes = "common"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return _minmax_backward(ctx, grad, a, b, a < b)


def _minmax_backward(ctx, grad, a, b, a_wins):
    # Ties split the gradient evenly, as PyTorch does.
    share_a = (a_wins + (a == b) * 0.5).astype(grad.dtype, copy=False)
    ga = sum_to(grad * share_a, np.shape(a)) if ctx.needs_input_grad[0] else None
    gb = sum_to(grad * (1 - share_a), np.shape(b)) if ctx.needs_input_grad[1] else None
    return ga, gb


# add, sub, mul, div and pow are written by hand: they take options (alpha,
# rounding_mode) and keep a Python-number operand a number, which the per-op cost of
# ``x * 0.5`` needs (``binary`` would make it a tensor).


@declared(Add, operator="add", reflected=True, inplace=True, inplace_operator=True)
def add(input, other, *, alpha=1):
    r"""``input + alpha * other``, broadcast and promoted."""
    a, b = Add.promote("add", input, other)
    if not isinstance(a, Tensor):
        return Add.apply(b, a) if alpha == 1 else Add.apply(b * alpha, a)
    if alpha == 1:  # no keyword dict on the common path
        return Add.apply(a, b)
    return Add.apply(a, b, alpha=alpha)


@declared(
    Sub, aliases=("subtract",), operator="sub", reflected=True, inplace=True, inplace_operator=True
)
def sub(input, other, *, alpha=1):
    r"""``input - alpha * other``, broadcast and promoted."""
    a, b = Sub.promote("sub", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    if alpha == 1:  # no keyword dict on the common path
        return Sub.apply(a, b)
    return Sub.apply(a, b, alpha=alpha)


@declared(
    Mul, aliases=("multiply",), operator="mul", reflected=True, inplace=True, inplace_operator=True
)
def mul(input, other):
    r"""``input * other``, broadcast and promoted."""
    a, b = Mul.promote("mul", input, other)
    if not isinstance(a, Tensor):
        a, b = b, a
    return Mul.apply(a, b)


@declared(
    Div,
    aliases=("divide", "true_divide"),
    operator="truediv",
    reflected=True,
    inplace=True,
    inplace_operator=True,
)
def div(input, other, *, rounding_mode=None):
    r"""``input / other`` (integers divide in the default float dtype); with
    ``rounding_mode`` ``"trunc"`` or ``"floor"``, the rounded quotient in the promoted dtype."""
    if rounding_mode is not None:
        return _rounded_div(*operands("div", input, other), rounding_mode)
    a, b = Div.promote("div", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return Div.apply(a, b)


@traceable
def _rounded_div(a, b, mode):
    xa = a._array if isinstance(a, Tensor) else a
    xb = b._array if isinstance(b, Tensor) else b
    like = a if isinstance(a, Tensor) else b
    xp = xp_of(like._array)
    if mode == "floor":
        out = xp.floor_divide(xa, xb) if like.dtype._category == 1 else xp.floor(xa / xb)
    elif mode == "trunc":
        out = xp.trunc(xa / xb)
        if like.dtype._category == 1:
            out = out.astype(like._array.dtype)
    else:
        raise ValueError(
            f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{mode}'"
        )
    return Tensor._make(xp.asarray(out, dtype=like._array.dtype), False, None, 0)


@declared(Pow, operator="pow", reflected=True, inplace=True)
def pow(input, exponent):
    r"""``input ** exponent``, broadcast and promoted (an integer tensor to a float
    number's power gives the default float dtype)."""
    if (
        isinstance(input, Tensor)
        and isinstance(exponent, int | float)
        and not isinstance(exponent, bool)
    ):
        a = input
        if not a.is_floating_point() and isinstance(exponent, float):
            a = to_copy(a, None, dtypes.get_default_dtype())
        return Pow.apply(a, exponent)
    a, b = Pow.promote("pow", input, exponent)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return Pow.apply(a, b)


maximum = binary(Maximum, "maximum")
minimum = binary(Minimum, "minimum")


class Neg(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Abs(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * call("sign", x)


neg = unary(Neg, "neg", aliases=("negative",), inplace=True, operator="neg")
abs = unary(Abs, "abs", inplace=True, operator="abs")


@declared(None, operator="mod", reflected=True)
def remainder(input, other):
    r"""Python's modulus: ``input - floor(input / other) * other`` (the sign of ``other``)."""
    a, b = operands("remainder", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return sub(
        a,
        mul(div(a.detach(), b.detach() if isinstance(b, Tensor) else b, rounding_mode="floor"), b),
    )


@declared(None)
def fmod(input, other):
    r"""C's remainder: ``input - trunc(input / other) * other`` (the sign of ``input``)."""
    a, b = operands("fmod", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return sub(
        a,
        mul(div(a.detach(), b.detach() if isinstance(b, Tensor) else b, rounding_mode="trunc"), b),
    )


@declared(None, operator="floordiv", reflected=True)
def floor_divide(input, other):
    r"""``div(input, other, rounding_mode="floor")``."""
    return div(input, other, rounding_mode="floor")


@declared(None, operator="pos")
def positive(input: Tensor) -> Tensor:
    r"""``input`` itself (``+input``)."""
    return input
