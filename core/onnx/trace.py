"""Recording the ops a model runs, for ONNX export.

While a ``Tracer`` is installed (``autograd.set_tracer``), every ``Function.apply`` and every
``@traceable`` op (comparisons, argmax, tensor creation) calls ``Tracer.record``, which runs
the op and appends a ``Node``: the op's key (its Function class or function name), its
arguments bound to the op's parameter names (tensors replaced by ``Value``s) and its output
``Value``s. A tensor the tracer has not seen is a parameter or buffer (named by its module
path), or a constant made inside forward. Forward hooks on every submodule keep the module
path of the op being run, for error messages.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from .. import autograd
from ..backend import xp_of
from ..ops.movement import Reshape
from ..tensor import Tensor
from .graph import TracerWarning


class Value:
    """One tensor of the traced graph. ``kind`` is "input", "param", "const" or "node";
    ``alt_shape`` is its shape in the second trace (at other dynamic-axis sizes)."""

    __slots__ = ("name", "shape", "dtype", "alt_shape", "array", "kind")

    def __init__(self, kind, array, name=None):
        self.kind = kind
        self.array = array
        self.shape = tuple(array.shape)
        self.alt_shape = self.shape
        self.dtype = np.dtype(array.dtype)
        self.name = name

    def is_dynamic(self, dim: int) -> bool:
        return self.shape[dim] != self.alt_shape[dim]

    def __repr__(self) -> str:
        return f"Value({self.kind} {self.name} {self.shape} {self.dtype})"


class Node:
    """One recorded op: ``args`` maps the op's parameter names to Values or Python values."""

    __slots__ = ("key", "args", "outputs", "module", "alt")

    def __init__(self, key, args, outputs, module):
        self.key, self.args, self.outputs, self.module = key, args, outputs, module
        self.alt = None  # the same op in the second trace

    @property
    def name(self) -> str:
        return self.key if isinstance(self.key, str) else self.key.__name__

    def __getitem__(self, name):
        return self.args[name]

    def alt_arg(self, name):
        return self.alt.args[name] if self.alt is not None else self.args[name]


_signatures = {}


def _bind(key, fn, args, params):
    """The op's arguments by parameter name, as its forward (or function) declares them."""
    sig = _signatures.get(key)
    if sig is None:
        target = key.forward if isinstance(key, type) else inspect.unwrap(fn)
        sig = inspect.signature(target)
        params_list = list(sig.parameters.values())
        if isinstance(key, type):  # forward(ctx, ...): ctx is not an argument
            params_list = params_list[1:]
        sig = _signatures[key] = sig.replace(parameters=params_list)
    bound = sig.bind(*args, **params)
    bound.apply_defaults()
    return dict(bound.arguments)


class Tracer:
    """Records the ops run by one forward pass of a model."""

    def __init__(self, named_tensors: dict):
        self.nodes = []
        self.values = {}  # id(Tensor) -> Value
        self.arrays = {}  # id(array) -> Value: aliases (detach, .data, no-op views)
        self.keep = []  # tensors and arrays the maps refer to, so their ids stay unique
        self.constants = []  # Values of tensors first seen inside forward, in order
        self.computed = []  # Values of the inputs and of recorded ops' outputs
        self.module_path = []
        self.named = named_tensors  # id(param or buffer) -> (name, tensor)

    # -- installing ---------------------------------------------------------------------
    def __enter__(self):
        if autograd._tracer is not None:
            raise RuntimeError("ember.onnx.export cannot run inside another export")
        autograd.set_tracer(self)
        return self

    def __exit__(self, *exc):
        autograd.set_tracer(None)
        return False

    def hook_modules(self, model):
        handles = []
        for path, module in model.named_modules():
            label = f"{path or '<root>'} ({type(module).__name__})"

            def pre(mod, args, label=label):
                self.module_path.append(label)

            def post(mod, args, out):
                self.module_path.pop()

            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
        return handles

    # -- values -----------------------------------------------------------------------------
    def add_input(self, tensor: Tensor, name: str) -> Value:
        v = Value("input", tensor._array, name)
        self._bind_value(tensor, v)
        self.computed.append(v)
        return v

    def _bind_value(self, tensor, value):
        self.values[id(tensor)] = value
        self.arrays[id(tensor._array)] = value
        self.keep.append(tensor)

    def value_of(self, t) -> Value:
        """The Value a tensor argument refers to, creating it for params and constants."""
        v = self.values.get(id(t))
        if v is not None:
            return v
        v = self.arrays.get(id(t._array))
        if v is None:
            named = self.named.get(id(t)) or self.named.get(id(t._array))
            if named is not None:
                v = Value("param", named[1]._array, named[0])
            else:  # made inside forward from Python values: a constant (copied now)
                xp = xp_of(t._array)
                v = Value("const", np.array(xp.asnumpy(t._array) if xp is not np else t._array))
                self.constants.append(v)
        self._bind_value(t, v)
        return v

    def current_module(self) -> str:
        return self.module_path[-1] if self.module_path else "<root>"

    # -- recording ------------------------------------------------------------------------
    def record(self, key, fn, args, params):
        """Run op ``fn`` (untraced) and append its Node; called from the dispatch hooks."""
        autograd.set_tracer(None)  # the op's own inner ops are part of it, not recorded
        try:
            out = fn(*args, **params)
            bound = _bind(key, fn, args, params)
        finally:
            autograd.set_tracer(self)
        for name, a in bound.items():
            if isinstance(a, tuple | list):
                bound[name] = type(a)(self._arg_value(t) for t in a)
            else:
                bound[name] = self._arg_value(a)
        outs = out if isinstance(out, tuple) else (out,)
        values = []
        for t in outs:
            if isinstance(t, Tensor):
                v = Value("node", t._array)
                self._bind_value(t, v)
                self.computed.append(v)
                values.append(v)
            else:
                values.append(None)
        self.nodes.append(Node(key, bound, values, self.current_module()))
        return out

    def _arg_value(self, a):
        """An element of a sequence argument (a key, a list of tensors) as a Value if it is
        a tensor or the raw array of one."""
        if isinstance(a, Tensor):
            return self.value_of(a)
        if hasattr(a, "__array_namespace__"):  # ops hand some tensors over as raw arrays
            if id(a) in self.arrays:
                return self.arrays[id(a)]
            named = self.named.get(id(a))
            if named is not None:
                return self.value_of(named[1])
            source = self._reshaped_source(a)
            if source is not None:
                return source
        return a

    def _reshaped_source(self, array):
        """An op may reshape a traced tensor's array before handing it over (index_select
        flattens its index): record that as a Reshape of the tensor it views."""
        if not isinstance(array, np.ndarray):
            return None
        for v in reversed(self.computed):
            if (
                v.array.size == array.size
                and np.may_share_memory(v.array, array)
                and np.array_equal(v.array.reshape(-1), array.reshape(-1))
            ):
                out = Value("node", array)
                args = {"x": v, "shape": tuple(array.shape)}
                self.nodes.append(Node(Reshape, args, [out], self.current_module()))
                self.arrays[id(array)] = out
                self.keep.append(array)
                self.computed.append(out)
                return out
        return None

    def to_python(self, tensor: Tensor, how: str) -> None:
        """A traced tensor became a Python value (item, bool, tolist, numpy): warn."""
        v = self.values.get(id(tensor)) or self.arrays.get(id(tensor._array))
        if v is not None and v.kind in ("input", "node"):
            warnings.warn(
                f"ember.onnx.export: {how}() turned a tensor computed from the inputs into a "
                f"Python value in module {self.current_module()}; the graph holds the value "
                "seen while tracing (and any control flow on it as taken), so it may be wrong "
                "for other inputs.",
                TracerWarning,
                stacklevel=3,
            )

    def rebind(self, tensor: Tensor, result: Tensor) -> None:
        """``tensor`` now holds ``result``'s values (an in-place op)."""
        base = tensor._base
        if base is not None and (id(base) in self.values or id(base._array) in self.arrays):
            warnings.warn(
                "ember.onnx.export: an in-place op wrote into a view of another tensor in "
                f"module {self.current_module()}; the graph records the write on the view "
                "only, so the viewed tensor keeps its old values there. Write into the "
                "tensor itself (x[key] = v) instead.",
                TracerWarning,
                stacklevel=4,
            )
        if id(result) in self.values:
            self._bind_value(tensor, self.values[id(result)])
