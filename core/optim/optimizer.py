"""The Optimizer base: parameter groups, per-parameter state, state_dict round trips
in PyTorch's format, zero_grad and step hooks.

Subclasses update ``p._array`` in place on raw arrays (NumPy or CuPy) with ufunc ``out=``
arguments, inside ``no_grad``, and bump each parameter's version counter.
"""

from __future__ import annotations

import copy
import functools
import itertools
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import backend
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor, wrap_array
from ..utils.hooks import RemovableHandle, add_hook, pre_hook_result

Params = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]


def check_hyper(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``; for constructor validation."""
    if not ok:
        raise ValueError(message)


def check_implementation_flags(foreach=None, fused=None, capturable=False, differentiable=False):
    """PyTorch's implementation switches, accepted so ported scripts run: ember has one
    implementation (in-place array updates; one fused kernel per tensor on CUDA), so
    ``foreach``/``fused`` change nothing; the two it cannot honour are refused."""
    if capturable:
        raise NotImplementedError("capturable=True (CUDA graph capture) is not supported by ember")
    if differentiable:
        raise NotImplementedError("differentiable=True (autograd through step()) is not supported")


_global_step_pre_hooks: OrderedDict = OrderedDict()
_global_step_post_hooks: OrderedDict = OrderedDict()


def register_optimizer_step_pre_hook(hook: Callable) -> RemovableHandle:
    r"""Register ``hook(optimizer, args, kwargs)`` to run before every optimizer's ``step``
    (before the optimizer's own pre-hooks). Returns a handle with ``remove()``."""
    return add_hook(_global_step_pre_hooks, hook)


def register_optimizer_step_post_hook(hook: Callable) -> RemovableHandle:
    r"""Register ``hook(optimizer, args, kwargs)`` to run after every optimizer's ``step``.
    Returns a handle with ``remove()``."""
    return add_hook(_global_step_post_hooks, hook)


def _hooked_step(step):
    """Wrap a class's ``step`` so it runs under ``no_grad`` between the step hooks."""

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        pre_hooks = (*_global_step_pre_hooks.values(), *self._step_pre_hooks.values())
        for hook in pre_hooks:
            result = hook(self, args, kwargs)
            args, kwargs = pre_hook_result(result, args, kwargs, "an optimizer step pre-hook")
        with no_grad():
            out = step(self, *args, **kwargs)
        self._opt_called = True
        for hook in (*self._step_post_hooks.values(), *_global_step_post_hooks.values()):
            hook(self, args, kwargs)
        return out

    wrapper.hooked = True
    return wrapper


def step_tensor(value: float = 0.0) -> Tensor:
    """The per-parameter step count: a float32 scalar tensor on the CPU, as in PyTorch."""
    return wrap_array(np.array(value, dtype=np.float32))


def increment_step(state: dict) -> float:
    """Add one to ``state['step']`` in place and return the new count as a float."""
    step = state["step"]
    if not isinstance(step, Tensor):
        step = state["step"] = step_tensor(float(step))
    step._array += 1
    step._bump_version()
    return float(step._array)


def zeros_state(p: Tensor, fill: float = 0.0) -> Tensor:
    """A state buffer shaped, typed and placed like parameter ``p``."""
    xp = backend.xp_of(p._array)
    with backend.device_context(p.device):
        data = xp.full(p._array.shape, fill, dtype=p._array.dtype)
    return wrap_array(data)


def as_float(value) -> float:
    """A hyper-parameter as a Python float (accepts one-element tensors)."""
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def decayed_grad(xp, param, grad, weight_decay: float, maximize: bool, out):
    """``(-grad if maximize else grad) + weight_decay * param``, written into ``out`` unless
    it is just ``grad`` (also a chunk's piece of it: the CPU updates run in chunks)."""
    if weight_decay != 0:
        g = xp.multiply(param, weight_decay, out=out)
        return xp.subtract(g, grad, out=g) if maximize else xp.add(g, grad, out=g)
    if maximize:
        return xp.negative(grad, out=out)
    return grad


class Optimizer:
    r"""Base class for all optimizers.

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts
            defining parameter groups (each with a ``params`` entry and optional
            per-group options that override ``defaults``).
        defaults: default values of the optimization options.

    Example::

        >>> opt = ember.optim.SGD([{"params": w}, {"params": b, "lr": 0.1}], lr=0.01)
    """

    _state_shaped_like_params = True  # load_state_dict checks state tensor shapes
    _state_buffers: tuple[str, ...] = ()  # per-parameter state that starts as zeros

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._init_hooks()
        self._patch_step_function()
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors "
                f"or dicts, but got {type(params).__name__}"
            )
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._scratch: dict = {}
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    _HOOK_DICTS = (
        "_step_pre_hooks",
        "_step_post_hooks",
        "_state_dict_pre_hooks",
        "_state_dict_post_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
    )

    def _init_hooks(self) -> None:
        for name in self._HOOK_DICTS:
            self.__dict__.setdefault(name, OrderedDict())

    def _patch_step_function(self) -> None:
        cls = self.__class__
        if not getattr(cls.step, "hooked", False):
            cls.step = _hooked_step(cls.step)

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_hooks()
        self.__dict__.setdefault("_scratch", {})
        self._patch_step_function()

    def __repr__(self) -> str:
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"

    # -- parameter groups ------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        r"""Add a parameter group (a dict with ``params`` and optional options), e.g. to
        start training layers that were frozen."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )
            param_group["param_names"] = names
        param_group["params"] = params
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}"
                )
            if not (p.is_leaf or p._retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        if len({id(p) for p in params}) != len(params):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "each will be updated once per occurrence",
                stacklevel=3,
            )
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for group in self.param_groups:
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        dup = [i for i, p in enumerate(params) if id(p) in seen]
        if dup:
            raise ValueError(
                "some parameters appear in more than one parameter group "
                f"(positions {dup} of the new group, shapes {[tuple(params[i].shape) for i in dup]})"
            )
        self.param_groups.append(param_group)

    # -- gradients and steps -----------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        r"""Reset the gradients of all optimized tensors: to ``None`` (default), or to
        zeros in place with ``set_to_none=False``."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad = False
                    g._array.fill(0)
                    g._bump_version()

    def step(self, closure: Callable[[], Any] | None = None):
        r"""Perform a single optimization step; ``closure`` re-evaluates the model and
        returns the loss, which ``step`` returns.

        Every parameter that has a gradient is updated in place: a subclass gives the
        update of one parameter in :meth:`_update` (and its first state in
        :meth:`_init_state`), or of a whole group in :meth:`_update_group`.
        """
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update_group(group, params)
        return loss

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """Update ``params``, the parameters of ``group`` that have a gradient: each one's
        state is created on its first step, then :meth:`_update` runs on raw arrays."""
        for p in params:
            state = self.state[p]
            if not state:
                self._init_state(p, state, group)
            self._update(p._array, p.grad._array, state, group)
            p._bump_version()

    def _init_state(self, p: Tensor, state: dict, group: dict[str, Any]) -> None:
        """Fill ``state``, parameter ``p``'s empty state, before its first update: the
        step count, then each of ``_state_buffers`` as zeros shaped like ``p``."""
        state["step"] = step_tensor()
        for name in self._state_buffers:
            state[name] = zeros_state(p)

    def _update(self, param, grad, state: dict, group: dict[str, Any]) -> None:
        """Update the array ``param`` in place from ``grad`` with ``group``'s options."""
        raise NotImplementedError(
            f"{type(self).__name__} must define step() (or _update() for one parameter)"
        )

    @staticmethod
    def _eval_closure(closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        r"""``hook(optimizer, args, kwargs)`` runs before each ``step``; it may return
        ``(new_args, new_kwargs)``. Returns a handle with ``remove()``."""
        return add_hook(self._step_pre_hooks, hook)

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        r"""``hook(optimizer, args, kwargs)`` runs after each ``step``. Returns a handle
        with ``remove()``."""
        return add_hook(self._step_post_hooks, hook)

    def register_state_dict_pre_hook(self, hook: Callable) -> RemovableHandle:
        r"""``hook(optimizer)`` runs before :meth:`state_dict` builds its result."""
        return add_hook(self._state_dict_pre_hooks, hook)

    def register_state_dict_post_hook(self, hook: Callable) -> RemovableHandle:
        r"""``hook(optimizer, state_dict)`` runs on :meth:`state_dict`'s result and may
        return a replacement."""
        return add_hook(self._state_dict_post_hooks, hook)

    def register_load_state_dict_pre_hook(self, hook: Callable) -> RemovableHandle:
        r"""``hook(optimizer, state_dict)`` runs before :meth:`load_state_dict` on a shallow
        copy of the state dict and may return a replacement."""
        return add_hook(self._load_state_dict_pre_hooks, hook)

    def register_load_state_dict_post_hook(self, hook: Callable) -> RemovableHandle:
        r"""``hook(optimizer)`` runs after :meth:`load_state_dict`."""
        return add_hook(self._load_state_dict_post_hooks, hook)

    def _buffer(self, like, slot: int = 0):
        """A reusable scratch array shaped and typed like ``like`` (one flat allocation per
        device, dtype and slot, grown as needed), so steps do not allocate per parameter."""
        dev = None if isinstance(like, np.ndarray) else like.device.id
        key = (dev, like.dtype, slot)
        buf = self._scratch.get(key)
        n = like.size
        if buf is None or buf.size < n:
            xp = backend.xp_of(like)
            with backend.device_context(backend.device_of(like)):
                buf = xp.empty(n, dtype=like.dtype)
            self._scratch[key] = buf
        return buf[:n].reshape(like.shape)

    def _decayed_grad(self, param, grad, weight_decay: float, maximize: bool):
        """``(-grad if maximize else grad) + weight_decay * param``, in a scratch buffer
        unless it is just ``grad``."""
        if weight_decay == 0 and not maximize:
            return grad
        xp = backend.xp_of(param)
        return decayed_grad(xp, param, grad, weight_decay, maximize, self._buffer(param, 1))

    def _regularized_grad(self, param, grad, group: dict[str, Any], lr: float):
        """The gradient a step follows under ``group``'s ``weight_decay`` and ``maximize``:
        with ``decoupled_weight_decay`` (AdamW) ``param`` is first scaled in place by
        ``1 - lr * weight_decay``; otherwise the decay is L2, added to the gradient."""
        weight_decay = group["weight_decay"]
        if group.get("decoupled_weight_decay", False):
            if weight_decay != 0:
                param *= 1 - lr * weight_decay
            weight_decay = 0
        return self._decayed_grad(param, grad, weight_decay, group["maximize"])

    # -- state dict ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        r"""The optimizer state in PyTorch's layout: ``state`` maps a parameter's integer
        index to its state dict; ``param_groups`` hold the options and ``params`` as lists
        of indices. Tensors are returned by reference, as in PyTorch."""
        for hook in list(self._state_dict_pre_hooks.values()):
            hook(self)
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {(index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        state_dict = {"state": state, "param_groups": groups}
        for hook in list(self._state_dict_post_hooks.values()):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        r"""Load a state produced by :meth:`state_dict`. Group count and sizes must match;
        state tensors are copied and cast to their parameter's dtype and device."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= state_dict.keys():
            raise ValueError(
                "optimizer state dict must be a dict with keys 'state' and 'param_groups', "
                f"got {sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}"
            )
        state_dict = dict(state_dict)
        for hook in list(self._load_state_dict_pre_hooks.values()):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups: "
                f"{len(saved_groups)} in the state dict, {len(groups)} in the optimizer"
            )
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    f"of optimizer's group: group {i} has {len(s['params'])} parameters in the "
                    f"state dict, {len(g['params'])} in the optimizer"
                )
        id_map = dict(
            zip(
                itertools.chain.from_iterable(g["params"] for g in saved_groups),
                itertools.chain.from_iterable(g["params"] for g in groups),
            )
        )
        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast(param, v, k, check_shape=self._state_shaped_like_params)
            else:
                state[k] = copy.deepcopy(v)
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
        self.__setstate__({"state": state, "param_groups": saved_groups})
        for hook in list(self._load_state_dict_post_hooks.values()):
            hook(self)


def _cast(param: Tensor, value, index, key=None, check_shape=True):
    """Copy ``value`` (a tensor, or containers of them) onto ``param``'s device; state
    tensors other than ``step`` also take ``param``'s floating dtype."""
    if isinstance(value, Tensor):
        data = value._array
        if key == "step":
            return wrap_array(np.array(backend.move_array(data, backend.CPU)))
        if check_shape and data.ndim and tuple(data.shape) != tuple(param.shape):
            raise ValueError(
                f"loaded state {key!r} of parameter {index} has shape {tuple(data.shape)}, "
                f"but the parameter has shape {tuple(param.shape)}"
            )
        dev = param.device
        dtype = param._array.dtype if param.is_floating_point() else data.dtype
        with backend.device_context(dev):
            data = backend.move_array(data, dev).astype(dtype, copy=True)
        return wrap_array(data)
    if isinstance(value, dict):
        return {k: _cast(param, v, index, k, check_shape) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cast(param, v, index, key, check_shape) for v in value)
    return copy.deepcopy(value)
