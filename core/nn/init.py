"""``ember.nn.init``: PyTorch's weight initialisations. Every function fills its
tensor in place without recording a graph and returns it."""

from __future__ import annotations

import math
import warnings

from .. import backend
from ..autograd import no_grad
from ..random import generator_for
from ..tensor import Tensor

_LINEAR_FNS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


def calculate_gain(nonlinearity: str, param=None) -> float:
    r"""The recommended gain for a nonlinearity (PyTorch's table).

    Example::

        >>> nn.init.calculate_gain("leaky_relu", 0.2)
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.dim() < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive_field = 1
    for s in tensor.shape[2:]:
        receptive_field *= s
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _no_grad_fill(tensor: Tensor, value) -> Tensor:
    with no_grad():
        tensor._array[...] = value
        tensor._bump_version()
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    r"""Fill with values drawn from U(a, b)."""
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    r"""Fill with values drawn from N(mean, std²)."""
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator=None,
) -> Tensor:
    r"""Fill with N(mean, std²) values redrawn until they lie in [a, b]."""
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of "
            "values may be incorrect.",
            stacklevel=2,
        )
    rng = generator_for(generator, tensor.device).rng
    xp = backend.xp_of(tensor._array)
    draw_dt = tensor._array.dtype if tensor._array.dtype.itemsize >= 4 else "float32"
    with backend.device_context(tensor.device):
        values = rng.standard_normal(tensor.shape, dtype=draw_dt) * std + mean
        bad = (values < a) | (values > b)
        while bool(bad.any()):
            n = int(bad.sum())
            values[bad] = rng.standard_normal(n, dtype=draw_dt) * std + mean
            bad = (values < a) | (values > b)
    return _no_grad_fill(tensor, xp.asarray(values))


def constant_(tensor: Tensor, val: float) -> Tensor:
    r"""Fill with ``val``."""
    return _no_grad_fill(tensor, val)


def ones_(tensor: Tensor) -> Tensor:
    return _no_grad_fill(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    return _no_grad_fill(tensor, 0)


def eye_(tensor: Tensor) -> Tensor:
    r"""Fill a 2-D tensor with the identity matrix."""
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    xp = backend.xp_of(tensor._array)
    return _no_grad_fill(tensor, xp.eye(*tensor.shape, dtype=tensor._array.dtype))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    r"""Fill a 3-, 4- or 5-D tensor with the Dirac delta: convolution keeps the
    input's channels (per group)."""
    dims = tensor.dim()
    if dims not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = tensor.shape
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_group = sizes[0] // groups
    min_dim = min(out_per_group, sizes[1])
    xp = backend.xp_of(tensor._array)
    values = xp.zeros(tensor.shape, dtype=tensor._array.dtype)
    centre = tuple(s // 2 for s in sizes[2:])
    for g in range(groups):
        for d in range(min_dim):
            values[(g * out_per_group + d, d) + centre] = 1
    return _no_grad_fill(tensor, values)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    r"""Glorot uniform: U(-bound, bound), ``bound = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    r"""Glorot normal: N(0, std²), ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator=None,
) -> Tensor:
    r"""He uniform: U(-bound, bound), ``bound = gain * sqrt(3 / fan_mode)``.

    Example::

        >>> nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # Linear's default
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator=None,
) -> Tensor:
    r"""He normal: N(0, std²), ``std = gain / sqrt(fan_mode)``."""
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    r"""Fill with a (semi-)orthogonal matrix (the tensor viewed as ``(shape[0], -1)``)."""
    if tensor.dim() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    rng = generator_for(generator, tensor.device).rng
    xp = backend.xp_of(tensor._array)
    with backend.device_context(tensor.device):
        flat = rng.standard_normal((rows, cols), dtype="float64")
        if rows < cols:
            flat = flat.T
        q, r = xp.linalg.qr(flat)
        q *= xp.sign(xp.diag(r))
        if rows < cols:
            q = q.T
    return _no_grad_fill(tensor, (q * gain).reshape(tensor.shape))


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    r"""Fill a 2-D tensor as a sparse matrix: in each column a ``sparsity`` fraction of
    rows is zero, the rest is drawn from N(0, std²)."""
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = tensor.shape
    num_zeros = int(math.ceil(sparsity * rows))
    normal_(tensor, 0, std, generator)
    rng = generator_for(generator, tensor.device).rng
    with no_grad():
        for col in range(cols):
            zero_rows = rng.random(rows).argsort()[:num_zeros]  # a random subset
            tensor._array[zero_rows, col] = 0
        tensor._bump_version()
    return tensor
