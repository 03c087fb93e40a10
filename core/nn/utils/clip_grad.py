"""Gradient clipping: ``clip_grad_norm_`` (one reduction per gradient, one host sync at
most), ``clip_grad_value_``, ``get_total_norm``, ``clip_grads_with_norm_``."""

from __future__ import annotations

import math

import numpy as np

from ... import backend, multi_tensor
from ...autograd import no_grad
from ...parallel import parallel_for
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
    if all(isinstance(a, np.ndarray) for a in arrays):
        parts = _cpu_parts(arrays, norm_type)
    else:  # one pass per tensor, reducing on the device; one host sync at the end at most
        parts = [backend.move_array(xp.asarray(_part(xp, a, norm_type)), dev) for a in arrays]
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


def _part(xp, array, norm_type: float):
    """One tensor's (or block's) share of the total norm: a sum of powers, or a max / min."""
    g = array.reshape(-1)
    if g.dtype.itemsize < 4:
        g = g.astype("float32")
    if norm_type == 2.0:
        return xp.dot(g, g)
    if norm_type == math.inf:
        return xp.abs(g).max() if g.size else xp.zeros((), g.dtype)
    if norm_type == -math.inf:
        return xp.abs(g).min() if g.size else xp.full((), math.inf, g.dtype)
    if norm_type == 0.0:
        return (g != 0).sum().astype(g.dtype)
    if norm_type == 1.0:
        return xp.abs(g).sum()
    return (xp.abs(g) ** norm_type).sum()


# Elements per block of the CPU norms: blocks, not thread chunks, fix how a gradient's
# sum is split, so the total norm is the same on any number of threads.
_NORM_BLOCK = 1 << 18


def _blocks(arrays):
    """(array number, start, stop) of every block of the flattened arrays."""
    return [
        (i, start, min(start + _NORM_BLOCK, a.size))
        for i, a in enumerate(arrays)
        for start in range(0, max(a.size, 1), _NORM_BLOCK)
    ]


def _cpu_parts(arrays, norm_type: float) -> list:
    """Each NumPy array's share of the total norm, its blocks computed on ember's threads
    and combined in block order."""
    flat = [a.reshape(-1) for a in arrays]
    blocks = _blocks(flat)
    block_parts = [None] * len(blocks)

    def run(first, last):
        for k in range(first, last):
            i, start, stop = blocks[k]
            block_parts[k] = _part(np, flat[i][start:stop], norm_type)

    parallel_for(run, len(blocks), _NORM_BLOCK)
    combine = {math.inf: max, -math.inf: min}.get(norm_type)
    parts = [None] * len(arrays)
    for (i, _, _), part in zip(blocks, block_parts):
        if parts[i] is None:
            parts[i] = part
        else:
            parts[i] = combine(parts[i], part) if combine else parts[i] + part
    return [np.asarray(part) for part in parts]


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
    if all(isinstance(a, np.ndarray) for a in arrays):
        _cpu_scale(arrays, coef)
    else:
        for a in arrays:
            a *= coef.astype(a.dtype) if a.dtype != coef.dtype else coef
    for g in grads:
        g._bump_version()


def _cpu_scale(arrays, coef) -> None:
    """``a *= coef`` for every NumPy array, in blocks on ember's threads."""
    whole = [a for a in arrays if not a.flags.c_contiguous]  # reshape(-1) would copy
    flat = [a.reshape(-1) for a in arrays if a.flags.c_contiguous]
    blocks = _blocks(flat)

    def run(first, last):
        for k in range(first, last):
            i, start, stop = blocks[k]
            part = flat[i][start:stop]
            part *= coef.astype(part.dtype) if part.dtype != coef.dtype else coef

    parallel_for(run, len(blocks), _NORM_BLOCK)
    for a in whole:
        a *= coef.astype(a.dtype) if a.dtype != coef.dtype else coef


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
