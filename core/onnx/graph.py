"""The ONNX graph under construction, and the registry of op translations.

A translation is ``fn(g, node)``: it reads the node's arguments (``g.name(value)`` gives the
ONNX name of a traced Value and emits constants on first use), emits ONNX nodes with
``g.op`` and returns the ONNX names of the node's outputs (one name or a list).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

_TRANSLATIONS = {}


class OnnxExporterError(RuntimeError):
    """The model cannot be exported as asked."""


class UnsupportedOperatorError(OnnxExporterError):
    """An op the model ran has no ONNX translation (at this opset)."""


class TracerWarning(UserWarning):
    """The traced graph may be wrong for inputs other than the traced ones."""


def register_op(key, min_opset: int = 1):
    r"""Register ``fn(g, node)`` as the ONNX translation of an op.

    Args:
        key: the op's ``Function`` subclass, or the name of a ``@traceable`` function.
        min_opset: the lowest opset the translation supports.

    Example::

        >>> @ember.onnx.register_op(MyOp)
        ... def _my_op(g, node):
        ...     return g.op("Relu", g.name(node["x"]))
    """

    def register(fn):
        _TRANSLATIONS[key] = (fn, min_opset)
        return fn

    return register


def translation(key):
    return _TRANSLATIONS.get(key)


_ONNX_INT64_MAX = np.iinfo(np.int64).max


class Graph:
    """Accumulates ONNX nodes and initializers; hands out unique names."""

    def __init__(self, onnx, opset: int, inputs):
        self.onnx = onnx
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self.graph_inputs = inputs  # Values of the model's inputs, for dynamic dims
        self._ids = itertools.count()
        self._shapes = {}  # ONNX name of a value -> name of its Shape
        self.node = None  # the traced node being translated, for messages
        self.memo = {}  # what translations tell later ones (e.g. 3-D forms of flat sequences)

    def fresh(self, hint: str) -> str:
        return f"/{hint}_{next(self._ids)}"

    def op(self, op_type: str, *inputs, outputs: int = 1, **attrs):
        """Emit one ONNX node; returns its output name (or a list when ``outputs > 1``)."""
        names = [self.fresh(op_type) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        inputs = ["" if i is None else i for i in inputs]
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, names, name=names[0] + "_node", **attrs)
        )
        return names[0] if outputs == 1 else names

    def const(self, array, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, np.int64), "ints")

    def scalar(self, value, dtype) -> str:
        return self.const(np.asarray(value, dtype=dtype), "scalar")

    def name(self, value) -> str:
        """ONNX name of a traced Value; a constant becomes an initializer on first use."""
        if value.name is None:
            if value.kind != "const":
                raise OnnxExporterError(f"internal: {value} used before it was produced")
            value.name = self.const(value.array)
        return value.name

    def arg(self, value, like) -> str:
        """A Value's name, or a Python scalar as a constant of ``like``'s dtype."""
        if hasattr(value, "kind"):
            return self.name(value)
        return self.scalar(value, like.dtype)

    # -- shapes with dynamic dims ---------------------------------------------------------
    def shape_of(self, value) -> str:
        name = self.name(value)
        if name not in self._shapes:
            self._shapes[name] = self.op("Shape", name)
        return self._shapes[name]

    def dim(self, value, index: int) -> str:
        """A 1-element int64 tensor holding ``value.shape[index]`` at run time."""
        return self.op("Gather", self.shape_of(value), self.ints([index]), axis=0)

    def find_dim(self, size, alt_size, candidates):
        """(Value, dim) whose size is ``size`` in the trace and ``alt_size`` in the second."""
        for v in candidates:
            if not hasattr(v, "kind"):
                continue
            for i, (s, a) in enumerate(zip(v.shape, v.alt_shape)):
                if s == size and a == alt_size and s != a:
                    return v, i
        return None

    def sizes(self, sizes, alt_sizes, candidates, reshape_of=None) -> str:
        """An int64 1-D tensor of ``sizes`` where entries that changed in the second trace
        are computed at run time from the candidates' shapes (or, for a reshape of
        ``reshape_of``, written as 0 "copy this dim" / -1 "infer")."""
        sizes, alt_sizes = list(sizes), list(alt_sizes)
        if sizes == alt_sizes:
            return self.ints(sizes)
        entries, unresolved = [], []
        for k, (s, a) in enumerate(zip(sizes, alt_sizes)):
            if s == a:
                entries.append(s)
            elif (
                reshape_of is not None
                and k < len(reshape_of.shape)
                and (reshape_of.shape[k] == s and reshape_of.alt_shape[k] == a)
            ):
                entries.append(0)
            else:
                found = self.find_dim(s, a, [*candidates, *self.graph_inputs])
                entries.append(s if found is None else found)
                if found is None:
                    unresolved.append(k)
        if reshape_of is not None and len(unresolved) == 1 and -1 not in sizes:
            entries[unresolved.pop()] = -1
        if unresolved:
            self.warn_baked([sizes[k] for k in unresolved])
        pieces, run = [], []
        for e in entries:
            if isinstance(e, tuple):
                if run:
                    pieces.append(self.ints(run))
                    run = []
                pieces.append(self.dim(*e))
            else:
                run.append(e)
        if run:
            pieces.append(self.ints(run))
        return pieces[0] if len(pieces) == 1 else self.op("Concat", *pieces, axis=0)

    def warn_baked(self, what) -> None:
        node = self.node
        warnings.warn(
            f"ember.onnx.export: {node.name} in {node.module} uses a size that changes with a "
            f"dynamic axis ({what}) in a way export cannot express; it was recorded as a "
            "constant, so the exported model only works at the traced size.",
            TracerWarning,
            stacklevel=4,
        )
