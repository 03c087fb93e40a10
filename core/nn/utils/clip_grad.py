"""Gradient clipping: ``clip_grad_norm_`` (one reduction per gradient, one host sync at
most), ``clip_grad_value_``, ``get_total_norm``, ``clip_grads_with_norm_``."""

from __future__ import annotations

import math

import numpy as np

from ... import backend, multi_tensor
from ...autograd import no_grad
from ...tensor import Tensor, wrap_array


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def get_total_norm(
    tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    r"""The ``norm_type`` norm of all ``tensors`` together, as if concatenated."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = [t for t in tensors if t is not None]
    norm_type = float(norm_type)
    if not tensors:
        return wrap_array(np.asarray(0.0, dtype=np.float32))
    first = tensors[0]
    xp = backend.xp_of(first._array)
    arrays = [t._array for t in tensors]
    if norm_type in (2.0, math.inf) and multi_tensor.fits(arrays):  # one CUDA launch
        total = multi_tensor.total_norm(arrays, norm_type)
        return _checked_total(total, first, norm_type, error_if_nonfinite, xp)
    dev = first.device
    # one pass per tensor, reducing on the device; one host sync at the end at most
    parts = []
    for t in tensors:
        g = t._array.reshape(-1)
        if g.dtype.itemsize < 4:
            g = g.astype("float32")
        if norm_type == 2.0:
            part = xp.dot(g, g)
        elif norm_type == math.inf:
            part = xp.abs(g).max() if g.size else xp.zeros((), g.dtype)
        elif norm_type == -math.inf:
            part = xp.abs(g).min() if g.size else xp.full((), math.inf, g.dtype)
        elif norm_type == 0.0:
            part = (g != 0).sum().astype(g.dtype)
        elif norm_type == 1.0:
            part = xp.abs(g).sum()
        else:
            part = (xp.abs(g) ** norm_type).sum()
        parts.append(backend.move_array(xp.asarray(part), dev))
    stacked = xp.stack(parts)
    if norm_type == math.inf:
        total = stacked.max()
    elif norm_type == -math.inf:
        total = stacked.min()
    elif norm_type in (0.0, 1.0):
        total = stacked.sum()
    elif norm_type == 2.0:
        total = xp.sqrt(stacked.sum())
    else:
        total = stacked.sum() ** (1.0 / norm_type)
    return _checked_total(total, first, norm_type, error_if_nonfinite, xp)


def _checked_total(total, first, norm_type, error_if_nonfinite, xp) -> Tensor:
    total = xp.asarray(
        total, dtype=first._array.dtype if first._array.dtype.itemsize >= 4 else "float32"
    )
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return wrap_array(total)


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    r"""Scale the gradients by ``min(1, max_norm / (total_norm + 1e-6))`` in place."""
    grads = _grads(parameters)
    if not grads:
        return
    xp = backend.xp_of(total_norm._array)
    coef = xp.minimum(float(max_norm) / (total_norm._array + 1e-6), 1.0)
    arrays = [g._array for g in grads]
    if multi_tensor.fits(arrays):  # one CUDA launch
        multi_tensor.scale_(arrays, coef.astype("float64"))
        for g in grads:
            g._bump_version()
        return
    with no_grad():
        for g in grads:
            g._array *= coef.astype(g._array.dtype) if g._array.dtype != coef.dtype else coef
            g._bump_version()


def clip_grad_norm_(
    parameters,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach=None,
) -> Tensor:
    r"""Rescale the gradients of ``parameters`` in place so that their total
    ``norm_type`` norm is at most ``max_norm``; returns the total norm before clipping.

    Example::

        >>> loss.backward()
        >>> nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    grads = _grads(parameters)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if grads:
        clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    r"""Clamp every gradient of ``parameters`` to [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            xp = backend.xp_of(g._array)
            xp.clip(g._array, -clip_value, clip_value, out=g._array)
            g._bump_version()
