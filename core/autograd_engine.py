"""The backward pass: ``run_backward`` walks the graph that ``core.autograd.Function``
records, and ``backward``/``grad`` are its public entry points.

The walk is iterative: a first pass counts, for every node reachable from the roots,
how many edges lead into it; a node runs once all of them have delivered, most
recently created first, so a leaf's gradient is final (and its post-accumulate hooks
fire) as early as possible. DistributedDataParallel overlaps communication on that.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

from . import autograd
from .autograd import AccumulateGrad
from .backend import xp_of

_final_callbacks = None  # a list while a backward pass runs (see queue_callback)


def _as_array(g):
    if isinstance(g, autograd.Tensor):
        return g._array
    if isinstance(g, np.generic):  # NumPy turns 0-d results into scalars
        return np.asarray(g)
    return g


def _add(a, b):
    return b if a is None else a + b


def _copy(g):
    return g.copy()


def _add_in_place(total, g):
    total += g


# How a leaf's gradient is copied (when it may alias other memory) and added into .grad:
# core.ops.cpu_rows registers its chunked kernels (this module sits below the ops).
_copy_leaf_grad = _copy
_add_leaf_grad = _add_in_place


def register_leaf_grad_kernels(copy, add_in_place) -> None:
    """Use ``copy(g)`` and ``add_in_place(total, g)`` for leaf gradients (NumPy or CuPy)."""
    global _copy_leaf_grad, _add_leaf_grad
    _copy_leaf_grad, _add_leaf_grad = copy, add_in_place


def run_backward(roots, grads, retain_graph, create_graph, inputs=None, accumulate=True):
    """Propagate ``grads`` from the ``roots`` (tensors) through the graph.

    With ``inputs`` given (``autograd.grad``), returns their gradients instead of
    accumulating into ``.grad`` when ``accumulate`` is False.
    """
    autograd.keep_numpy_warnings_quiet()
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

    # How many edges lead into each node reachable from the roots; the nodes that no edge
    # leads into (roots only) start the pass.
    dependencies = {}
    starts = dict.fromkeys(start)
    stack = list(starts)
    while stack:
        for edge in stack.pop().next_edges:
            if edge is not None:
                nxt = edge[0]
                if nxt in dependencies:
                    dependencies[nxt] += 1
                else:
                    dependencies[nxt] = 1
                    if nxt not in starts:
                        stack.append(nxt)

    ready = [(-n.seq, id(n), n) for n in starts if n not in dependencies]
    heapq.heapify(ready)
    # ids of arrays a leaf's .grad may not take over: the caller's and those already taken
    stolen = {id(_as_array(g)) for g in grads}
    global _final_callbacks
    prev_callbacks, _final_callbacks = _final_callbacks, []
    previous_modes = autograd.set_backward_modes(create_graph, create_graph)
    heappop, heappush = heapq.heappop, heapq.heappush
    try:
        while ready:
            node = heappop(ready)[2]
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
                # A node that saved nothing can run again, as in PyTorch (x + 1 twice).
                if not retain_graph and node._saved is not None:
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
                    heappush(ready, (-nxt.seq, id(nxt), nxt))
        callbacks = _final_callbacks
        while callbacks:  # a callback may queue another
            callbacks.pop(0)()
    finally:
        autograd.set_backward_modes(*previous_modes)
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
    return g if isinstance(g, autograd.Tensor) else autograd.Tensor._make(g, False, None, 0)


def _call_backward(node, grads_in, create_graph):
    hooks = node._pre_hooks
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
    elif node._released:
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
                xp = xp_of(_as_array(next(g for g in grads_in if g is not None)))
                grads_in[i] = xp.zeros(shape, dt)
                if create_graph:
                    grads_in[i] = autograd.Tensor._make(grads_in[i], False, None, 0)
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
            if g.dtype != var._array.dtype:
                g = g.astype(var._array.dtype)
            elif g.base is not None or id(g) in stolen:
                g = _copy_leaf_grad(g)
            stolen.add(id(g))
            var.grad = autograd.Tensor._make(g, False, None, 0)
        elif var.grad.requires_grad:
            var.grad = var.grad + autograd.Tensor._make(g, False, None, 0)
        else:
            _add_leaf_grad(var.grad._array, g)
    for fn in tuple(var._post_acc_hooks.values()) if var._post_acc_hooks else ():
        fn(var)


# -- public functional API ----------------------------------------------------------------


def _as_list(x):
    if x is None:
        return None
    return [x] if isinstance(x, autograd.Tensor) else list(x)


def initial_grad(t, gradient, create_graph):
    """The gradient a backward pass starts from at root ``t``: ``gradient`` checked
    against ``t``'s shape, or ones for a single-element ``t``. An array, or a Tensor
    under ``create_graph``."""
    if gradient is None:
        if t._array.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs, got shape {list(t.shape)}"
            )
        g = xp_of(t._array).ones(t._array.shape, t._array.dtype)
        return autograd.Tensor._make(g, False, None, 0) if create_graph else g
    if not isinstance(gradient, autograd.Tensor):
        gradient = autograd.Tensor._make(
            xp_of(t._array).asarray(gradient, dtype=t._array.dtype), False, None, 0
        )
    if gradient.shape != t.shape:
        raise RuntimeError(
            f"Mismatch in shape: grad_output has a shape of {list(gradient.shape)} and output "
            f"has a shape of {list(t.shape)}"
        )
    return gradient if create_graph else gradient._array


def _root_grads(outputs, grad_outputs, create_graph):
    grad_outputs = grad_outputs or [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(
            f"grad requires one grad_output per output: got {len(grad_outputs)} for "
            f"{len(outputs)} outputs"
        )
    return [initial_grad(o, g, create_graph) for o, g in zip(outputs, grad_outputs)]


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
                array = inputs[i]._array
                result[i] = autograd.Tensor._make(xp_of(array).zeros_like(array), False, None, 0)
            elif not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {i}) appears to not have been "
                    "used in the graph. Set allow_unused=True if this is the desired behavior."
                )
    return tuple(result)
