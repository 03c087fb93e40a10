"""Reverse-mode autograd: the graph node (``Function``), grad modes and the engine.

A ``Function`` instance is both the op's ``ctx`` and its node in the graph. Ops see
raw arrays: ``forward(ctx, *arrays, **params)`` returns an array (or a tuple of them)
and ``backward(ctx, *grads)`` returns one gradient per positional input.

Backward is iterative: a first pass counts, for every node reachable from the roots,
how many edges lead into it; a node runs once all of them have delivered, most
recently created first, so a leaf's gradient is final (and its post-accumulate hooks
fire) as early as possible. DistributedDataParallel overlaps communication on that.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import sys
import weakref

import ml_dtypes
import numpy as np

from .utils.hooks import RemovableHandle, add_hook

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_grad_enabled = True
_create_graph = False  # True while a backward pass records a graph of its own
_sequence = itertools.count()
_final_callbacks = None  # a list while a backward pass runs (see queue_callback)
# The ONNX exporter's tracer while ``ember.onnx.export`` runs a model, else None: one global
# check per op. The tracer sets it back to None while it runs the op it records.
_tracer = None
# The Tensor class; tensor.py binds it once defined (it imports this module first).
# A module global instead of an import inside each function keeps Function.apply cheap.
Tensor = None


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


_NO_GRAD_CTX = _NoGradContext()


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
    # Instance attributes once set; the class defaults save two stores per op.
    _saved = None
    _non_diff = None

    @classmethod
    def apply(cls, *args, **params):
        if _tracer is not None:
            return _tracer.record(cls, cls.apply, args, params)
        arrays = []
        requires_grad = False
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a._array)
                if a.requires_grad:
                    requires_grad = True
            else:
                arrays.append(a)
        if not (requires_grad and _grad_enabled):
            out = cls.forward(_NO_GRAD_CTX, *arrays, **params)
            if type(out) is np.ndarray and not cls.is_view:
                return Tensor._make(out, False, None, 0)
            if isinstance(out, tuple):
                return tuple(_wrap_plain(o, args, cls.is_view) for o in out)
            return _wrap_plain(out, args, cls.is_view)

        ctx = cls.__new__(cls)
        out = cls.forward(ctx, *arrays, **params)
        edges = []
        needs = []
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad:
                fn = a.grad_fn
                if fn is not None:
                    edges.append((fn, a._output_nr))
                else:
                    edges.append((a._acc or a._accumulator(), 0))
                needs.append(True)
            else:
                edges.append(None)
                needs.append(False)
        ctx.next_edges = edges
        ctx.needs_input_grad = needs
        ctx.seq = next(_sequence)
        if isinstance(out, tuple):
            ctx.n_outputs = len(out)
            outs = tuple(ctx._wrap_output(o, i, args) for i, o in enumerate(out))
            ctx._out_meta = [(o.shape, o.dtype) for o in out]
            result = outs
        else:
            ctx.n_outputs = 1
            if type(out) is np.ndarray and not cls.is_view and ctx._non_diff is None:
                # _wrap_output's common case, inline; bfloat16 (ml_dtypes) has kind "V"
                differentiable = out.dtype.kind in "fc" or out.dtype == _BFLOAT16
                result = Tensor._make(out, differentiable, ctx if differentiable else None, 0)
            else:
                result = ctx._wrap_output(out, 0, args)
            outs = (result,)
        if ctx._saved is not None:
            ctx._bind_saved(args, outs)
        return result

    def _wrap_output(self, array, index, args):
        if isinstance(array, np.generic):
            array = np.asarray(array)
        differentiable = (array.dtype.kind in "fc" or array.dtype == _BFLOAT16) and (
            self._non_diff is None or not any(array is a for a in self._non_diff)
        )
        t = Tensor._make(array, differentiable, self if differentiable else None, index)
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
            if getattr(self, "_released", False):
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

    def _bind_saved(self, args, outs):
        """Remember which saved arrays are inputs/outputs: their versions are checked
        at backward, and under create_graph they come back as the Tensors themselves.

        An output is held by index and version counter only: holding the Tensor would
        close a cycle (output -> grad_fn -> ctx -> output) that keeps its memory alive
        until the cyclic garbage collector runs."""
        sources = []
        versions = []  # flat triples: version counter, expected version, index in saved
        for k, s in enumerate(self._saved):
            src = None
            for a in args:
                if isinstance(a, Tensor) and a._array is s:
                    src = a
                    versions += (a._version_counter, a._version_counter[0], k)
                    break
            else:
                for i, o in enumerate(outs):
                    if o._array is s:
                        src = i
                        versions += (o._version_counter, 0, k)
                        break
            sources.append(src)
        self._saved_sources = sources
        self._saved_versions = versions

    def _check_versions(self):
        versions = self._saved_versions
        for j in range(0, len(versions), 3):
            counter, expected = versions[j], versions[j + 1]
            if counter[0] != expected:
                from .dtypes import from_numpy

                arr = self._saved[versions[j + 2]]
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
        result = []
        for arr, src in zip(self._saved, self._saved_sources):
            if isinstance(src, Tensor):
                result.append(src)
            elif src is not None:
                result.append(Tensor._make(arr, True, self, src))
            elif arr is None or isinstance(arr, bool | int | float):  # saved Python scalars
                result.append(arr)
            else:
                result.append(Tensor._make(arr, False, None, 0))
        return tuple(result)

    def _release(self):
        self._saved = None
        self._saved_sources = None
        self._saved_versions = None
        self._released = True

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"

    # -- hooks on this node's outputs (tensor.register_hook on non-leaves) -----------
    def _add_pre_hook(self, output_nr, hook) -> RemovableHandle:
        hooks = self.__dict__.setdefault("_pre_hooks", {})
        return add_hook(hooks.setdefault(output_nr, {}), hook)


def _share_version(view, args):
    base = args[0]
    if not isinstance(base, Tensor):
        return
    # np.may_share_memory would try to convert CuPy arrays to host arrays (and fail)
    xp = np if isinstance(view._array, np.ndarray) else _array_module_of(view._array)
    if xp.may_share_memory(view._array, base._array):
        view._version_counter = base._version_counter
        view._base = base._base if base._base is not None else base


def _wrap_plain(array, args, is_view):
    if isinstance(array, np.generic):
        array = np.asarray(array)
    t = Tensor._make(array, False, None, 0)
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


# -- the engine -------------------------------------------------------------------------


def _as_array(g):
    if isinstance(g, Tensor):
        return g._array
    if isinstance(g, np.generic):  # NumPy turns 0-d results into scalars
        return np.asarray(g)
    return g


def _add(a, b):
    return b if a is None else a + b


def run_backward(roots, grads, retain_graph, create_graph, inputs=None, accumulate=True):
    """Propagate ``grads`` from the ``roots`` (tensors) through the graph.

    With ``inputs`` given (``autograd.grad``), returns their gradients instead of
    accumulating into ``.grad`` when ``accumulate`` is False.
    """
    global _grad_enabled, _create_graph
    buffers = {}
    start = []
    for t, g in zip(roots, grads):
        node, nr = (t.grad_fn, t._output_nr) if t.grad_fn is not None else (t._accumulator(), 0)
        buf = buffers.setdefault(node, [None] * node.n_outputs)
        buf[nr] = _add(buf[nr], g)
        start.append(node)

    # Capture points for autograd.grad: (node, output_nr) -> position in `inputs`.
    captures = {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not t.requires_grad:
                raise RuntimeError(f"input {i} of autograd.grad does not require grad")
            key = (t.grad_fn, t._output_nr) if t.grad_fn is not None else (t._accumulator(), 0)
            captures.setdefault(key, []).append(i)
    captured = [None] * (len(inputs) if inputs is not None else 0)

    dependencies = {}
    stack = list(dict.fromkeys(start))
    seen = set(stack)
    while stack:
        node = stack.pop()
        for edge in node.next_edges:
            if edge is None:
                continue
            nxt = edge[0]
            dependencies[nxt] = dependencies.get(nxt, 0) + 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)

    ready = [(-n.seq, id(n), n) for n in seen if n not in dependencies]
    heapq.heapify(ready)
    # ids of arrays a leaf's .grad may not take over: the caller's and those already taken
    stolen = {id(_as_array(g)) for g in grads}
    global _final_callbacks
    prev_callbacks, _final_callbacks = _final_callbacks, []
    prev_mode, prev_create = _grad_enabled, _create_graph
    _grad_enabled, _create_graph = create_graph, create_graph
    try:
        while ready:
            _, _, node = heapq.heappop(ready)
            grads_in = buffers.pop(node, None)
            if captures and grads_in is not None:
                for nr, g in enumerate(grads_in):
                    for i in captures.get((node, nr), ()):
                        captured[i] = g
            if type(node) is AccumulateGrad:
                if grads_in is not None and grads_in[0] is not None and accumulate:
                    _accumulate(node, grads_in[0], stolen, create_graph)
                continue
            grads_out = None
            if grads_in is not None and (
                grads_in[0] is not None or any(g is not None for g in grads_in)
            ):
                grads_out = _call_backward(node, grads_in, create_graph)
                if not retain_graph:
                    node._release()
            for edge, g in zip(node.next_edges, grads_out or itertools.repeat(None)):
                if edge is None:
                    continue
                nxt, nr = edge
                if g is not None:
                    buf = buffers.get(nxt)
                    if buf is None:
                        buf = buffers[nxt] = [None] * nxt.n_outputs
                    buf[nr] = g if buf[nr] is None else buf[nr] + g
                left = dependencies[nxt] - 1
                dependencies[nxt] = left
                if left == 0:
                    heapq.heappush(ready, (-nxt.seq, id(nxt), nxt))
        callbacks = _final_callbacks
        while callbacks:  # a callback may queue another
            callbacks.pop(0)()
    finally:
        _grad_enabled, _create_graph = prev_mode, prev_create
        _final_callbacks = prev_callbacks
    if inputs is not None:
        return [None if g is None else _to_tensor(g) for g in captured]
    return None


def queue_callback(fn) -> None:
    """Run ``fn()`` once the backward pass now running has finished (torch's
    ``Variable._execution_engine.queue_callback``); DistributedDataParallel waits for its
    all-reduces there."""
    if _final_callbacks is None:
        raise RuntimeError("queue_callback can only be called while a backward pass runs")
    _final_callbacks.append(fn)


def _to_tensor(g):
    return g if isinstance(g, Tensor) else Tensor._make(g, False, None, 0)


def _call_backward(node, grads_in, create_graph):
    hooks = node.__dict__.get("_pre_hooks")
    if hooks:
        grads_in = list(grads_in)
        for nr, fns in hooks.items():
            if grads_in[nr] is None:
                continue
            for fn in tuple(fns.values()):
                result = fn(_to_tensor(grads_in[nr]))
                if result is not None:
                    grads_in[nr] = result if create_graph else _as_array(result)
    if node._saved is not None:
        node._check_versions()
    elif getattr(node, "_released", False):
        raise RuntimeError(
            f"Trying to backward through the graph a second time (through "
            f"{type(node).__name__}), but the saved intermediate results have already "
            "been freed. Specify retain_graph=True when calling .backward() or "
            "autograd.grad() the first time."
        )
    if node.n_outputs > 1 and any(g is None for g in grads_in):
        grads_in = list(grads_in)
        for i, (shape, dt) in enumerate(node._out_meta):
            if grads_in[i] is None:
                xp = _array_module_of(next(g for g in grads_in if g is not None))
                grads_in[i] = xp.zeros(shape, dt)
                if create_graph:
                    grads_in[i] = Tensor._make(grads_in[i], False, None, 0)
    if create_graph:
        grads_in = [_to_tensor(g) for g in grads_in]
    result = node.backward(node, *grads_in)
    if not isinstance(result, tuple):
        result = (result,)
    if len(result) < len(node.next_edges):
        result = result + (None,) * (len(node.next_edges) - len(result))
    if not create_graph:
        for g in result:  # unwrap only when some gradient is not a plain ndarray
            if g is not None and type(g) is not np.ndarray:
                return tuple(None if g is None else _as_array(g) for g in result)
    return result


def _array_module_of(g):
    from .backend import get_array_module

    return get_array_module(_as_array(g))


def _accumulate(acc, g, stolen, create_graph):
    var = acc.variable()
    if var is None:
        return
    for fn in tuple(var._grad_hooks.values()) if var._grad_hooks else ():
        result = fn(_to_tensor(g))
        if result is not None:
            g = result if create_graph else _as_array(result)
    if create_graph:
        g = _to_tensor(g)
        var.grad = g if var.grad is None else var.grad + g
    else:
        g = _as_array(g)
        if g.shape != var._array.shape:
            g = g.reshape(var._array.shape)
        if var.grad is None:
            # Take ownership of a fresh array; copy one that may alias another's memory.
            if g.base is not None or id(g) in stolen or g.dtype != var._array.dtype:
                g = g.astype(var._array.dtype, copy=True)
            stolen.add(id(g))
            var.grad = Tensor._make(g, False, None, 0)
        elif var.grad.requires_grad:
            var.grad = var.grad + Tensor._make(g, False, None, 0)
        else:
            var.grad._array += g
    for fn in tuple(var._post_acc_hooks.values()) if var._post_acc_hooks else ():
        fn(var)


# -- public functional API ----------------------------------------------------------------


def _as_list(x):
    if x is None:
        return None
    return [x] if isinstance(x, Tensor) else list(x)


def _root_grads(outputs, grad_outputs, create_graph):
    from .tensor import _initial_grad

    grad_outputs = grad_outputs or [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(
            f"grad requires one grad_output per output: got {len(grad_outputs)} for "
            f"{len(outputs)} outputs"
        )
    return [_initial_grad(o, g, create_graph) for o, g in zip(outputs, grad_outputs)]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    r"""Accumulate gradients of ``tensors`` (weighted by ``grad_tensors``) into leaves."""
    tensors = _as_list(tensors)
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            raise RuntimeError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
    grads = _root_grads(tensors, _as_list(grad_tensors), create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is None:
        run_backward(tensors, grads, retain, create_graph)
        return
    inputs = _as_list(inputs)
    for t, g in zip(inputs, run_backward(tensors, grads, retain, create_graph, inputs, False)):
        if g is not None:
            t.grad = g if t.grad is None else t.grad + g


def grad(
    outputs,
    inputs,
    grad_outputs=None,
    retain_graph=None,
    create_graph=False,
    allow_unused=None,
    materialize_grads=False,
):
    r"""Gradients of ``outputs`` w.r.t. ``inputs``, returned instead of accumulated.

    Example::

        >>> (gx,) = ember.autograd.grad((x * x).sum(), x, create_graph=True)
    """
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    for i, t in enumerate(outputs):
        if not t.requires_grad:
            raise RuntimeError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
    grads = _root_grads(outputs, _as_list(grad_outputs), create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    result = run_backward(outputs, grads, retain, create_graph, inputs, accumulate=False)
    for i, g in enumerate(result):
        if g is None:
            if materialize_grads:
                from .creation import zeros_like

                result[i] = zeros_like(inputs[i])
            elif not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {i}) appears to not have been "
                    "used in the graph. Set allow_unused=True if this is the desired behavior."
                )
    return tuple(result)
