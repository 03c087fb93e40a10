"""ONNX translations of the recurrent ops: each fused layer-direction of ops/recurrent.py
(a layer of ``nn.LSTM``/``nn.GRU``/``nn.RNN``, or one step of a cell) becomes one ONNX
``LSTM``, ``GRU`` or ``RNN`` node.

ember runs a layer on the sequence flattened to (steps * batch, features); ONNX's ops take
(steps, batch, features). The flat input is normally a reshape of a 3-D tensor and the
layer's output is reshaped back to 3-D by the module, so the reshape translation is wrapped
here: such reshapes hand the 3-D form over through ``g.memo`` and take the batch size at run
time from the sequence the module flattened, instead of guessing it from the traced sizes
(which cannot tell steps from batch when the two are equal).

PyTorch orders the gates (i, f, g, o) for LSTM and (r, z, n) for GRU; ONNX wants (i, o, f, c)
and (z, r, h). The weights keep their module names as initializers and are reordered in the
graph by a Gather, which onnxruntime folds when it loads the model.
"""

from __future__ import annotations

import numpy as np

from ..ops import movement
from ..ops.recurrent import GRUSequence, LSTMSequence, RNNSequence
from . import ops_shape  # noqa: F401  (the reshape translations wrapped below)
from .graph import OnnxExporterError, UnsupportedOperatorError, register_op, translation

_FLAT = "rnn.flat"  # memo[(_FLAT, flat name)] = (3-D name, 3-D shape, its alt shape)
_BATCH = "rnn.batch"  # memo[(_BATCH, module)] = (batch size at run time, batch, alt batch)

# ONNX's k-th gate is PyTorch's chunk _GATES[op][k]
_GATES = {LSTMSequence: (0, 3, 1, 2), GRUSequence: (1, 0, 2), RNNSequence: (0,)}


def _gate_rows(g, op, hidden):
    order = _GATES[op]
    if order == tuple(range(len(order))):
        return None
    rows = np.concatenate([np.arange(k * hidden, (k + 1) * hidden) for k in order])
    return g.ints(rows)


def _in_onnx_order(g, name, rows):
    """A (gates * hidden, ...) weight or bias with ONNX's gate order and a leading
    num_directions dim of 1."""
    if rows is not None:
        name = g.op("Gather", name, rows, axis=0)
    return g.op("Unsqueeze", name, g.ints([0]))


def _weights(g, n, rows):
    """ONNX's W, R and B (None without bias) inputs of a layer-direction."""
    w_ih, w_hh, b_ih, b_hh = n["w_ih"], n["w_hh"], n["b_ih"], n["b_hh"]
    w = _in_onnx_order(g, g.name(w_ih), rows)
    r = _in_onnx_order(g, g.name(w_hh), rows)
    if b_ih is None and b_hh is None:
        return w, r, None
    gates = w_ih.shape[0]
    biases = []
    for b in (b_ih, b_hh):
        name = g.const(np.zeros(gates, w_ih.dtype)) if b is None else g.name(b)
        biases.append(g.op("Gather", name, rows, axis=0) if rows is not None else name)
    return w, r, g.op("Unsqueeze", g.op("Concat", *biases, axis=0), g.ints([0]))


def _batch_sizes(n):
    """(steps, batch) in the traced and in the second (dynamic axes) run, and the traced
    ``batch_sizes`` when they differ between steps (a packed batch of sequences of different
    lengths), else None."""
    sizes = tuple(int(s) for s in n["batch_sizes"])
    alt = tuple(int(s) for s in n.alt_arg("batch_sizes"))
    packed = len(set(sizes)) > 1 or len(set(alt)) > 1
    if packed and sizes != alt:
        raise UnsupportedOperatorError(
            "a recurrent layer over a PackedSequence whose lengths change with a dynamic axis "
            f"(batch_sizes {list(sizes)} vs {list(alt)}): the packing is fixed when tracing, "
            "so export it without dynamic axes on the sequence, or pass a padded tensor"
        )
    return (len(sizes), sizes[0]), (len(alt), alt[0]), (sizes if packed else None)


def _packing(batch_sizes):
    """For a packed sequence: the packed row (or the row past the end, a zero row) of each
    (step, sequence) of the padded (steps * batch) layout, the padded row of each packed
    row, and each sequence's length."""
    steps, batch = len(batch_sizes), batch_sizes[0]
    total = sum(batch_sizes)
    to_padded = np.full((steps, batch), total, np.int64)
    to_packed = []
    start = 0
    for t, size in enumerate(batch_sizes):
        to_padded[t, :size] = start + np.arange(size)
        to_packed.append(t * batch + np.arange(size))
        start += size
    lengths = (np.asarray(batch_sizes)[:, None] > np.arange(batch)[None, :]).sum(axis=0)
    return to_padded.reshape(-1), np.concatenate(to_packed), lengths.astype(np.int32)


def _runtime_batch(g, n, batch, alt_batch):
    """A 1-element int64 tensor holding the batch size at run time."""
    if batch == alt_batch:
        return g.ints([batch])
    known = g.memo.get((_BATCH, n.module))
    if known is not None and known[1:] == (batch, alt_batch):
        return known[0]
    for key in ("h0", "c0"):
        state = n.args.get(key)
        if state is not None and (state.shape[0], state.alt_shape[0]) == (batch, alt_batch):
            return g.dim(state, 0)
    found = g.find_dim(batch, alt_batch, [])
    if found is None:
        g.warn_baked([batch])
        return g.ints([batch])
    return g.dim(*found)


def _steps_input(g, n, sizes, alt_sizes):
    """The layer's input as (steps, batch, features); notes its run-time batch size for the
    module's later layers and for the reshape of its output."""
    x = n["x"]
    name, feats = g.name(x), x.shape[1]
    shape, alt_shape = (*sizes, feats), (*alt_sizes, feats)
    known = g.memo.get((_FLAT, name))
    if known is not None and known[1:] == (shape, alt_shape):
        x3 = known[0]
    elif sizes[0] == alt_sizes[0] == 1:  # one step (a cell): (batch, features)
        x3 = g.op("Unsqueeze", name, g.ints([0]))
    else:
        batch = _runtime_batch(g, n, sizes[1], alt_sizes[1])
        x3 = g.op("Reshape", name, g.op("Concat", g.ints([-1]), batch, g.ints([feats]), axis=0))
    if sizes[1] == alt_sizes[1]:
        batch = g.ints([sizes[1]])
    else:
        batch = g.op("Gather", g.op("Shape", x3), g.ints([1]), axis=0)
    g.memo[(_BATCH, n.module)] = (batch, sizes[1], alt_sizes[1])  # this call's batch
    return x3


def _state(g, value):
    return None if value is None else g.op("Unsqueeze", g.name(value), g.ints([0]))


def _recurrent(g, n, op_type, hidden, extra_states=(), **attrs):
    """Emit one ONNX recurrent node; returns the flat output and the final states."""
    sizes, alt_sizes, packed = _batch_sizes(n)
    lengths = None
    if packed is None:
        x3 = _steps_input(g, n, sizes, alt_sizes)
    else:  # pad with zero rows, run with sequence_lens, pack the output again
        to_padded, to_packed, lengths = _packing(packed)
        x = n["x"]
        zero = g.const(np.zeros((1, x.shape[1]), x.dtype))
        rows = g.op("Gather", g.op("Concat", g.name(x), zero, axis=0), g.ints(to_padded), axis=0)
        x3 = g.op("Reshape", rows, g.ints([*sizes, x.shape[1]]))
        lengths = g.const(lengths, "lengths")
    w, r, b = _weights(g, n, _gate_rows(g, n.key, hidden))
    states = [_state(g, n["h0"]), *(_state(g, s) for s in extra_states)]
    direction = "reverse" if n["reverse"] else "forward"
    outs = g.op(
        op_type,
        x3,
        w,
        r,
        b,
        lengths,  # None: every sequence runs all steps
        *states,
        outputs=2 + len(extra_states),
        hidden_size=hidden,
        direction=direction,
        **attrs,
    )
    y = g.op("Squeeze", outs[0], g.ints([1]))  # (steps, 1, batch, hidden) -> 3-D
    flat = g.op("Reshape", y, g.ints([-1, hidden]))
    if packed is None:
        g.memo[(_FLAT, flat)] = (y, (*sizes, hidden), (*alt_sizes, hidden))
    else:
        flat = g.op("Gather", flat, g.ints(to_packed), axis=0)
    finals = [g.op("Squeeze", s, g.ints([0])) for s in outs[1:]]
    return [flat, *finals]


@register_op(LSTMSequence)
def _lstm(g, n):
    if n["w_hr"] is not None:
        raise UnsupportedOperatorError(
            "LSTM with proj_size > 0 (a projection weight_hr) has no ONNX counterpart: "
            "ONNX's LSTM has no output projection"
        )
    hidden = n["w_hh"].shape[1]
    return _recurrent(g, n, "LSTM", hidden, extra_states=(n["c0"],))


@register_op(GRUSequence)
def _gru(g, n):
    # PyTorch applies the reset gate after the hidden GEMM: ONNX's linear_before_reset=1
    return _recurrent(g, n, "GRU", n["w_hh"].shape[1], linear_before_reset=1)


@register_op(RNNSequence)
def _rnn(g, n):
    activation = {"tanh": "Tanh", "relu": "Relu"}.get(n["nonlinearity"])
    if activation is None:
        raise OnnxExporterError(f"RNN nonlinearity {n['nonlinearity']!r}")
    return _recurrent(g, n, "RNN", n["w_hh"].shape[1], activations=[activation])


# -- the reshapes around a recurrent layer -----------------------------------------------------


def _wrap_reshape(key):
    plain = translation(key)[0]

    def reshape(g, n):
        x, out = n["x"], n.outputs[0]
        name = g.name(x)
        if len(x.shape) == 2 and len(out.shape) == 3:  # (steps * batch, f) -> (steps, batch, f)
            known = g.memo.get((_FLAT, name))
            if known is not None and known[1:] == (out.shape, out.alt_shape):
                return known[0]
            batch = g.memo.get((_BATCH, n.module))
            if batch is not None and batch[1:] == (out.shape[1], out.alt_shape[1]):
                sizes = g.op("Concat", g.ints([-1]), batch[0], g.ints([out.shape[2]]), axis=0)
                return g.op("Reshape", name, sizes)
        result = plain(g, n)
        if len(x.shape) == 3 and len(out.shape) == 2:  # (steps, batch, f) -> (steps * batch, f)
            merged = (x.shape[0] * x.shape[1], x.shape[2])
            alt_merged = (x.alt_shape[0] * x.alt_shape[1], x.alt_shape[2])
            if (out.shape, out.alt_shape) == (merged, alt_merged):
                g.memo[(_FLAT, result)] = (name, x.shape, x.alt_shape)
        return result

    reshape.__name__ = f"_{key.__name__.lower()}_with_sequences"
    return reshape


for _key in (movement.Reshape, movement.View):
    register_op(_key, min_opset=translation(_key)[1])(_wrap_reshape(_key))
