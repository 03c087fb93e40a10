"""Ops along one dimension: scans (cumsum, cumprod, cummax, cummin, logcumsumexp) and
sorting (sort, argsort, topk). The softmax family is in ``softmax.py``."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import backend, dtypes
from ..autograd import Function, traceable
from ..tensor import Tensor
from ._util import wrap_dim, xp_of
from .declare import declared
from .reduce import Sum, _expand, _put_along

sort_result = namedtuple("sort", ["values", "indices"])
cummax_result = namedtuple("cummax", ["values", "indices"])
cummin_result = namedtuple("cummin", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])


# -- scans --------------------------------------------------------------------------------------


class CumSum(Function):
    autocast, differentiable_backward = "cuda:fp32", True

    @staticmethod
    def forward(ctx, x, dim, dtype=None):
        ctx.dim = dim
        return xp_of(x).cumsum(x, axis=dim, dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        # reversed cumulative sum = total - cumsum + grad
        if isinstance(grad, Tensor):
            total = Sum.apply(grad, dim=(ctx.dim,), keepdim=True)
            return (
                _expand(total, tuple(grad.shape), (ctx.dim,), True)
                - CumSum.apply(grad, ctx.dim)
                + grad
            )
        xp = xp_of(grad)
        return xp.flip(xp.cumsum(xp.flip(grad, ctx.dim), axis=ctx.dim), ctx.dim)


class CumProd(Function):
    autocast = "cuda:fp32"

    @staticmethod
    def forward(ctx, x, dim, dtype=None):
        y = xp_of(x).cumprod(x, axis=dim, dtype=dtype)
        ctx.dim = dim
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        xp = xp_of(x)
        d = ctx.dim
        rcumsum = lambda a: xp.flip(xp.cumsum(xp.flip(a, d), axis=d), d)  # noqa: E731
        zero = x == 0
        if not zero.any():
            return rcumsum(grad * y) / x
        # Per slice with a zero at z: positions before z use the formula above, z gets
        # prod(x[:z]) * sum_{j>=z} grad[j] * prod(x[z+1..j]), positions after z get 0.
        x_m, y_m, g_m = (xp.moveaxis(a, d, -1).reshape(-1, x.shape[d]) for a in (x, y, grad))
        out = xp.zeros_like(x_m)
        for r in range(x_m.shape[0]):
            xr, yr, gr = x_m[r], y_m[r], g_m[r]
            zeros = xp.flatnonzero(xr == 0)
            if zeros.size == 0:
                out[r] = xp.flip(xp.cumsum(xp.flip(gr * yr))) / xr
                continue
            z = int(zeros[0])
            out[r, :z] = xp.flip(xp.cumsum(xp.flip(gr[:z] * yr[:z]))) / xr[:z]
            before = yr[z - 1] if z else 1
            after = xp.cumprod(xp.concatenate([xp.ones(1, xr.dtype), xr[z + 1 :]]))
            out[r, z] = before * (gr[z:] * after).sum()
        return xp.moveaxis(out.reshape(xp.moveaxis(x, d, -1).shape), -1, d)


def _scan(cls, input, dim, **params):
    """Apply a scan op; a 0-d input is scanned as one element and stays 0-d."""
    if input._array.ndim == 0:
        wrap_dim(dim, 0)
        return cls.apply(input.reshape(1), 0, **params).reshape(())
    return cls.apply(input, wrap_dim(dim, input._array.ndim), **params)


class CumExtreme(Function):
    """Running max (or min) and the index of the latest element that set it; NaN, once
    seen, stays the running value (PyTorch's rules)."""

    @staticmethod
    def forward(ctx, x, dim, largest):
        values, indices = _on_host(lambda a: _running_extreme(a, dim, largest), x)
        ctx.save_for_backward(indices)
        ctx.dim, ctx.shape = dim, x.shape
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad, _):
        (indices,) = ctx.saved_tensors
        xp = xp_of(grad)
        out = xp.zeros(ctx.shape, grad.dtype)
        key = list(xp.ogrid[tuple(slice(s) for s in indices.shape)])
        key[ctx.dim] = indices
        xp.add.at(out, tuple(key), grad)
        return out


def _running_extreme(x, dim, largest):
    values = (np.maximum if largest else np.minimum).accumulate(x, axis=dim)
    setter = x == values
    if x.dtype.kind == "f":
        setter |= np.isnan(x)
    # the latest position that set the running value
    positions = np.arange(x.shape[dim]).reshape((-1,) + (1,) * (x.ndim - dim - 1))
    indices = np.maximum.accumulate(np.where(setter, positions, 0), axis=dim)
    return values, indices.astype(np.int64, copy=False)


def _cum_extreme(name, largest, input, dim):
    if input._array.ndim == 0:
        wrap_dim(dim, 0)
        values, indices = CumExtreme.apply(input.reshape(1), 0, largest=largest)
        values, indices = values.reshape(()), indices.reshape(())
    else:
        d = wrap_dim(dim, input._array.ndim)
        values, indices = CumExtreme.apply(input, d, largest=largest)
    return (cummax_result if largest else cummin_result)(values, indices)


@declared(CumExtreme, axis_aliases=True)
def cummax(input: Tensor, dim: int):
    r"""Running maximum along ``dim``: a namedtuple ``(values, indices)``.

    Example::

        >>> ember.cummax(ember.tensor([1, 3, 2, 5]), 0).values
        tensor([1, 3, 3, 5])
    """
    return _cum_extreme("cummax", True, input, dim)


@declared(CumExtreme, axis_aliases=True)
def cummin(input: Tensor, dim: int):
    r"""Running minimum along ``dim``: a namedtuple ``(values, indices)``."""
    return _cum_extreme("cummin", False, input, dim)


def _on_host(fn, *arrays):
    """``fn`` of NumPy copies of ``arrays`` (for ufunc.accumulate, which CuPy lacks),
    with the results moved back to the arrays' device."""
    if xp_of(arrays[0]) is np:
        return fn(*arrays)
    dev = backend.device_of(arrays[0])
    out = fn(*(backend.move_array(a, backend.CPU) for a in arrays))
    if isinstance(out, tuple):
        return tuple(backend.move_array(o, dev) for o in out)
    return backend.move_array(out, dev)


def _logcumsumexp(x, dim):
    def accumulate(a):
        with np.errstate(invalid="ignore"):
            return np.logaddexp.accumulate(a, axis=dim)

    return _on_host(accumulate, x)


class LogCumSumExp(Function):
    @staticmethod
    def forward(ctx, x, dim):
        y = _logcumsumexp(x, dim)
        ctx.dim = dim
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # dx_j = sum_{i >= j} g_i exp(x_j - y_i), summed in log space for the positive
        # and the negative parts of g separately so that nothing overflows
        x, y = ctx.saved_tensors
        xp = xp_of(grad)
        d = ctx.dim
        out = xp.zeros(x.shape, grad.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            for sign in (1, -1):
                part = xp.where(sign * grad > 0, sign * grad, 0)
                logs = xp.log(part) - y
                tail = xp.flip(_logcumsumexp(xp.flip(logs, d), d), d)
                out += sign * xp.exp(x + tail)
        return xp.nan_to_num(out, nan=0.0, posinf=np.inf, neginf=-np.inf)


@declared(LogCumSumExp, axis_aliases=True)
def logcumsumexp(input: Tensor, dim: int) -> Tensor:
    r"""``log(cumsum(exp(input), dim))``, computed without overflow."""
    if not input.is_floating_point():
        raise RuntimeError(f"\"logcumsumexp\" not implemented for '{input.dtype}'")
    return _scan(LogCumSumExp, input, dim)


def _scan_dtype(input, dtype):
    if dtype is not None:
        return dtypes.to_dtype(dtype).np
    return np.int64 if input._array.dtype.kind in "biu" else None


@declared(CumSum, axis_aliases=True)
def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    r"""Cumulative sum along ``dim``."""
    return _scan(CumSum, input, dim, dtype=_scan_dtype(input, dtype))


@declared(CumProd, axis_aliases=True)
def cumprod(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    r"""Cumulative product along ``dim``."""
    return _scan(CumProd, input, dim, dtype=_scan_dtype(input, dtype))


# -- sorting ---------------------------------------------------------------------------------


def _argsort(xp, data, dim, descending):
    if not descending:
        return xp.argsort(data, axis=dim, kind="stable")
    # stable descending: sort the reversed array ascending, then reverse back
    n = data.shape[dim]
    return n - 1 - xp.flip(xp.argsort(xp.flip(data, dim), axis=dim, kind="stable"), dim)


class Sort(Function):
    @staticmethod
    def forward(ctx, x, dim, descending=False, k=None):
        xp = xp_of(x)
        idx = _argsort(xp, x, dim, descending)
        if k is not None:
            idx = xp.take(idx, range(k), axis=dim)
        ctx.shape, ctx.dim, ctx.idx = x.shape, dim, idx
        return xp.take_along_axis(x, idx, axis=dim), idx.astype(np.int64, copy=False)

    @staticmethod
    def backward(ctx, grad, _):
        return _put_along(xp_of(grad), ctx.shape, grad.dtype, ctx.idx, grad, ctx.dim)


@declared(Sort, axis_aliases=True)
def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    r"""Sorted values and their indices along ``dim`` as a namedtuple ``(values, indices)``.

    The sort is always stable.
    """
    if input._array.ndim == 0:
        return sort_result(input.clone(), Tensor._make(np.zeros((), np.int64), False, None, 0))
    values, indices = Sort.apply(input, wrap_dim(dim, input._array.ndim), descending=descending)
    return sort_result(values, indices)


@declared(None, axis_aliases=True)
@traceable
def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    r"""Indices that sort ``input`` along ``dim``."""
    if input._array.ndim == 0:
        return Tensor._make(np.zeros((), np.int64), False, None, 0)
    d = wrap_dim(dim, input._array.ndim)
    idx = _argsort(xp_of(input._array), input._array, d, descending)
    return Tensor._make(idx.astype(np.int64, copy=False), False, None, 0)


@declared(Sort)
def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    r"""The ``k`` largest (or smallest) elements along ``dim``: ``(values, indices)``."""
    d = wrap_dim(dim, input._array.ndim)
    size = input._array.shape[d] if input._array.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"selected index k out of range: k={k} but dim {d} has size {size}")
    values, indices = Sort.apply(input, d, descending=largest, k=k)
    return topk_result(values, indices)
