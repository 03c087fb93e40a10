"""Reductions: sum, mean, prod, var/std, max/min, amax/amin, argmax/argmin, logsumexp,
all/any, count_nonzero. norm (any real p)."""

from __future__ import annotations

import math
import warnings
from collections import namedtuple

import numpy as np

from .. import dtypes
from ..autograd import Function, traceable
from ..tensor import Tensor
from ._util import call, wrap_dim, wrap_dims, xp_of
from .arithmetic import abs as _abs
from .arithmetic import maximum, minimum
from .cast import float_input
from .comparison import isnan, logical_not
from .declare import declared
from .elementwise import where
from .unary_math import sqrt

max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])
median_result = namedtuple("median", ["values", "indices"])


_TORCH_NAMES = {
    "bool": "Bool",
    "uint8": "Byte",
    "int8": "Char",
    "int16": "Short",
    "int32": "Int",
    "int64": "Long",
}

# -- helpers ----------------------------------------------------------------------------------


def _kept_shape(shape, dim, keepdim):
    """Shape of a reduction's output with the reduced axes kept as size 1."""
    if keepdim:
        return None
    if dim is None:
        return (1,) * len(shape)
    return tuple(1 if i in dim else s for i, s in enumerate(shape))


def _expand(grad, shape, dim, keepdim):
    """Broadcast a reduction's gradient back to the input ``shape`` (differentiable)."""
    if isinstance(grad, Tensor):
        return _ExpandReduced.apply(grad, shape=shape, dim=dim, keepdim=keepdim)
    kept = _kept_shape(shape, dim, keepdim)
    return xp_of(grad).broadcast_to(grad if kept is None else grad.reshape(kept), shape)


def _sum(x, dim, keepdim):
    if isinstance(x, Tensor):
        return Sum.apply(x, dim=dim, keepdim=keepdim)
    return x.sum(axis=dim, keepdims=keepdim)


def _numel(shape, dim):
    return math.prod(shape) if dim is None else math.prod(shape[d] for d in dim)


def _floating(name, input, dtype=None):
    if dtype is not None:
        return input.to(dtype)
    if not input.is_floating_point():
        raise RuntimeError(
            f"{name}(): could not infer output dtype. Input dtype must be either a floating "
            f"point or complex dtype. Got: {_TORCH_NAMES[input.dtype.name]}"
        )
    return input


def _check_nonempty(name, input, dim):
    if input._array.size == 0:
        if dim is None:
            raise RuntimeError(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                "Specify the reduction dim with the 'dim' argument."
            )
        for d in dim:
            if input._array.shape[d] == 0:
                raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def _put_along(xp, shape, dtype, indices, values, axis):
    """Zeros of ``shape`` with ``values`` scattered to ``indices`` along ``axis``."""
    out = xp.zeros(shape, dtype)
    index = list(xp.ogrid[tuple(slice(s) for s in indices.shape)])
    index[axis] = indices
    out[tuple(index)] = values
    return out


# -- sum and mean -------------------------------------------------------------------------------


class Sum(Function):
    autocast, differentiable_backward = "cuda:fp32", True

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, dtype=None):
        ctx.shape, ctx.dim, ctx.keepdim, ctx.in_dtype = x.shape, dim, keepdim, x.dtype
        return x.sum(axis=dim, keepdims=keepdim, dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            if grad._array.dtype != ctx.in_dtype:  # sum(dtype=...) cast: grad comes back
                grad = grad.to(dtypes.from_numpy(ctx.in_dtype))
        elif grad.dtype != ctx.in_dtype:
            grad = grad.astype(ctx.in_dtype)
        return _expand(grad, ctx.shape, ctx.dim, ctx.keepdim)


class _ExpandReduced(Function):
    """The gradient of Sum as an op of its own, so sum is differentiable to any order."""

    differentiable_backward = True

    @staticmethod
    def forward(ctx, grad, shape, dim, keepdim):
        ctx.dim, ctx.keepdim = dim, keepdim
        return _expand(grad, shape, dim, keepdim)

    @staticmethod
    def backward(ctx, grad):
        return _sum(grad, ctx.dim, ctx.keepdim)


class Mean(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        ctx.n = _numel(x.shape, dim)
        with np.errstate(invalid="ignore", divide="ignore"):
            return x.sum(axis=dim, keepdims=keepdim) / ctx.n

    @staticmethod
    def backward(ctx, grad):
        return _expand(grad / ctx.n if ctx.n else grad * math.nan, ctx.shape, ctx.dim, ctx.keepdim)


@declared(Sum, axis_aliases=True)
def sum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    r"""Sum of the elements over ``dim`` (all of them by default).

    Integer and bool inputs sum to int64, as in PyTorch.

    Example::

        >>> ember.ones(2, 3).sum(dim=1)
        tensor([3., 3.])
    """
    dim = wrap_dims(dim, input._array.ndim)
    if dtype is not None:
        dtype = dtypes.to_dtype(dtype).np
    elif input._array.dtype.kind in "biu":
        dtype = np.int64
    return Sum.apply(input, dim=dim, keepdim=keepdim, dtype=dtype)


@declared(Mean, axis_aliases=True)
def mean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    r"""Mean over ``dim`` (all elements by default); floating-point inputs only."""
    input = _floating("mean", input, dtype)
    return Mean.apply(input, dim=wrap_dims(dim, input._array.ndim), keepdim=keepdim)


# -- prod -------------------------------------------------------------------------------------


class Prod(Function):
    autocast = "fp32"

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, dtype=None):
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        y = x.prod(axis=dim, keepdims=keepdim, dtype=dtype)
        ctx.save_for_backward(x)
        return y

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = xp_of(x)
        # the product of all the other elements = exclusive cumprods from both sides
        a = x.reshape(-1) if ctx.dim is None else xp.moveaxis(x, ctx.dim[0], -1)
        ones = xp.ones(a.shape[:-1] + (1,), a.dtype)
        left = xp.concatenate([ones, xp.cumprod(a, -1)[..., :-1]], -1)
        right = xp.flip(xp.concatenate([ones, xp.cumprod(xp.flip(a, -1), -1)[..., :-1]], -1), -1)
        others = left * right
        others = others.reshape(x.shape) if ctx.dim is None else xp.moveaxis(others, -1, ctx.dim[0])
        return _expand(grad, ctx.shape, ctx.dim, ctx.keepdim) * others


@declared(Prod, axis_aliases=True)
def prod(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    r"""Product of the elements (over one ``dim`` if given)."""
    dims = None if dim is None else (wrap_dim(dim, input._array.ndim),)
    if dtype is not None:
        dtype = dtypes.to_dtype(dtype).np
    elif input._array.dtype.kind in "biu":
        dtype = np.int64
    return Prod.apply(input, dim=dims, keepdim=keepdim, dtype=dtype)


# -- var / std --------------------------------------------------------------------------------


class Var(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, correction=1):
        xp = xp_of(x)
        n = _numel(x.shape, dim)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        ctx.denom = n - correction if n > correction else 0
        with np.errstate(invalid="ignore", divide="ignore"):
            centered = x - x.mean(axis=dim, keepdims=True)
            var = xp.square(centered).sum(axis=dim, keepdims=keepdim) / ctx.denom
        ctx.save_for_backward(x)
        return var.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        mean = _sum(x, ctx.dim, True) / _numel(x.shape, ctx.dim)
        centered = x - _expand(mean, x.shape, ctx.dim, True)
        scale = 2 / ctx.denom if ctx.denom else math.inf
        return _expand(grad * scale, ctx.shape, ctx.dim, ctx.keepdim) * centered


def _var_args(name, input, dim, unbiased, keepdim, correction):
    if isinstance(dim, bool):  # var(input, unbiased)
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{name}(): cannot pass both unbiased and correction")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    input = _floating(name, input)
    dims = wrap_dims(dim, input._array.ndim)
    if _numel(input._array.shape, dims) - correction <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0", stacklevel=3)
    return input, dims, keepdim, correction


@declared(Var, axis_aliases=True)
def var(
    input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None
) -> Tensor:
    r"""Variance over ``dim`` with Bessel's ``correction`` (1 by default, or ``unbiased``)."""
    x, dims, keepdim, correction = _var_args("var", input, dim, unbiased, keepdim, correction)
    return Var.apply(x, dim=dims, keepdim=keepdim, correction=correction)


@declared(Var, axis_aliases=True)
def std(
    input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None
) -> Tensor:
    r"""Standard deviation: ``sqrt(var(...))`` with the same arguments."""
    x, dims, keepdim, correction = _var_args("std", input, dim, unbiased, keepdim, correction)
    return sqrt(Var.apply(x, dim=dims, keepdim=keepdim, correction=correction))


@declared(Var, method=False, axis_aliases=True)
def var_mean(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    r"""``(var, mean)`` over ``dim``."""
    x, dims, keepdim, correction = _var_args("var_mean", input, dim, unbiased, keepdim, correction)
    v = Var.apply(x, dim=dims, keepdim=keepdim, correction=correction)
    return v, Mean.apply(x, dim=dims, keepdim=keepdim)


@declared(Var, method=False, axis_aliases=True)
def std_mean(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    r"""``(std, mean)`` over ``dim``."""
    x, dims, keepdim, correction = _var_args("std_mean", input, dim, unbiased, keepdim, correction)
    v = Var.apply(x, dim=dims, keepdim=keepdim, correction=correction)
    return sqrt(v), Mean.apply(x, dim=dims, keepdim=keepdim)


# -- max / min ----------------------------------------------------------------------------------


class Amax(Function):
    """max/min over several dims; ties share the gradient evenly, as in PyTorch."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, largest=True):
        xp = xp_of(x)
        y = (xp.amax if largest else xp.amin)(x, axis=dim, keepdims=True)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        ctx.save_for_backward(x, y)
        return y if keepdim else y.reshape(_reduced_shape(x.shape, dim))

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        mask = x == y
        count = mask.sum(axis=ctx.dim, keepdims=True)
        share = _expand(grad, ctx.shape, ctx.dim, ctx.keepdim) / count
        return mask * share


def _reduced_shape(shape, dim):
    return () if dim is None else tuple(s for i, s in enumerate(shape) if i not in dim)


class MaxDim(Function):
    """max/min/median along one dim: (values, indices); the gradient goes to the index."""

    @staticmethod
    def forward(ctx, x, dim, keepdim=False, largest=True, median=False):
        xp = xp_of(x)
        if median:  # the lower of the two middle values, as in PyTorch
            order = xp.argsort(x, axis=dim, kind="stable")
            idx = xp.take(order, [(x.shape[dim] - 1) // 2], axis=dim)
        else:
            idx = (xp.argmax if largest else xp.argmin)(x, axis=dim, keepdims=True)
        values = xp.take_along_axis(x, idx, axis=dim)
        ctx.shape, ctx.dim, ctx.keepdim, ctx.idx = x.shape, dim, keepdim, idx
        if not keepdim:
            values, idx = values.squeeze(dim), idx.squeeze(dim)
        return values, idx.astype(np.int64, copy=False)

    @staticmethod
    def backward(ctx, grad, _):
        if not ctx.keepdim:
            grad = xp_of(grad).expand_dims(grad, ctx.dim)
        return _put_along(xp_of(grad), ctx.shape, grad.dtype, ctx.idx, grad, ctx.dim)


def _minmax(name, largest, input, dim, keepdim, other):
    if isinstance(dim, Tensor) or other is not None:  # max(input, other)
        other = dim if isinstance(dim, Tensor) else other
        return (maximum if largest else minimum)(input, other)
    if dim is None:
        _check_nonempty(name, input, None)
        return Amax.apply(input, dim=None, keepdim=False, largest=largest)
    d = wrap_dim(dim, input._array.ndim)
    _check_nonempty(name, input, (d,))
    values, indices = MaxDim.apply(input, d, keepdim=keepdim, largest=largest)
    return (max_result if largest else min_result)(values, indices)


@declared(None, axis_aliases=True)
def max(input: Tensor, dim=None, keepdim: bool = False, *, other=None):
    r"""The largest element; with ``dim``, a namedtuple ``(values, indices)`` along it;
    with a tensor second argument, the elementwise ``maximum``."""
    return _minmax("max", True, input, dim, keepdim, other)


@declared(None, axis_aliases=True)
def min(input: Tensor, dim=None, keepdim: bool = False, *, other=None):
    r"""The smallest element; with ``dim``, ``(values, indices)``; with a tensor, ``minimum``."""
    return _minmax("min", False, input, dim, keepdim, other)


@declared(MaxDim, axis_aliases=True)
def median(input: Tensor, dim=None, keepdim: bool = False):
    r"""The median (the lower middle value for an even count); with ``dim``, a namedtuple
    ``(values, indices)`` along it."""
    if dim is None:
        _check_nonempty("median", input, None)
        return MaxDim.apply(input.reshape(-1), 0, median=True)[0]
    d = wrap_dim(dim, input._array.ndim)
    _check_nonempty("median", input, (d,))
    values, indices = MaxDim.apply(input, d, keepdim=keepdim, median=True)
    return median_result(values, indices)


@declared(None, axis_aliases=True)
def nansum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    r"""``sum`` treating NaN as zero."""
    if input.is_floating_point():
        input = where(isnan(input), 0.0, input)
    return sum(input, dim, keepdim, dtype=dtype)


@declared(None, axis_aliases=True)
def nanmean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    r"""``mean`` over the non-NaN elements."""
    input = _floating("nanmean", input, dtype)
    count = sum(logical_not(isnan(input)), dim, keepdim)
    return nansum(input, dim, keepdim) / count


@declared(Amax, axis_aliases=True)
def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    r"""Maximum over ``dim`` (all dims by default); ties share the gradient evenly."""
    dims = wrap_dims(dim, input._array.ndim)
    _check_nonempty("amax", input, dims)
    return Amax.apply(input, dim=dims, keepdim=keepdim, largest=True)


@declared(Amax, axis_aliases=True)
def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    r"""Minimum over ``dim`` (all dims by default); ties share the gradient evenly."""
    dims = wrap_dims(dim, input._array.ndim)
    _check_nonempty("amin", input, dims)
    return Amax.apply(input, dim=dims, keepdim=keepdim, largest=False)


def _arg(name, largest, input, dim, keepdim):
    xp = xp_of(input._array)
    fn = xp.argmax if largest else xp.argmin
    if dim is None:
        _check_nonempty(name, input, None)
        idx = xp.asarray(fn(input._array))
        if keepdim:
            idx = idx.reshape((1,) * input._array.ndim)
    else:
        d = wrap_dim(dim, input._array.ndim)
        _check_nonempty(name, input, (d,))
        idx = fn(input._array, axis=d, keepdims=keepdim)
    return Tensor._make(idx.astype(np.int64, copy=False), False, None, 0)


@declared(None, axis_aliases=True)
@traceable
def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    r"""Index of the largest element (of the flattened input when ``dim`` is None)."""
    return _arg("argmax", True, input, dim, keepdim)


@declared(None, axis_aliases=True)
@traceable
def argmin(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    r"""Index of the smallest element (of the flattened input when ``dim`` is None)."""
    return _arg("argmin", False, input, dim, keepdim)


# -- logsumexp ---------------------------------------------------------------------------------


class LogSumExp(Function):
    autocast, promotes, differentiable_backward = "cuda:fp32", "float", True

    @staticmethod
    def forward(ctx, x, dim, keepdim=False):
        xp = xp_of(x)
        m = (
            xp.amax(x, axis=dim, keepdims=True)
            if x.size
            else xp.zeros(_kept_shape(x.shape, dim, False), x.dtype)
        )
        m = xp.where(xp.isfinite(m), m, 0)
        with np.errstate(divide="ignore"):
            out = xp.log(xp.exp(x - m).sum(axis=dim, keepdims=True)) + m
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        y = out if keepdim else out.reshape(_reduced_shape(x.shape, dim))
        y = y.astype(x.dtype, copy=False)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        shifted = x - _expand(y, ctx.shape, ctx.dim, ctx.keepdim)
        weights = shifted.exp() if isinstance(shifted, Tensor) else xp_of(x).exp(shifted)
        return _expand(grad, ctx.shape, ctx.dim, ctx.keepdim) * weights


@declared(LogSumExp, axis_aliases=True)
def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:
    r"""``log(sum(exp(input), dim))``, computed stably."""
    input = float_input(input)
    dims = wrap_dims(dim, input._array.ndim)
    return LogSumExp.apply(
        input, dims if dims is not None else tuple(range(input.ndim)), keepdim=keepdim
    )


class Norm(Function):
    """The vector p-norm (finite p != 0) over ``dim``."""

    autocast, differentiable_backward = "cuda:fp32", True

    @staticmethod
    def forward(ctx, x, p, dim=None, keepdim=False):
        xp = xp_of(x)
        with np.errstate(divide="ignore"):
            if p == 2:
                out = xp.sqrt(xp.square(x).sum(axis=dim, keepdims=keepdim))
            elif p == 1:
                out = xp.abs(x).sum(axis=dim, keepdims=keepdim)
            else:
                out = (xp.abs(x) ** p).sum(axis=dim, keepdims=keepdim) ** (1 / p)
        ctx.shape, ctx.dim, ctx.keepdim, ctx.p = x.shape, dim, keepdim, p
        out = xp.asarray(out, dtype=x.dtype)  # a 0-d array, not a NumPy scalar
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        p = ctx.p
        out = _expand(out, ctx.shape, ctx.dim, ctx.keepdim)
        grad = _expand(grad, ctx.shape, ctx.dim, ctx.keepdim)
        if p == 1:
            return grad * call("sign", x)
        zero = out == 0
        # PyTorch's convention: a zero norm has a zero gradient
        safe_out = out + zero
        with np.errstate(invalid="ignore", divide="ignore"):
            if p == 2:
                scale = x / safe_out
            else:
                scale = call("sign", x) * call("abs", x) ** (p - 1) / safe_out ** (p - 1)
        return grad * scale * (1 - zero)


def _norm(name, input, p, dim, keepdim):
    if not input.is_floating_point():
        raise RuntimeError(f"{name}(): input dtype should be floating point, but got {input.dtype}")
    if isinstance(p, str) or not isinstance(p, int | float):
        raise ValueError(f"{name}(): p must be a number, got {p!r}")
    dims = wrap_dims(dim, input._array.ndim)
    if p == math.inf:
        return amax(_abs(input), dims if dims else (), keepdim)
    if p == -math.inf:
        return amin(_abs(input), dims if dims else (), keepdim)
    if p == 0:
        nz = (input._array != 0).sum(axis=dims, keepdims=keepdim)
        return Tensor._make(
            xp_of(input._array).asarray(nz, dtype=input._array.dtype), False, None, 0
        )
    return Norm.apply(input, p, dim=dims, keepdim=keepdim)


@declared(Norm, axis_aliases=True)
def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    r"""Vector norm of ``input`` over ``dim`` (all elements by default).

    ``p`` is ``'fro'`` (= 2) or a number: ``inf``/``-inf`` for the max/min of abs, 0 for
    the count of non-zeros, a negative p for ``(sum |x|^p)^(1/p)``.

    Example::

        >>> ember.norm(ember.tensor([3.0, 4.0]))
        tensor(5.)
    """
    if dtype is not None:
        input = input.to(dtype)
    if p == "fro" or p is None:
        p = 2
    return _norm("norm", input, p, dim, keepdim)


# -- logical reductions ------------------------------------------------------------------------


def _logical_reduce(name, input, dim, keepdim):
    dims = wrap_dims(dim, input._array.ndim)
    out = getattr(input._array.astype(bool, copy=False), name)(axis=dims, keepdims=keepdim)
    return Tensor._make(xp_of(input._array).asarray(out), False, None, 0)


@declared(None, axis_aliases=True)
@traceable
def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    r"""True where every element (over ``dim``) is non-zero."""
    return _logical_reduce("all", input, dim, keepdim)


@declared(None, axis_aliases=True)
@traceable
def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    r"""True where some element (over ``dim``) is non-zero."""
    return _logical_reduce("any", input, dim, keepdim)


@declared(None, axis_aliases=True)
@traceable
def count_nonzero(input: Tensor, dim=None) -> Tensor:
    r"""Number of non-zero elements (over ``dim``), as int64."""
    dims = wrap_dims(dim, input._array.ndim)
    out = (input._array != 0).sum(axis=dims, dtype=np.int64)
    return Tensor._make(xp_of(input._array).asarray(out), False, None, 0)
