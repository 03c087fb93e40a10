"""``ember.onnx.export``: trace a model once (twice with dynamic axes) and write ONNX."""

from __future__ import annotations

import enum
import importlib
import os
import warnings

import numpy as np

from ..autograd import no_grad
from ..backend import xp_of
from ..tensor import Tensor, wrap_array
from . import ops_math, ops_nn, ops_rnn, ops_scatter, ops_shape  # noqa: F401  (they register the translations)
from .graph import (
    Graph,
    OnnxExporterError,
    TracerWarning,
    UnsupportedOperatorError,
    translation,
)
from .trace import Tracer

DEFAULT_OPSET = 17
_exporting = False


class TrainingMode(enum.IntEnum):
    r"""The mode the model is exported in: ``EVAL`` (default; dropout is the identity,
    batch norm uses its running statistics), ``PRESERVE`` (as the model is set) or
    ``TRAINING``."""

    EVAL = 0
    PRESERVE = 1
    TRAINING = 2


def is_in_onnx_export() -> bool:
    """True while ``ember.onnx.export`` runs the model."""
    return _exporting


def _import_onnx():
    try:
        return importlib.import_module("onnx")
    except ImportError:
        raise ImportError(
            "ember.onnx.export needs the 'onnx' package: pip install 'ember[onnx]' "
            "(or pip install onnx)"
        ) from None


def export(
    model,
    args,
    f,
    *,
    export_params: bool = True,
    verbose: bool = False,
    training: TrainingMode = TrainingMode.EVAL,
    input_names=None,
    output_names=None,
    opset_version: int | None = None,
    do_constant_folding: bool = True,
    dynamic_axes=None,
    keep_initializers_as_inputs: bool = False,
):
    r"""Export ``model`` to ONNX by running it once on ``args`` and recording the ops.

    Args:
        model: an ``nn.Module`` (or a callable) taking ``args``.
        args: a Tensor or a tuple of model arguments.
        f: a file path or a binary file object to write the model to.
        input_names / output_names: names of the graph's inputs and outputs, in order.
        dynamic_axes: ``{name: {dim: "symbol"}}`` or ``{name: [dims]}``: dims whose size
            may change at run time (the model is traced a second time at other sizes to
            find which recorded sizes follow them).
        opset_version: the ONNX opset, 13 or newer (default 17; layer norm is one op
            from 17 on).
        do_constant_folding: compute ops whose inputs are all constants at export time.
        export_params: store parameters in the model (else they become graph inputs).
        keep_initializers_as_inputs: also list the stored parameters as graph inputs.
        training: ``TrainingMode.EVAL`` (default) runs the model in eval mode, ``PRESERVE``
            as it is set, ``TRAINING`` in training mode; its modes are restored afterwards.
        verbose: print the exported graph.

    Raises:
        UnsupportedOperatorError: an op has no ONNX translation (the message names it and
            the module that called it). OnnxExporterError: the model cannot be exported
            as asked (e.g. its ops change with a dynamic axis).

    Example::

        >>> ember.onnx.export(model, ember.randn(1, 64), "mlp.onnx",
        ...                   input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    """
    onnx = _import_onnx()
    opset = DEFAULT_OPSET if opset_version is None else int(opset_version)
    newest = onnx.defs.onnx_opset_version()
    if not 13 <= opset <= newest:
        raise ValueError(f"opset_version must be between 13 and {newest}, got {opset}")
    args = args if isinstance(args, tuple) else (args,)
    if args and isinstance(args[-1], dict):
        args, kwargs = args[:-1], args[-1]
    else:
        kwargs = {}
    tensors = list(_flat_tensors(args))
    input_names = list(input_names or [])
    if len(input_names) > len(tensors):
        raise ValueError(
            f"got {len(input_names)} input_names for {len(tensors)} tensor inputs: {input_names}"
        )
    input_names += [f"input_{i}" for i in range(len(input_names), len(tensors))]
    axes = _normalize_axes(dynamic_axes or {})
    unknown = set(axes) - set(input_names) - set(output_names or [])
    if unknown:
        raise ValueError(f"dynamic_axes names {sorted(unknown)} are neither inputs nor outputs")

    global _exporting
    modes = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if training == TrainingMode.EVAL and modes:
        model.train(False)
    elif training == TrainingMode.TRAINING and modes:
        model.train(True)
    _exporting = True
    try:
        tracer, inputs, outputs = _trace(model, args, kwargs, input_names)
        if any(axes.get(n) for n in input_names):
            alt_args = _alt_args(args, input_names, axes)
            alt, alt_inputs, alt_outputs = _trace(model, alt_args, kwargs, input_names)
            _pair(tracer, alt, inputs, alt_inputs, outputs, alt_outputs)
    finally:
        _exporting = False
        for m, mode in modes:
            m.training = mode
    options = (opset, do_constant_folding, export_params, keep_initializers_as_inputs)
    model_proto = _build(onnx, tracer, inputs, outputs, input_names, output_names, axes, options)
    if verbose:
        print(onnx.helper.printable_graph(model_proto.graph))
    if isinstance(f, str | os.PathLike):
        onnx.save(model_proto, os.fspath(f))
    else:
        f.write(model_proto.SerializeToString())
    return None


def _normalize_axes(dynamic_axes) -> dict:
    out = {}
    for name, dims in dynamic_axes.items():
        if isinstance(dims, dict):
            out[name] = {int(d): str(s) for d, s in dims.items()}
        elif isinstance(dims, list | tuple):
            out[name] = {int(d): f"{name}_dynamic_axes_{i + 1}" for i, d in enumerate(dims)}
        else:
            raise TypeError(
                f"dynamic_axes[{name!r}] must be a dict {{dim: name}} or a list of dims, "
                f"got {type(dims).__name__}"
            )
    return out


def _named_tensors(model) -> dict:
    named = {}
    if hasattr(model, "named_parameters"):
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            named.setdefault(id(t), (name, t))
            named.setdefault(id(t._array), (name, t))
    return named


def _trace(model, args, kwargs, input_names):
    tracer = Tracer(_named_tensors(model))
    inputs = [tracer.add_input(a, name) for a, name in zip(_flat_tensors(args), input_names)]
    handles = tracer.hook_modules(model) if hasattr(model, "named_modules") else []
    try:
        with no_grad(), tracer:
            out = model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    outs = list(_flat_tensors(out, strict=True))
    return tracer, inputs, [tracer.value_of(o) for o in outs]


def _flat_tensors(value, strict=False):
    """The tensors of a (nested) tuple/list in order, as PyTorch flattens inputs and
    outputs; ``strict``: anything else is an error (a model output)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for v in value:
            yield from _flat_tensors(v, strict)
    elif strict:
        raise OnnxExporterError(
            f"a model output is a {type(value).__name__}; export supports a Tensor or "
            "(nested) tuples/lists of Tensors"
        )


def _alt_args(args, input_names, axes):
    """The inputs with every dynamic axis resized (repeating rows), for the second trace."""
    names = iter(input_names)

    def resize(a):
        if isinstance(a, tuple | list):
            return type(a)(resize(v) for v in a)
        if not isinstance(a, Tensor):
            return a
        name = next(names)
        xp = xp_of(a._array)
        arr = a._array
        for d in sorted(axes.get(name, {})):
            if not -arr.ndim <= d < arr.ndim:
                raise ValueError(f"dynamic_axes[{name!r}] names dim {d} of a {arr.ndim}-d input")
            n = arr.shape[d]
            size = n + 1 if n < 3 else n - 1
            arr = xp.take(arr, xp.arange(size) % max(n, 1), axis=d)
        return wrap_array(arr)

    return resize(tuple(args))


def _pair(tracer, alt, inputs, alt_inputs, outputs, alt_outputs):
    ops, alt_ops = [n.name for n in tracer.nodes], [n.name for n in alt.nodes]
    if ops != alt_ops:
        first = next(
            (i for i, (a, b) in enumerate(zip(ops, alt_ops)) if a != b), min(len(ops), len(alt_ops))
        )
        raise OnnxExporterError(
            "the model ran different ops when a dynamic axis changed size (op "
            f"{first}: {ops[first : first + 1]} vs {alt_ops[first : first + 1]}); its control "
            "flow depends on that size, so it cannot be exported with these dynamic_axes"
        )
    for v, a in zip(inputs, alt_inputs):
        v.alt_shape = a.shape
    for n, a in zip(tracer.nodes, alt.nodes):
        n.alt = a
        for v, w in zip(n.outputs, a.outputs):
            if v is not None and w is not None:
                v.alt_shape = w.shape
    for v, w in zip(tracer.constants, alt.constants):
        if v.shape != w.shape:
            warnings.warn(
                f"ember.onnx.export: a tensor of shape {list(v.shape)} created inside forward "
                "changes with a dynamic axis but was not made by an op export records; it "
                "was recorded as a constant, so the model only works at the traced size.",
                TracerWarning,
                stacklevel=3,
            )
            v.alt_shape = w.shape
    for v, w in zip(outputs, alt_outputs):
        v.alt_shape = w.shape


def _foldable(node) -> bool:
    values = [a for a in _flat_args(node) if hasattr(a, "kind")]
    outs = [v for v in node.outputs if v is not None]
    if any(v.shape != v.alt_shape for v in outs):
        return False
    return all(v.kind == "const" for v in values)


def _flat_args(node):
    for a in node.args.values():
        if isinstance(a, list | tuple):
            yield from a
        else:
            yield a


def _translate(g, node, fold: bool):
    if _foldable(node) and (fold or not any(hasattr(a, "kind") for a in _flat_args(node))):
        for v in node.outputs:
            if v is not None:
                v.kind = "const"
                xp = xp_of(v.array)
                v.array = v.array if xp is np else xp.asnumpy(v.array)
        return
    entry = translation(node.key)
    if entry is None or g.opset < entry[1]:
        need = "" if entry is None else f" at opset {g.opset} (needs opset {entry[1]})"
        raise UnsupportedOperatorError(
            f"ember.onnx.export: the op '{node.name}' has no ONNX translation{need}; it was "
            f"called from module {node.module}"
        )
    g.node = node
    try:
        names = entry[0](g, node)
    except OnnxExporterError as err:
        raise type(err)(f"{err} (op '{node.name}' in module {node.module})") from None
    names = names if isinstance(names, list | tuple) else [names]
    for v, name in zip(node.outputs, names):
        if v is not None:
            v.name = name


def _live(nodes, output_names):
    """The nodes the outputs depend on (ops whose results only fed Python, such as a
    comparison used in an ``if``, are dropped), and the names they read."""
    needed = set(output_names)
    live = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(node.input)
    return live[::-1], needed


def _value_info(onnx, name, value, symbols):
    dims = []
    for i, s in enumerate(value.shape):
        if i in symbols:
            dims.append(symbols[i])
        elif value.is_dynamic(i):
            dims.append(f"{name}_dim_{i}")
        else:
            dims.append(int(s))
    elem = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
    return onnx.helper.make_tensor_value_info(name, elem, dims)


def _build(onnx, tracer, inputs, outputs, input_names, output_names, axes, options):
    opset, fold, params, params_as_inputs = options
    g = Graph(onnx, opset, inputs)
    for node in tracer.nodes:
        _translate(g, node, fold)
    output_names = list(output_names or [])
    output_names += [f"output_{i}" for i in range(len(output_names), len(outputs))]
    graph_outputs = []
    for v, name in zip(outputs, output_names):
        g.nodes.append(onnx.helper.make_node("Identity", [g.name(v)], [name], name=name + "_id"))
        graph_outputs.append(_value_info(onnx, name, v, axes.get(name, {})))
    graph_inputs = [_value_info(onnx, v.name, v, axes.get(v.name, {})) for v in inputs]
    nodes, used = _live(g.nodes, output_names)
    arrays, param_values = {}, {}
    for v in tracer.values.values():
        if v.kind == "param" and v.name in used and v.name not in arrays:
            xp = xp_of(v.array)
            arrays[v.name] = np.asarray(v.array if xp is np else xp.asnumpy(v.array))
            param_values[v.name] = v
    initializers = []
    if params:
        initializers = [onnx.numpy_helper.from_array(a, n) for n, a in arrays.items()]
    if params_as_inputs or not params:
        graph_inputs += [_value_info(onnx, n, param_values[n], {}) for n in arrays]
    constants = [t for t in g.initializers if t.name in used]
    graph = onnx.helper.make_graph(
        nodes, "ember", graph_inputs, graph_outputs, initializer=initializers + constants
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="ember")
    model.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    if any(node.op_type == "NonZero" for node in nodes):
        _data_dependent_dims(onnx, model)
    onnx.checker.check_model(model)
    return model


def _data_dependent_dims(onnx, model) -> None:
    """Output dims whose size follows the data (a boolean mask's count) become symbolic even
    where both traces happened to give the same size: ONNX shape inference tells them."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for out in probe.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(probe).graph.output
    except onnx.shape_inference.InferenceError:  # a refinement: the declared dims stand
        return
    for declared, found in zip(model.graph.output, inferred):
        if not found.type.tensor_type.HasField("shape"):
            continue
        dims = zip(declared.type.tensor_type.shape.dim, found.type.tensor_type.shape.dim)
        for i, (dim, seen) in enumerate(dims):
            if dim.HasField("dim_value") and not seen.HasField("dim_value"):
                dim.dim_param = f"{declared.name}_dim_{i}"
