"""Elementwise ops: arithmetic with broadcasting and PyTorch's type promotion, unary
math, comparisons, ``where``/``clamp``, casts and in-place variants."""

from __future__ import annotations

import numpy as np

from .. import backend, dtypes
from ..amp import _state as _autocast
from ..amp import cast_for
from ..autograd import Function, traceable
from ..tensor import Tensor
from ._util import as_tensor_like, attach, call, check_same_device, inplace, sum_to, xp_of

# -- promotion ------------------------------------------------------------------------------


def _operands(op: str, a, b):
    """Cast tensor operands to the promoted dtype; Python scalars stay scalars."""
    # Fast path: a float tensor and a Python number keep the tensor's dtype.
    if type(b) in (float, int) and isinstance(a, Tensor) and a._array.dtype.kind == "f":
        return a, b
    if type(a) in (float, int) and isinstance(b, Tensor) and b._array.dtype.kind == "f":
        return a, b
    if not isinstance(a, Tensor):
        a = _scalar_or_tensor(op, a, b)
    if not isinstance(b, Tensor):
        b = _scalar_or_tensor(op, b, a)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a._array.dtype == b._array.dtype:
            if type(a._array) is not np.ndarray or type(b._array) is not np.ndarray:
                check_same_device(op, a, b)
            return a, b
        check_same_device(op, a, b)
    rt = dtypes.result_type(a, b)
    if isinstance(a, Tensor) and a._array.dtype != rt.np:
        a = to_copy(a, None, rt)
    if isinstance(b, Tensor) and b._array.dtype != rt.np:
        b = to_copy(b, None, rt)
    return a, b


def _scalar_or_tensor(op, value, other):
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | list | tuple):
        like = other if isinstance(other, Tensor) else None
        arr = np.asarray(value)
        if like is not None and not isinstance(like._array, np.ndarray):
            arr = backend.move_array(arr, like.device)
        if arr.dtype == np.float64 and not isinstance(value, np.ndarray):
            arr = arr.astype(dtypes.get_default_dtype().np)
        return Tensor._make(arr, False, None, 0)
    raise TypeError(f"unsupported operand type(s) for {op}: 'Tensor' and '{type(value).__name__}'")


# -- binary arithmetic ----------------------------------------------------------------------


class Add(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.shapes = (a.shape, getattr(b, "shape", ()))
        ctx.alpha = alpha
        return a + b if alpha == 1 else a + alpha * b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        ga = sum_to(grad, sa) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            gb = sum_to(grad if ctx.alpha == 1 else grad * ctx.alpha, sb)
        return ga, gb


class Sub(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.shapes = (a.shape, getattr(b, "shape", ()))
        ctx.alpha = alpha
        return a - b if alpha == 1 else a - alpha * b

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


def _shape(x) -> tuple:
    """The shape of an array or tensor operand; () for a Python number (cheaper than
    np.shape on the per-op path)."""
    return getattr(x, "shape", ())


class Mul(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = sum_to(grad * b, _shape(a)) if ctx.needs_input_grad[0] else None
        gb = sum_to(grad * a, _shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = sum_to(grad / b, _shape(a)) if ctx.needs_input_grad[0] else None
        gb = sum_to(-grad * a / (b * b), _shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if isinstance(b, int | float) and not isinstance(a, int | float):
            return a**b if b != 2 else a * a
        return a**b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            if isinstance(b, int | float):
                if b == 0:  # PyTorch's zero, not 0 * a ** -1 (nan at a == 0)
                    ga = grad * 0
                else:
                    ga = grad * b * a ** (b - 1) if b != 2 else grad * 2 * a
            else:
                # a ** (b - 1) may be inf where b == 0; that factor is multiplied by 0
                if isinstance(a, Tensor):
                    base = where(b == 0, 1, a)
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
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return _minmax_backward(ctx, grad, a, b, a > b)


class Minimum(Function):
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


def _broadcast_error(a, b) -> RuntimeError:
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    for i in range(1, min(len(sa), len(sb)) + 1):
        if sa[-i] != sb[-i] and 1 not in (sa[-i], sb[-i]):
            return RuntimeError(
                f"The size of tensor a ({sa[-i]}) must match the size of tensor b ({sb[-i]}) "
                f"at non-singleton dimension {max(len(sa), len(sb)) - i}"
            )
    return RuntimeError(f"shapes {list(sa)} and {list(sb)} cannot be broadcast together")


def _apply_binary(cls, a, b, **params):
    try:
        return cls.apply(a, b, **params)
    except ValueError:
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            raise _broadcast_error(a, b) from None
        raise


def add(input, other, *, alpha=1):
    a, b = _operands("add", input, other)
    if not isinstance(a, Tensor):
        return Add.apply(b, a) if alpha == 1 else Add.apply(b * alpha, a)
    if alpha == 1:  # no keyword dict on the common path
        return _apply_binary(Add, a, b)
    return _apply_binary(Add, a, b, alpha=alpha)


def sub(input, other, *, alpha=1):
    a, b = _operands("sub", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    if alpha == 1:  # no keyword dict on the common path
        return _apply_binary(Sub, a, b)
    return _apply_binary(Sub, a, b, alpha=alpha)


def mul(input, other):
    a, b = _operands("mul", input, other)
    if not isinstance(a, Tensor):
        a, b = b, a
    return _apply_binary(Mul, a, b)


def div(input, other, *, rounding_mode=None):
    a, b = _operands("div", input, other)
    if rounding_mode is not None:
        return _rounded_div(a, b, rounding_mode)
    for t in (a, b):
        if isinstance(t, Tensor) and not t.is_floating_point():
            rt = dtypes.get_default_dtype()
            a = to_copy(a, None, rt) if isinstance(a, Tensor) and not a.is_floating_point() else a
            b = to_copy(b, None, rt) if isinstance(b, Tensor) and not b.is_floating_point() else b
            break
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return _apply_binary(Div, a, b)


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


def pow(input, exponent):
    if _autocast:
        input, exponent = cast_for("pow", input, exponent)
    if (
        isinstance(input, Tensor)
        and isinstance(exponent, int | float)
        and not isinstance(exponent, bool)
    ):
        a = input
        if not a.is_floating_point() and isinstance(exponent, float):
            a = to_copy(a, None, dtypes.get_default_dtype())
        return Pow.apply(a, exponent)
    a, b = _operands("pow", input, exponent)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return Pow.apply(a, b)


def maximum(input, other):
    a, b = _operands("maximum", input, other)
    return Maximum.apply(a, b)


def minimum(input, other):
    a, b = _operands("minimum", input, other)
    return Minimum.apply(a, b)


def remainder(input, other):
    a, b = _operands("remainder", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return sub(
        a,
        mul(div(a.detach(), b.detach() if isinstance(b, Tensor) else b, rounding_mode="floor"), b),
    )


def fmod(input, other):
    a, b = _operands("fmod", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    return sub(
        a,
        mul(div(a.detach(), b.detach() if isinstance(b, Tensor) else b, rounding_mode="trunc"), b),
    )


def floor_divide(input, other):
    return div(input, other, rounding_mode="floor")


# -- unary math -------------------------------------------------------------------------------


class Neg(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Exp(Function):
    differentiable_backward = True

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
    differentiable_backward = True

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
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Log1p(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log1p(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (x + 1)


class Sqrt(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad / (y * 2)


class Rsqrt(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        y = 1 / xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * y * y * -0.5


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


class Reciprocal(Function):
    differentiable_backward = True

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
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * call("cos", x)


class Cos(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * call("sin", x)


class Tanh(Function):
    differentiable_backward = True

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
    differentiable_backward = True

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


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, min=None, max=None):
        xp = xp_of(x)
        ctx.save_for_backward(x)
        ctx.bounds = (min, max)
        out = x
        if min is not None:
            out = xp.maximum(out, min)
        if max is not None:
            out = xp.minimum(out, max)
        return out.astype(x.dtype, copy=False) if out is not x else out.copy()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        keep = True
        if lo is not None:
            keep = keep & (x >= lo)
        if hi is not None:
            keep = keep & (x <= hi)
        return grad * keep


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (np.shape(a), np.shape(b))
        return xp_of(cond).where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved_tensors
        xp = xp_of(grad)
        sa, sb = ctx.shapes
        ga = sum_to(xp.where(cond, grad, 0), sa) if ctx.needs_input_grad[1] else None
        gb = sum_to(xp.where(cond, 0, grad), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb


class ToCopy(Function):
    """dtype and/or device change; the gradient flows back with the original type."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, device=None, dtype=None):
        ctx.src = (backend.device_of(x), dtypes.from_numpy(x.dtype))
        out = x
        if device is not None:
            out = backend.move_array(out, device)
        if dtype is not None:
            with backend.device_context(device or ctx.src[0]):
                out = out.astype(dtype.np)
        if out is x:
            out = x.copy()
        return out

    @staticmethod
    def backward(ctx, grad):
        dev, dt = ctx.src
        if isinstance(grad, Tensor):
            return grad.to(dev, dt)
        grad = backend.move_array(grad, dev)
        return grad.astype(dt.np, copy=False)


class Clone(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


def to_copy(x: Tensor, device=None, dtype=None) -> Tensor:
    if dtype is not None and x.requires_grad and not dtype.is_floating_point:
        return ToCopy.apply(x.detach(), device=device, dtype=dtype)
    return ToCopy.apply(x, device=device, dtype=dtype)


def _unary(cls):
    name = cls.__name__.lower()

    def fn(input: Tensor) -> Tensor:
        if _autocast:
            (input,) = cast_for(name, input)
        if not input.is_floating_point():
            input = to_copy(input, None, dtypes.get_default_dtype())
        return cls.apply(input)

    fn.__name__ = name
    return fn


exp = _unary(Exp)
expm1 = _unary(Expm1)
log = _unary(Log)
log1p = _unary(Log1p)
sqrt = _unary(Sqrt)
rsqrt = _unary(Rsqrt)
reciprocal = _unary(Reciprocal)
sin = _unary(Sin)
cos = _unary(Cos)
tanh = _unary(Tanh)
sigmoid = _unary(Sigmoid)


def neg(input: Tensor) -> Tensor:
    return Neg.apply(input)


def abs(input: Tensor) -> Tensor:
    return Abs.apply(input)


def clamp(input: Tensor, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise RuntimeError("clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    return Clamp.apply(input, min=min, max=max)


def _rounding(name):
    def fn(input: Tensor) -> Tensor:
        return Tensor._make(getattr(xp_of(input._array), name)(input._array), False, None, 0)

    fn.__name__ = name
    return traceable(fn)


floor = _rounding("floor")
ceil = _rounding("ceil")
trunc = _rounding("trunc")
round = _rounding("round")


def where(condition: Tensor, input=None, other=None) -> Tensor:
    if input is None and other is None:
        from .indexing import nonzero

        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        raise TypeError(f"where(): condition must be a Tensor, got {type(condition).__name__}")
    if condition._array.dtype != np.bool_:
        raise RuntimeError(
            f"where expected condition to be a boolean tensor, but got a tensor with dtype {condition.dtype}"
        )
    a, b = _operands("where", input, other)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b if isinstance(b, Tensor) else condition, dtypes.result_type(a, b))
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, a)
    check_same_device("where", condition, a, b)
    return Where.apply(condition, a, b)


def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    if mask._array.dtype != np.bool_:
        raise RuntimeError(
            f"masked_fill only supports boolean masks, but got mask with dtype {mask.dtype}"
        )
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(
                f"masked_fill only supports a 0-dimensional value tensor, but got tensor with {value.ndim} dimension(s)"
            )
        value = value.to(input.dtype)
        return Where.apply(mask, value, input)
    fill = Tensor._make(
        xp_of(input._array).asarray(value, dtype=input._array.dtype), False, None, 0
    )
    return Where.apply(mask, fill, input)


def clone(input: Tensor, *, memory_format=None) -> Tensor:
    return Clone.apply(input)


# -- comparisons and logical ops (never differentiable) ---------------------------------------------


def _compare(name, op):
    def fn(input, other):
        a, b = _operands(name, input, other)
        xa = a._array if isinstance(a, Tensor) else a
        xb = b._array if isinstance(b, Tensor) else b
        return Tensor._make(
            xp_of(xa if isinstance(a, Tensor) else xb).asarray(op(xa, xb)), False, None, 0
        )

    fn.__name__ = name
    return traceable(fn)


eq = _compare("eq", lambda a, b: a == b)
ne = _compare("ne", lambda a, b: a != b)
lt = _compare("lt", lambda a, b: a < b)
le = _compare("le", lambda a, b: a <= b)
gt = _compare("gt", lambda a, b: a > b)
ge = _compare("ge", lambda a, b: a >= b)


def _logical(name):
    def fn(input, other=None):
        xp = xp_of(input._array)
        if other is None:
            return Tensor._make(getattr(xp, name)(input._array), False, None, 0)
        xb = other._array if isinstance(other, Tensor) else other
        return Tensor._make(getattr(xp, name)(input._array, xb), False, None, 0)

    fn.__name__ = name
    return traceable(fn)


logical_and = _logical("logical_and")
logical_or = _logical("logical_or")
logical_xor = _logical("logical_xor")
logical_not = _logical("logical_not")
isnan = _logical("isnan")
isinf = _logical("isinf")
isfinite = _logical("isfinite")


def equal(input: Tensor, other: Tensor) -> bool:
    return input.shape == other.shape and bool((input._array == other._array).all())


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(
        xp_of(input._array).allclose(
            input._array, other._array, rtol=rtol, atol=atol, equal_nan=equal_nan
        )
    )


@traceable
def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    xb = other._array if isinstance(other, Tensor) else other
    return Tensor._make(
        xp_of(input._array).isclose(input._array, xb, rtol=rtol, atol=atol, equal_nan=equal_nan),
        False,
        None,
        0,
    )


# -- in-place variants ------------------------------------------------------------------------


def zero_(self: Tensor) -> Tensor:
    self._check_inplace()
    self._array[...] = 0
    self._bump_version()
    if self.requires_grad and self.grad_fn is not None:
        self.grad_fn, self.requires_grad = None, False
    return self


def fill_(self: Tensor, value) -> Tensor:
    if isinstance(value, Tensor):
        value = value.item()
    self._check_inplace()
    self._array[...] = value
    self._bump_version()
    if self.grad_fn is not None:
        self.grad_fn, self.requires_grad = None, False
    return self


def copy_(self: Tensor, src, non_blocking: bool = False) -> Tensor:
    if not isinstance(src, Tensor):
        src = Tensor._make(np.asarray(src), False, None, 0)
    try:
        np.broadcast_shapes(src._array.shape, self._array.shape)
    except ValueError:
        raise RuntimeError(
            f"copy_: the size of src {list(src.shape)} must be broadcastable to {list(self.shape)}"
        ) from None
    moved = src if src.device == self.device else src.to(self.device)
    if (
        moved.requires_grad
        and src.requires_grad
        and self.requires_grad is False
        and not _recording()
    ):
        moved = moved.detach()
    if _recording() and moved.requires_grad:
        result = add(mul(self._snapshot().detach(), 0), moved.to(self.dtype))
        if result.shape != self.shape:
            result = result.expand(self.shape)
        return self._inplace_from(result)
    self._check_inplace()
    xp = xp_of(self._array)
    xp.copyto(
        self._array, xp.asarray(moved._array) if xp is not np else moved._array, casting="unsafe"
    )
    self._bump_version()
    return self


def _recording():
    from .. import autograd

    return autograd._grad_enabled


attach(
    __add__=add,
    __radd__=lambda self, other: add(other, self),
    __sub__=sub,
    __rsub__=lambda self, other: sub(other, self),
    __mul__=mul,
    __rmul__=lambda self, other: mul(other, self),
    __truediv__=div,
    __rtruediv__=lambda self, other: div(other, self),
    __floordiv__=floor_divide,
    __rfloordiv__=lambda self, other: floor_divide(other, self),
    __mod__=remainder,
    __rmod__=lambda self, other: remainder(other, self),
    __pow__=pow,
    __rpow__=lambda self, other: pow(other, self),
    __neg__=neg,
    __pos__=lambda self: self,
    __abs__=abs,
    __eq__=eq,
    __ne__=ne,
    __lt__=lt,
    __le__=le,
    __gt__=gt,
    __ge__=ge,
    __hash__=Tensor.__hash__,
    add=add,
    sub=sub,
    subtract=sub,
    mul=mul,
    multiply=mul,
    div=div,
    divide=div,
    true_divide=div,
    pow=pow,
    remainder=remainder,
    fmod=fmod,
    floor_divide=floor_divide,
    maximum=maximum,
    minimum=minimum,
    neg=neg,
    negative=neg,
    exp=exp,
    expm1=expm1,
    log=log,
    log1p=log1p,
    sqrt=sqrt,
    rsqrt=rsqrt,
    abs=abs,
    reciprocal=reciprocal,
    sin=sin,
    cos=cos,
    tanh=tanh,
    sigmoid=sigmoid,
    floor=floor,
    ceil=ceil,
    trunc=trunc,
    round=round,
    clamp=clamp,
    clip=clamp,
    masked_fill=masked_fill,
    where=lambda self, condition, other: where(condition, self, other),
    clone=clone,
    eq=eq,
    ne=ne,
    lt=lt,
    le=le,
    gt=gt,
    ge=ge,
    logical_and=logical_and,
    logical_or=logical_or,
    logical_xor=logical_xor,
    logical_not=logical_not,
    isnan=isnan,
    isinf=isinf,
    isfinite=isfinite,
    equal=equal,
    allclose=allclose,
    isclose=isclose,
    zero_=zero_,
    fill_=fill_,
    copy_=copy_,
    add_=inplace(add),
    sub_=inplace(sub),
    mul_=inplace(mul),
    div_=inplace(div),
    pow_=inplace(pow),
    clamp_=inplace(clamp),
    clip_=inplace(clamp),
    masked_fill_=inplace(masked_fill),
    exp_=inplace(exp),
    log_=inplace(log),
    sqrt_=inplace(sqrt),
    neg_=inplace(neg),
    abs_=inplace(abs),
    sigmoid_=inplace(sigmoid),
    tanh_=inplace(tanh),
    __iadd__=inplace(add),
    __isub__=inplace(sub),
    __imul__=inplace(mul),
    __itruediv__=inplace(div),
)
