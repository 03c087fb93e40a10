"""Mixed precision: ``autocast`` and ``GradScaler`` (``ember.amp``), PyTorch's semantics.

Inside ``autocast`` each op's public form calls ``cast_for(op_name, *tensors)``, which
casts its floating inputs by the op's entry in PyTorch's autocast op lists for the
tensors' device: GEMM-shaped ops (matmul, linear, conv, attention) to the low-precision
dtype, precision-sensitive ones (softmax, losses, norms, exp/log/pow, reductions on CUDA)
to float32, and the "promote" ops (cat, stack, dot, atan2, ...) to the widest floating
dtype among their inputs. An op declares its entry (``autocast`` on its Function, see
``ops/declare.py``), which lands in the table through ``declare_policy``. Outside any
region the ops pay one truthiness test of ``_state``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from . import backend, dtypes
from .autograd import no_grad
from .backend import device_context, device_of, xp_of
from .tensor import Tensor

# PyTorch's autocast op lists (aten/src/ATen/autocast_mode.cpp) per device type: op name ->
# policy, filled by the ops' declarations.
_LOWER, _FP32, _PROMOTE, _BANNED = "lower", "float32", "promote", "banned"
_POLICY: dict = {"cuda": {}, "cpu": {}}
_DECLARED = {"lower": _LOWER, "fp32": _FP32, "promote": _PROMOTE, "banned": _BANNED}


def declare_policy(device_type: str, op: str, policy: str) -> None:
    """Put ``op`` on the autocast list ``policy`` (``"lower"``, ``"fp32"``, ``"promote"``
    or ``"banned"``) of ``device_type``: an op's declared ``autocast`` (ops/declare.py)."""
    if policy not in _DECLARED:
        raise ValueError(
            f"autocast policy of {op} must be one of {sorted(_DECLARED)}, got {policy!r}"
        )
    _POLICY[device_type][op] = _DECLARED[policy]


_state: list = []  # one entry per open autocast region: the ops' cheap "any region?" test
_dtype_for: dict = {"cuda": None, "cpu": None}  # the active low dtype per device type


class autocast:
    r"""Run the ops in this region in mixed precision.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: ``ember.float16`` or ``ember.bfloat16`` (default: float16 on CUDA,
            bfloat16 on CPU).
        enabled: ``False`` makes the region a no-op (and turns autocast off inside it).

    Regions for different device types nest independently, as in PyTorch.

    Example::

        >>> with ember.autocast(device_type="cuda", dtype=ember.bfloat16):
        ...     loss = F.cross_entropy(model(x), y)
    """

    def __init__(
        self, device_type: str = "cuda", dtype=None, enabled: bool = True, cache_enabled=None
    ):
        if device_type not in ("cuda", "cpu"):
            raise ValueError(f"autocast device_type must be 'cuda' or 'cpu', got {device_type!r}")
        if dtype is None:
            dtype = dtypes.float16 if device_type == "cuda" else dtypes.bfloat16
        dtype = dtypes.to_dtype(dtype)
        if dtype not in (dtypes.float16, dtypes.bfloat16):
            raise ValueError(f"autocast dtype must be float16 or bfloat16, got {dtype}")
        self.device_type, self.fast_dtype, self.enabled = device_type, dtype, bool(enabled)
        self._saved: list = []

    def __enter__(self):
        self._saved.append(_dtype_for[self.device_type])
        _dtype_for[self.device_type] = self.fast_dtype if self.enabled else None
        _state.append(self)
        return self

    def __exit__(self, *exc):
        _state.pop()
        _dtype_for[self.device_type] = self._saved.pop()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    return _dtype_for[device_type] is not None


def get_autocast_dtype(device_type: str):
    """The dtype autocast uses on ``device_type`` (its default when no region is active)."""
    dt = _dtype_for[device_type]
    if dt is None:
        return dtypes.float16 if device_type == "cuda" else dtypes.bfloat16
    return dt


def cast_for(op: str, *tensors):
    """``tensors`` cast for op ``op`` in the active autocast region of their device type
    (PyTorch's op lists); unchanged for ops on no list and outside a region. float64,
    non-floating and non-Tensor arguments pass through, as in PyTorch."""
    device_type = None
    for t in tensors:
        if isinstance(t, Tensor):
            device_type = "cpu" if isinstance(t._array, np.ndarray) else "cuda"
            break
    low = _dtype_for.get(device_type)
    if low is None:
        return tensors
    policy = _POLICY[device_type].get(op)
    if policy is None:
        return tensors
    if policy is _BANNED:
        raise RuntimeError(
            f"ember.nn.functional.{op} and ember.nn.BCELoss are unsafe to autocast. Many "
            "models use a sigmoid layer right before the binary cross entropy layer; "
            "combine the two with binary_cross_entropy_with_logits or BCEWithLogitsLoss, "
            "which are safe to autocast."
        )
    if policy is _PROMOTE:
        target = _widest_floating(tensors)
        if target is None:
            return tensors
    else:
        target = low.np if policy is _LOWER else np.dtype(np.float32)
    out = []
    for t in tensors:
        if isinstance(t, Tensor):
            kind = t._array.dtype
            if (
                kind != target
                and (kind != np.float64 or policy is _PROMOTE)
                and t.is_floating_point()
            ):
                t = t.to(dtypes.from_numpy(target))
        out.append(t)
    return tuple(out)


def _widest_floating(tensors):
    """The promoted dtype of the floating tensors among ``tensors`` (None if none)."""
    widest = None
    for t in tensors:
        if isinstance(t, Tensor) and t.is_floating_point():
            widest = t.dtype if widest is None else dtypes.promote_types(widest, t.dtype)
    return None if widest is None else widest.np


# How the ranks of a job agree on whether a step had inf/nan gradients; registered by
# ember.distributed (core does not import it), None in a single process.
_found_inf_sync = None


def register_found_inf_sync(fn):
    """Make ``GradScaler`` pass each step's found-inf flag through ``fn(found) -> bool``
    (``ember.distributed`` registers one that is True on every rank if it is on any), or
    stop doing so with None. Returns the function registered before."""
    global _found_inf_sync
    previous, _found_inf_sync = _found_inf_sync, fn
    return previous


_READY, _UNSCALED, _STEPPED = 0, 1, 2


class GradScaler:
    r"""Dynamic loss scaling for float16 training.

    ``scale(loss)`` multiplies the loss; ``step(optimizer)`` unscales the gradients
    (unless ``unscale_`` already did) and skips the step if any is inf/nan, returning
    ``None`` then and the optimizer's result otherwise (``step_was_skipped`` tells too);
    ``update()`` backs the scale off after a skipped step and grows it after
    ``growth_interval`` clean ones. Under a process group every rank takes the same
    decision.

    Example::

        >>> scaler = ember.amp.GradScaler()
        >>> scaler.scale(loss).backward()
        >>> scaler.unscale_(opt); nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        >>> scaler.step(opt); scaler.update()
    """

    def __init__(
        self,
        device: str = "cuda",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ):
        if growth_factor <= 1.0:
            raise ValueError(f"growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor}")
        if growth_interval <= 0:
            raise ValueError(f"growth_interval must be a positive integer, got {growth_interval}")
        self.device = device
        if enabled and device == "cuda" and not backend.is_cuda_available():
            warnings.warn(
                "ember.amp.GradScaler is enabled, but CUDA is not available.  Disabling.",
                stacklevel=2,
            )
            enabled = False
        self._enabled = enabled
        self._scale = float(init_scale)
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict] = {}
        self._last_found: dict[int, bool] = {}  # found_inf per optimizer at the last update()

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def scale(self, outputs):
        """``outputs`` (a Tensor or a nested list/tuple of them) times the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * self._scale
        if isinstance(outputs, list | tuple):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def _state_for(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    @no_grad()
    def unscale_(self, optimizer) -> None:
        """Divide ``optimizer``'s gradients by the scale in place and record whether any
        is inf/nan; call it before clipping gradients."""
        if not self._enabled:
            return
        state = self._state_for(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()."
            )
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv = 1.0 / self._scale
        finite: dict = {}  # per device, flags that stay there: one read per device at the end
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad._array
                if g.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                g *= inv
                finite.setdefault(device_of(g), []).append(xp_of(g).isfinite(g).all())
        found = False
        for dev, flags in finite.items():
            with device_context(dev):
                found = found or not bool(xp_of(dev).stack(flags).all())
        if _found_inf_sync is not None:
            found = _found_inf_sync(found)
        state["stage"], state["found_inf"] = _UNSCALED, found

    def step(self, optimizer, *args, **kwargs):
        """Unscale if needed, then ``optimizer.step()`` unless a gradient was inf/nan."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state_for(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        state["stage"] = _STEPPED
        if state["found_inf"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | None = None) -> None:
        """Back the scale off after a skipped step, grow it after ``growth_interval``
        clean steps in a row, or set it to ``new_scale``."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale)
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values() if s["stage"] != _READY]
            if not found:
                raise RuntimeError("No inf checks were recorded prior to update.")
            if any(found):
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._last_found = {k: s["found_inf"] for k, s in self._per_optimizer.items()}
        self._per_optimizer.clear()

    def step_was_skipped(self, optimizer) -> bool:
        """Whether the last ``step(optimizer)`` was skipped for inf/nan gradients."""
        state = self._per_optimizer.get(id(optimizer))
        if state is not None:
            return bool(state["found_inf"])
        return bool(self._last_found.get(id(optimizer)))

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {
            "scale": self._scale,
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._growth_tracker,
        }

    def load_state_dict(self, state: dict) -> None:
        if not self._enabled:
            return
        if not state:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a "
                "disabled instance of GradScaler."
            )
        self._scale = float(state["scale"])
        self._growth_factor = state["growth_factor"]
        self._backoff_factor = state["backoff_factor"]
        self._growth_interval = state["growth_interval"]
        self._growth_tracker = state["_growth_tracker"]
