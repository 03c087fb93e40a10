"""``parameters_to_vector`` and ``vector_to_parameters``."""

from __future__ import annotations

from ...ops.join import cat
from ...tensor import Tensor


def parameters_to_vector(parameters) -> Tensor:
    r"""Concatenate ``parameters`` into one 1-D tensor (differentiable)."""

    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    device = params[0].device if params else None
    for p in params:
        if p.device != device:
            raise TypeError(
                f"Found two parameters on different devices, this is currently not supported "
                f"({device} and {p.device})"
            )
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    r"""Copy slices of the 1-D ``vec`` into ``parameters`` (their data then views ``vec``)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected ember.Tensor, but got: {type(vec).__name__}")
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.dim() != 1 or vec.numel() != total:
        raise RuntimeError(
            f"vector_to_parameters: expected a 1-D vector of {total} elements, got shape "
            f"{list(vec.shape)}"
        )
    pointer = 0
    for p in params:
        if p.device != vec.device:
            raise TypeError(
                f"Found two parameters on different devices, this is currently not supported "
                f"({vec.device} and {p.device})"
            )
        n = p.numel()
        p._array = (
            vec._array[pointer : pointer + n].reshape(p.shape).astype(p._array.dtype, copy=False)
        )
        p._bump_version()
        pointer += n
