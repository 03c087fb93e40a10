"""Tensor creation: from data, filled, ranges and random."""

from __future__ import annotations

import numpy as np

from . import backend, dtypes
from .autograd import traceable
from .random import generator_for
from .tensor import Size, Tensor


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], tuple | list | Size):
        size = size[0]
    shape = tuple(int(s) for s in size)
    if any(s < 0 for s in shape):
        raise RuntimeError(f"negative dimension in shape {list(shape)}")
    return shape


def _new(array, requires_grad=False) -> Tensor:
    t = Tensor._make(array, False, None, 0)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(data) -> dtypes.dtype:
    """PyTorch's inference for Python data: bools, ints (int64), floats (default)."""
    arr = np.asarray(data)
    if arr.dtype.kind == "f" and not isinstance(data, np.ndarray | np.generic):
        return dtypes.get_default_dtype()
    if arr.dtype.kind in "iu" and not isinstance(data, np.ndarray | np.generic):
        return dtypes.int64
    return dtypes.from_numpy(arr.dtype)


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    r"""Copy ``data`` (nested lists, scalars, arrays, tensors) into a new tensor.

    Example::

        >>> ember.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    """
    if isinstance(data, Tensor):
        data = data.detach()._array
    elif isinstance(data, list | tuple) and data and _has_tensors(data):
        data = [tensor(d)._array for d in data]
        xp = backend.xp_of(data[0])
        data = xp.stack(data)
    dev = backend.normalize_device(device) if device is not None else None
    if dev is None:
        dev = backend.device_of(data) if hasattr(data, "__cuda_array_interface__") else backend.CPU
    dt = dtypes.to_dtype(dtype) if dtype is not None else _infer_from(data)
    xp = backend.xp_of(dev)
    with backend.device_context(dev):
        arr = xp.array(data, dtype=dt.np, copy=True, order="C")  # contiguous, as torch
    return _new(arr, requires_grad)


def _infer_from(data):
    if hasattr(data, "__cuda_array_interface__"):
        return dtypes.from_numpy(data.dtype)
    return _infer_dtype(data)


def _has_tensors(seq) -> bool:
    return any(
        isinstance(d, Tensor) or (isinstance(d, list | tuple) and d and _has_tensors(d))
        for d in seq
    )


def as_tensor(data, dtype=None, device=None) -> Tensor:
    r"""Like ``tensor`` but shares memory when ``data`` already has the right dtype and device."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if (device or dtype) else data
    if isinstance(data, np.ndarray) and (
        device is None or backend.normalize_device(device).type == "cpu"
    ):
        dt = dtypes.to_dtype(dtype).np if dtype is not None else data.dtype
        return _new(np.asarray(data, dtype=dt))
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    r"""A tensor sharing memory with a NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dtypes.from_numpy(array.dtype)
    return _new(array)


def from_dlpack(ext) -> Tensor:
    r"""Wrap a DLPack-capable array (CuPy, PyTorch, JAX, NumPy) without a copy."""
    if hasattr(ext, "__dlpack_device__") and ext.__dlpack_device__()[0] == 1:
        return _new(np.from_dlpack(ext))
    return _new(backend._cupy().from_dlpack(ext))


def _filled(fill, size, dtype, device, requires_grad):
    dev = backend.normalize_device(device)
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    xp = backend.xp_of(dev)
    with backend.device_context(dev):
        arr = fill(xp, _shape(size), dt.np)
    return _new(arr, requires_grad)


@traceable
def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(lambda xp, s, d: xp.zeros(s, d), size, dtype, device, requires_grad)


@traceable
def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(lambda xp, s, d: xp.ones(s, d), size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(lambda xp, s, d: xp.empty(s, d), size, dtype, device, requires_grad)


@traceable
def full(size, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dtype = dtypes.scalar_dtype(
            fill_value.item() if isinstance(fill_value, Tensor) else fill_value
        )
    return _filled(
        lambda xp, s, d: xp.full(s, fill_value, d), (size,), dtype, device, requires_grad
    )


def _like(fn):
    def like(input: Tensor, *args, dtype=None, device=None, requires_grad=False, **kwargs):
        return fn(
            input.shape,
            *args,
            dtype=dtype or input.dtype,
            device=device or input.device,
            requires_grad=requires_grad,
            **kwargs,
        )

    like.__name__ = fn.__name__ + "_like"
    return traceable(like)


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
full_like = _like(full)


@traceable
def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = dtypes.get_default_dtype() if is_float else dtypes.int64
    dev = backend.normalize_device(device)
    dt = dtypes.to_dtype(dtype)
    xp = backend.xp_of(dev)
    with backend.device_context(dev):
        arr = xp.arange(start, end, step, dtype=np.float64 if dt.is_floating_point else None)
        arr = arr.astype(dt.np, copy=False)
    return _new(arr, requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(
        lambda xp, s, d: xp.linspace(start, end, steps).astype(d), (), dtype, device, requires_grad
    )


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(lambda xp, s, d: xp.eye(n, m, dtype=d), (), dtype, device, requires_grad)


# -- random -----------------------------------------------------------------------------


def _random(draw, size, generator, dtype, device, requires_grad):
    dev = backend.normalize_device(device)
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    if not dt.is_floating_point:
        raise RuntimeError(f"expected a floating point dtype for random values, got {dt}")
    rng = generator_for(generator, dev).rng
    shape = _shape(size)
    gen_dt = dt.np if dt.np in (np.float32, np.float64) else np.float32
    with backend.device_context(dev):
        arr = draw(rng, shape, gen_dt).astype(dt.np, copy=False)
    return _new(arr, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _random(
        lambda r, s, d: r.random(s, dtype=d), size, generator, dtype, device, requires_grad
    )


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _random(
        lambda r, s, d: r.standard_normal(s, dtype=d), size, generator, dtype, device, requires_grad
    )


def rand_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return rand(
        input.shape,
        dtype=dtype or input.dtype,
        device=device or input.device,
        requires_grad=requires_grad,
    )


def randn_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return randn(
        input.shape,
        dtype=dtype or input.dtype,
        device=device or input.device,
        requires_grad=requires_grad,
    )


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    r"""``randint(high, size)`` or ``randint(low, high, size)``: integers in [low, high)."""
    if size is None:
        low, high, size = 0, low, high
    if high is None or size is None:
        raise TypeError("randint() needs high and size")
    if low >= high:
        raise RuntimeError(
            f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
        )
    dev = backend.normalize_device(device)
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64
    rng = generator_for(generator, dev).rng
    with backend.device_context(dev):
        arr = rng.integers(low, high, size=_shape((size,)), dtype=np.int64).astype(
            dt.np, copy=False
        )
    return _new(arr)


def randint_like(input: Tensor, low, high=None, *, dtype=None, device=None) -> Tensor:
    if high is None:
        low, high = 0, low
    return randint(
        low, high, input.shape, dtype=dtype or input.dtype, device=device or input.device
    )


def randperm(n: int, *, generator=None, dtype=None, device=None) -> Tensor:
    dev = backend.normalize_device(device)
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64
    rng = generator_for(generator, dev).rng
    with backend.device_context(dev):
        arr = rng.permutation(int(n)).astype(dt.np, copy=False)
    return _new(arr)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    r"""Normal samples: ``normal(mean, std, size)`` with floats, or elementwise with tensors."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        like = mean if isinstance(mean, Tensor) else std
        noise = randn(
            like.shape if size is None else size,
            generator=generator,
            dtype=like.dtype,
            device=like.device,
        )
        return noise * std + mean
    if size is None:
        raise TypeError("normal() with float mean and std needs size")
    return randn(size, generator=generator, dtype=dtype, device=device) * std + mean


def bernoulli(input: Tensor, p=None, *, generator=None) -> Tensor:
    probs = input._array if p is None else p
    rng = generator_for(generator, input.device).rng
    draw = rng.random(input.shape, dtype=np.float32)
    return _new((draw < probs).astype(input._array.dtype))


def multinomial(
    input: Tensor, num_samples: int, replacement: bool = False, *, generator=None
) -> Tensor:
    r"""Sample category indices from (unnormalised) probabilities in the last dim."""
    probs = backend.move_array(input._array, backend.CPU).astype(np.float64)
    if probs.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got {probs.ndim}")
    if (probs < 0).any() or not np.isfinite(probs).all():
        raise RuntimeError(
            "multinomial: probability tensor contains either `inf`, `nan` or element < 0"
        )
    rng = generator_for(generator, backend.CPU).rng
    rows = probs.reshape(-1, probs.shape[-1])
    out = np.empty((rows.shape[0], num_samples), dtype=np.int64)
    for i, row in enumerate(rows):
        total = row.sum()
        if total <= 0:
            raise RuntimeError(
                "multinomial: invalid multinomial distribution (sum of probabilities <= 0)"
            )
        out[i] = rng.choice(row.size, size=num_samples, replace=replacement, p=row / total)
    out = out.reshape(probs.shape[:-1] + (num_samples,))
    return _new(backend.move_array(out, input.device))


# -- in-place random fills used by nn.init ---------------------------------------------------


def _fill_random(self: Tensor, draw, generator) -> Tensor:
    self._check_inplace()
    rng = generator_for(generator, self.device).rng
    gen_dt = self._array.dtype if self._array.dtype in (np.float32, np.float64) else np.float32
    with backend.device_context(self.device):
        self._array[...] = draw(rng, self._array.shape, gen_dt)
    self._bump_version()
    return self


def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    return _fill_random(self, lambda r, s, d: r.random(s, dtype=d) * (b - a) + a, generator)


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    return _fill_random(self, lambda r, s, d: r.standard_normal(s, dtype=d) * std + mean, generator)


def bernoulli_(self: Tensor, p: float = 0.5, *, generator=None) -> Tensor:
    return _fill_random(self, lambda r, s, d: r.random(s, dtype=d) < p, generator)


def random_(self: Tensor, low: int = 0, high: int | None = None, *, generator=None) -> Tensor:
    if high is None:
        low, high = 0, low if low else 2**24
    return _fill_random(self, lambda r, s, d: r.integers(low, high, size=s), generator)


def new_tensor(self: Tensor, data, dtype=None, device=None, requires_grad=False) -> Tensor:
    return tensor(
        data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad
    )


def _new_filled(fn):
    def method(self: Tensor, *size, dtype=None, device=None, requires_grad=False, **kw):
        return fn(
            *size,
            dtype=dtype or self.dtype,
            device=device or self.device,
            requires_grad=requires_grad,
            **kw,
        )

    return method


def _new_full(self: Tensor, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(
        size,
        fill_value,
        dtype=dtype or self.dtype,
        device=device or self.device,
        requires_grad=requires_grad,
    )


for _name, _fn in dict(
    uniform_=uniform_,
    normal_=normal_,
    bernoulli_=bernoulli_,
    random_=random_,
    new_tensor=new_tensor,
    new_zeros=_new_filled(zeros),
    new_ones=_new_filled(ones),
    new_empty=_new_filled(empty),
    new_full=_new_full,
).items():
    setattr(Tensor, _name, _fn)
