"""Mixed precision: ``autocast`` and ``GradScaler`` (``ember.amp``), PyTorch's semantics.

Inside ``autocast`` the GEMM-shaped ops (matmul, linear, conv, attention) run in the
low-precision dtype and the precision-sensitive ones (softmax, losses, norms,
reductions) in float32; ops call ``cast_for(kind, *tensors)`` to get their inputs cast.
"""

from __future__ import annotations

import functools
import math

from . import dtypes
from .autograd import no_grad
from .tensor import Tensor

_state: list = []  # stack of (device_type, dtype) for the active autocast regions


class autocast:
    r"""Run the ops in this region in mixed precision.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: ``ember.float16`` or ``ember.bfloat16`` (default: float16 on CUDA,
            bfloat16 on CPU).
        enabled: ``False`` makes the region a no-op.

    Example::

        >>> with ember.autocast(device_type="cuda", dtype=ember.bfloat16):
        ...     loss = F.cross_entropy(model(x), y)
    """

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True, cache_enabled=None):
        if device_type not in ("cuda", "cpu"):
            raise ValueError(f"autocast device_type must be 'cuda' or 'cpu', got {device_type!r}")
        if dtype is None:
            dtype = dtypes.float16 if device_type == "cuda" else dtypes.bfloat16
        dtype = dtypes.to_dtype(dtype)
        if dtype not in (dtypes.float16, dtypes.bfloat16):
            raise ValueError(f"autocast dtype must be float16 or bfloat16, got {dtype}")
        self.device_type, self.dtype, self.enabled = device_type, dtype, enabled

    def __enter__(self):
        _state.append((self.device_type, self.dtype) if self.enabled else None)
        return self

    def __exit__(self, *exc):
        _state.pop()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    return bool(_state) and _state[-1] is not None and _state[-1][0] == device_type


def cast_for(kind: str, *tensors):
    """Inputs of an op of ``kind`` ("lower" or "float32") cast for the active autocast
    region; unchanged outside one. Non-floating and non-Tensor arguments pass through."""
    if not _state or _state[-1] is None:
        return tensors
    device_type, low = _state[-1]
    target = low if kind == "lower" else dtypes.float32
    out = []
    for t in tensors:
        if (
            isinstance(t, Tensor)
            and t.is_floating_point()
            and t.device.type == device_type
            and t.dtype is not target
            and not (kind == "float32" and t.dtype is dtypes.float64)
        ):
            t = t.to(target)
        out.append(t)
    return tuple(out)


# Set by ember.distributed when a process group with several ranks exists, so that
# every rank agrees on whether a step had inf/nan gradients.
sync_found_inf = None


class GradScaler:
    r"""Dynamic loss scaling for float16 training.

    ``scale(loss)`` multiplies the loss; ``step(optimizer)`` unscales the gradients
    (unless ``unscale_`` already did) and skips the step if any is inf/nan, returning
    ``None`` then and the optimizer's result otherwise (``step_was_skipped`` tells too);
    ``update()`` grows or backs off the scale. Under a process group every rank takes
    the same decision.

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
        self.device = device
        self._enabled = enabled
        self._scale = float(init_scale)
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict] = {}

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def scale(self, outputs):
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * self._scale
        return type(outputs)(self.scale(o) for o in outputs)

    def _state_for(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"unscaled": False, "found_inf": None})

    @no_grad()
    def unscale_(self, optimizer) -> None:
        if not self._enabled:
            return
        state = self._state_for(optimizer)
        if state["unscaled"]:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        inv = 1.0 / self._scale
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                g *= inv
                if not found:
                    total = float(abs(g).sum()) if g.size else 0.0
                    found = not math.isfinite(total)
        if sync_found_inf is not None:
            found = sync_found_inf(found)
        state["unscaled"], state["found_inf"] = True, found

    def step(self, optimizer, *args, **kwargs):
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        state = self._state_for(optimizer)
        if not state["unscaled"]:
            self.unscale_(optimizer)
        if state["found_inf"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | None = None) -> None:
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale)
        else:
            found = any(s["found_inf"] for s in self._per_optimizer.values())
            if found:
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._per_optimizer.clear()

    def step_was_skipped(self, optimizer) -> bool:
        """Whether the last ``step(optimizer)`` was skipped for inf/nan gradients."""
        return bool(self._state_for(optimizer)["found_inf"])

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
        if not state:
            return
        self._scale = float(state["scale"])
        self._growth_factor = state["growth_factor"]
        self._backoff_factor = state["backoff_factor"]
        self._growth_interval = state["growth_interval"]
        self._growth_tracker = state["_growth_tracker"]
