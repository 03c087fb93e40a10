"""Reverse-mode autograd's graph: the op node (``Function``), the leaf node
(``AccumulateGrad``) and the grad modes.

A ``Function`` instance is both the op's ``ctx`` and its node in the graph. Ops see
raw arrays: ``forward(ctx, *arrays, **params)`` returns an array (or a tuple of them)
and ``backward(ctx, *grads)`` returns one gradient per positional input. The backward
pass that walks these nodes is ``core/autograd_engine.py``; the public ``ember.autograd``
(whose ``Function`` sees Tensors, as in PyTorch) is ``core/autograd_public.py``.
"""

from __future__ import annotations

import functools
import itertools
import sys
import types
import warnings
import weakref

import numpy as np

from .backend import xp_of
from .dtypes import PYTHON_NUMBERS, from_numpy, is_bfloat16
from .utils.hooks import RemovableHandle, add_hook

# NumPy's floating-point warnings from inside ember's ops (log of 0, overflow in exp):
# PyTorch computes the same inf/nan silently. The filter covers ember's modules only, so a
# user's own NumPy keeps its warnings. It has to stay first: a ``warnings.catch_warnings``
# block (pytest runs its collection and every test in one) works on a copy of the filters
# and drops what was added inside it, and ``-W error`` or a script's own ``simplefilter``
# goes in front. An op that finds another filter first puts it back: one identity test.
_QUIET_NUMPY = {
    "message": r"(divide by zero|overflow|invalid value|underflow) encountered",
    "category": RuntimeWarning,
    "module": r"ember\.",
}
_quiet_filter: tuple | None = None


def keep_numpy_warnings_quiet() -> None:
    """Put ember's filter first again if something went in front of it (Function.apply
    makes the same identity test inline)."""
    global _quiet_filter
    if not warnings.filters or warnings.filters[0] is not _quiet_filter:
        warnings.filterwarnings("ignore", **_QUIET_NUMPY)
        _quiet_filter = warnings.filters[0]


_grad_enabled = True
_create_graph = False  # True while a backward pass records a graph of its own
_sequence = itertools.count()
# The ONNX exporter's tracer while ``ember.onnx.export`` runs a model, else None: one global
# check per op. The tracer sets it back to None while it runs the op it records.
_tracer = None
# The Tensor class, registered by tensor.py through register_tensor_class (tensor.py
# imports this module, so this one cannot import it). A module global keeps apply cheap.
Tensor = None
_make = None  # Tensor._make, bound once
_new_object = object.__new__  # a Function's ctx: no op defines __new__ or __init__


def register_tensor_class(cls) -> None:
    """Make ``cls`` the class that ``Function.apply`` unwraps inputs of and wraps
    outputs in (called once, by tensor.py)."""
    global Tensor, _make
    Tensor = cls
    _make = cls._make


def set_tracer(tracer):
    """Install ``tracer`` (``ember.onnx``'s, or None) to record every op; returns the
    previous one."""
    global _tracer
    previous, _tracer = _tracer, tracer
    return previous


def set_backward_modes(grad_enabled: bool, create_graph: bool) -> tuple[bool, bool]:
    """Set the grad mode and the create-graph flag for a backward pass (the engine's
    use); returns the previous pair, to be restored when the pass ends."""
    global _grad_enabled, _create_graph
    previous = _grad_enabled, _create_graph
    _grad_enabled, _create_graph = grad_enabled, create_graph
    return previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class set_grad_enabled:
    r"""Context manager / decorator that turns gradient recording on or off.

    Example::

        >>> with ember.set_grad_enabled(False):
        ...     y = x * 2  # y.requires_grad is False
    """

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self.prev = None
        self._apply(self.mode)

    def _apply(self, mode):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(self.mode):
                return fn(*args, **kwargs)

        return wrapper


class _GradMode:
    mode = True

    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    r"""Context manager / decorator that disables gradient recording."""

    mode = False


class enable_grad(_GradMode):
    r"""Context manager / decorator that enables gradient recording."""

    mode = True


class inference_mode(_GradMode):
    r"""Like ``no_grad`` (ember has no separate inference tensors)."""

    def __init__(self, mode: bool = True):
        self.mode = not mode


def traceable(fn):
    """Mark a public op that computes without a ``Function`` (comparisons, argmax, tensor
    creation) so that ``ember.onnx.export`` records it, keyed by the function's name."""

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        if _tracer is None:
            return fn(*args, **kwargs)
        return _tracer.record(fn.__name__, fn, args, kwargs)

    return traced


class _NoGradContext:
    """Shared stand-in ``ctx`` for ops run without recording: saving is a no-op."""

    def save_for_backward(self, *arrays):
        pass

    def mark_non_differentiable(self, *arrays):
        pass


# The ctx every op runs with when it records nothing: a forward may skip storing what only
# its backward reads with `if ctx is not NO_GRAD_CTX` (see core/ops/declare.py).
NO_GRAD_CTX = _NoGradContext()


class Function:
    """Base of every op. Subclasses define ``forward`` and ``backward`` as staticmethods."""

    # Set on ops whose backward is written so that it also runs on Tensors
    # (operators and dispatching helpers only), which makes create_graph work.
    differentiable_backward = False
    # The op's autocast list and operand promotion, applied by its public form: see
    # ops/declare.py, which also tells how to declare an op.
    autocast = None
    promotes = None
    # Set on ops whose output may alias their input's memory (views).
    is_view = False
    # Set on elementwise ops of two operands: NumPy's ValueError on shapes that do not
    # broadcast becomes PyTorch's message, naming the sizes and the dimension.
    broadcasts = False
    # Instance attributes once set; the class defaults save stores per op.
    _saved = None
    _non_diff = None
    n_outputs = 1
    _pre_hooks = None  # {output_nr: {id: hook}} once tensor.register_hook is called
    _released = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # `cls.apply` bound to the class once, as the classmethod binds it: read through
        # the classmethod, every op call made a new bound method.
        apply = next(k.__dict__["apply"] for k in cls.__mro__ if "apply" in k.__dict__)
        if isinstance(apply, classmethod | types.MethodType):
            cls.apply = types.MethodType(apply.__func__, cls)

    @classmethod
    def apply(cls, *args, **params):
        if not warnings.filters or warnings.filters[0] is not _quiet_filter:
            keep_numpy_warnings_quiet()
        if _tracer is not None:
            return _tracer.record(cls, cls.apply, args, params)
        arrays = []
        if _grad_enabled:
            # One pass over the inputs gathers the arrays and, as if this op records, its
            # graph edges; they are dropped below when no input requires grad.
            edges = []
            needs = []
            for a in args:
                if isinstance(a, Tensor):
                    arrays.append(a._array)
                    if a.requires_grad:
                        fn = a.grad_fn
                        edges.append(
                            (fn, a._output_nr)
                            if fn is not None
                            else (a._acc or a._accumulator(), 0)
                        )
                        needs.append(True)
                        continue
                else:
                    arrays.append(a)
                edges.append(None)
                needs.append(False)
            records = True in needs
        else:
            for a in args:
                arrays.append(a._array if isinstance(a, Tensor) else a)
            records = False
        ctx = _new_object(cls) if records else NO_GRAD_CTX
        try:
            out = cls.forward(ctx, *arrays, **params)
        except ValueError:
            if cls.broadcasts and (mismatch := _broadcast_error(args)) is not None:
                raise mismatch from None
            raise
        if not records:
            if type(out) is np.ndarray and not cls.is_view:
                return _make(out, False, None, 0)
            if isinstance(out, tuple):
                return tuple(_wrap_plain(o, args, cls.is_view) for o in out)
            return _wrap_plain(out, args, cls.is_view)

        ctx.next_edges = edges
        ctx.needs_input_grad = needs
        ctx.seq = next(_sequence)
        if type(out) is np.ndarray and not cls.is_view and ctx._non_diff is None:
            # _wrap_output's common case, inline; bfloat16 (ml_dtypes) has kind "V"
            differentiable = out.dtype.kind in "fc" or is_bfloat16(out.dtype)
            result = _make(out, differentiable, ctx if differentiable else None, 0)
            outs = (result,)
        elif isinstance(out, tuple):
            ctx.n_outputs = len(out)
            outs = tuple(ctx._wrap_output(o, i, args) for i, o in enumerate(out))
            ctx._out_meta = [(o.shape, o.dtype) for o in out]
            result = outs
        else:
            result = ctx._wrap_output(out, 0, args)
            outs = (result,)
        if ctx._saved is not None:
            ctx._bind_saved(args, arrays, outs)
        return result

    def _wrap_output(self, array, index, args):
        if isinstance(array, np.generic):
            array = np.asarray(array)
        differentiable = (array.dtype.kind in "fc" or is_bfloat16(array.dtype)) and (
            self._non_diff is None or not any(array is a for a in self._non_diff)
        )
        t = _make(array, differentiable, self if differentiable else None, index)
        if self.is_view:
            _share_version(t, args)
        return t

    # -- ctx API used inside forward / backward -------------------------------------
    def save_for_backward(self, *arrays):
        self._saved = arrays

    def mark_non_differentiable(self, *arrays):
        self._non_diff = arrays

    @property
    def saved_tensors(self):
        saved = self._saved
        if saved is None:
            if self._released:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time (through "
                    f"{type(self).__name__}), but the saved intermediate results have "
                    "already been freed. Specify retain_graph=True when calling "
                    ".backward() or autograd.grad() the first time."
                )
            return ()
        if _create_graph:
            return self._saved_as_tensors()
        return saved

    def _bind_saved(self, args, arrays, outs):
        """Remember which saved arrays are inputs/outputs: their versions are checked
        at backward, and under create_graph they come back as the Tensors themselves.

        An output is held by index and version counter only: holding the Tensor would
        close a cycle (output -> grad_fn -> ctx -> output) that keeps its memory alive
        until the cyclic garbage collector runs."""
        bound = []  # (version counter, expected version, index in saved, source)
        # counted by hand: enumerate/zip objects here cost 7 % of a small op's recording
        k = 0
        for s in self._saved:
            i = 0
            for arr in arrays:
                if arr is s and args[i] is not arr:  # a Tensor's array, not a raw argument
                    counter = args[i]._version_counter
                    bound.append((counter, counter[0], k, args[i]))
                    break
                i += 1
            else:
                i = 0
                for o in outs:
                    if o._array is s:
                        bound.append((o._version_counter, 0, k, i))
                        break
                    i += 1
            k += 1
        self._saved_bound = bound

    def _check_versions(self):
        for counter, expected, k, _ in self._saved_bound:
            if counter[0] != expected:
                arr = self._saved[k]
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been "
                    f"modified by an inplace operation: [{from_numpy(arr.dtype).name} "
                    f"{list(arr.shape)}] is at version {counter[0]}; expected version "
                    f"{expected} instead. It was saved by {type(self).__name__}."
                )

    def _saved_as_tensors(self):
        if not self.differentiable_backward:
            raise RuntimeError(
                f"double backward (create_graph=True) is not implemented for {type(self).__name__}"
            )
        sources = {k: src for _, _, k, src in self._saved_bound}
        result = []
        for k, arr in enumerate(self._saved):
            src = sources.get(k)
            if isinstance(src, Tensor):
                result.append(src)
            elif src is not None:
                result.append(_make(arr, True, self, src))
            elif arr is None or isinstance(arr, PYTHON_NUMBERS):  # saved Python scalars
                result.append(arr)
            else:
                result.append(_make(arr, False, None, 0))
        return tuple(result)

    def _release(self):
        self._saved = None
        self._saved_bound = None
        self._released = True

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"

    # -- hooks on this node's outputs (tensor.register_hook on non-leaves) -----------
    def _add_pre_hook(self, output_nr, hook) -> RemovableHandle:
        hooks = self._pre_hooks
        if hooks is None:
            hooks = self._pre_hooks = {}
        return add_hook(hooks.setdefault(output_nr, {}), hook)


def _broadcast_error(args):
    """PyTorch's error for two Tensor operands whose shapes do not broadcast, else None."""
    if len(args) < 2 or not (isinstance(args[0], Tensor) and isinstance(args[1], Tensor)):
        return None
    return broadcast_error(args[0]._array.shape, args[1]._array.shape)


def broadcast_error(sa: tuple, sb: tuple) -> RuntimeError | None:
    """PyTorch's error for shapes ``sa`` and ``sb`` that do not broadcast, else None."""
    for i in range(1, min(len(sa), len(sb)) + 1):
        if sa[-i] != sb[-i] and 1 not in (sa[-i], sb[-i]):
            return RuntimeError(
                f"The size of tensor a ({sa[-i]}) must match the size of tensor b "
                f"({sb[-i]}) at non-singleton dimension {max(len(sa), len(sb)) - i}"
            )
    return None


def _share_version(view, args):
    base = args[0]
    if not isinstance(base, Tensor):
        return
    # np.may_share_memory would try to convert CuPy arrays to host arrays (and fail)
    xp = xp_of(view._array)
    if xp.may_share_memory(view._array, base._array):
        view._version_counter = base._version_counter
        view._base = base._base if base._base is not None else base


def _wrap_plain(array, args, is_view):
    if isinstance(array, np.generic):
        array = np.asarray(array)
    t = _make(array, False, None, 0)
    if is_view:
        _share_version(t, args)
    return t


class AccumulateGrad:
    """The node at a leaf: adds the incoming gradient into ``leaf.grad``."""

    __slots__ = ("variable", "seq", "next_edges", "__weakref__")
    n_outputs = 1

    def __init__(self, variable):
        self.variable = weakref.ref(variable)
        # Highest priority: a leaf's gradient is accumulated (and its hooks run) as soon
        # as it is complete, before any other ready node, as in PyTorch.
        self.seq = sys.maxsize
        self.next_edges = ()
