"""ONNX export of the recurrent layers: nn.LSTM/GRU/RNN become ONNX's LSTM/GRU/RNN nodes,
the graph passes onnx.checker, and onnxruntime computes what ember computes (float32, 1e-5),
also at batch sizes and sequence lengths other than the traced ones (dynamic_axes)."""

import io

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

onnx = pytest.importorskip("onnx", reason="ember.onnx tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ember.onnx tests need onnxruntime")


def _flat(value):
    if isinstance(value, tuple | list):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def _export(model, args, dynamic_axes=None, **kwargs):
    """Export with inputs in0, in1, ... (nested tuples flattened); dynamic_axes by input
    position. Returns the checked ModelProto and an onnxruntime session."""
    names = [f"in{i}" for i in range(len(list(_flat(args))))]
    axes = {names[i]: dims for i, dims in (dynamic_axes or {}).items()}
    f = io.BytesIO()
    ember.onnx.export(model, args, f, input_names=names, dynamic_axes=axes, **kwargs)
    proto = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto, ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])


def _compare(session, model, args):
    feeds = {f"in{i}": t.numpy() for i, t in enumerate(_flat(args))}
    got = session.run(None, feeds)
    with ember.no_grad():
        want = list(_flat(model(*args)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)


def _roundtrip(model, args, dynamic_axes=None, other_args=(), **kwargs):
    model.eval()
    proto, session = _export(model, args, dynamic_axes, **kwargs)
    for a in (args, *other_args):
        _compare(session, model, a)
    return proto


def _op_types(proto):
    return [node.op_type for node in proto.graph.node]


def _states(cls, count, batch, hidden):
    h = ember.randn(count, batch, hidden)
    return (h, ember.randn(count, batch, hidden)) if cls is nn.LSTM else h


LAYERS = [
    pytest.param(nn.LSTM, {}, id="lstm"),
    pytest.param(nn.GRU, {}, id="gru"),
    pytest.param(nn.RNN, {}, id="rnn_tanh"),
    pytest.param(nn.RNN, {"nonlinearity": "relu"}, id="rnn_relu"),
]
# (num_layers, bidirectional, batch_first, bias, initial states)
CONFIGS = [
    pytest.param(1, False, False, True, False, id="plain"),
    pytest.param(2, True, True, True, True, id="2layers-bi-batchfirst-h0"),
    pytest.param(2, False, False, False, True, id="2layers-nobias-h0"),
    pytest.param(3, True, False, False, False, id="3layers-bi-nobias"),
]


@pytest.mark.parametrize("cls,kw", LAYERS)
@pytest.mark.parametrize("layers,bi,batch_first,bias,init", CONFIGS)
def test_layers_dynamic_batch_and_steps(cls, kw, layers, bi, batch_first, bias, init):
    ember.manual_seed(0)
    hidden, directions = 5, 2 if bi else 1
    model = cls(3, hidden, layers, bias=bias, batch_first=batch_first, bidirectional=bi, **kw)

    def inputs(steps, batch):
        x = ember.randn(batch, steps, 3) if batch_first else ember.randn(steps, batch, 3)
        return (x, _states(cls, layers * directions, batch, hidden)) if init else (x,)

    steps_dim, batch_dim = (1, 0) if batch_first else (0, 1)
    axes = {0: {steps_dim: "steps", batch_dim: "batch"}}
    if init:  # h0 (and c0) are inputs 1 (and 2) after flattening
        axes.update({i: {1: "batch"} for i in range(1, 3 if cls is nn.LSTM else 2)})
    proto = _roundtrip(model, inputs(4, 2), axes, other_args=[inputs(7, 3), inputs(1, 1)])
    op = {nn.LSTM: "LSTM", nn.GRU: "GRU", nn.RNN: "RNN"}[cls]
    assert _op_types(proto).count(op) == layers * directions
    weights = {t.name for t in proto.graph.initializer}
    assert "weight_ih_l0" in weights and (not bi or f"weight_hh_l{layers - 1}_reverse" in weights)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_traced_with_equal_steps_and_batch(cls):
    # with steps == batch while tracing, shapes alone cannot tell the two apart
    ember.manual_seed(1)
    model = cls(3, 4, 2, bidirectional=True)
    other = [(ember.randn(6, 2, 3),), (ember.randn(2, 5, 3),)]
    _roundtrip(model, (ember.randn(3, 3, 3),), {0: {0: "steps", 1: "batch"}}, other)


def test_unbatched_input():
    ember.manual_seed(2)
    model = nn.LSTM(3, 4, 2)
    _roundtrip(model, (ember.randn(5, 3),), {0: {0: "steps"}}, [(ember.randn(2, 3),)])


def test_lstm_gate_order_matches_onnx_reference_semantics():
    # one step by hand in NumPy from PyTorch's (i, f, g, o) weights: the exported graph must
    # agree, which it can only if the gates were reordered for ONNX's (i, o, f, c)
    ember.manual_seed(3)
    model = nn.LSTM(2, 3).eval()
    x = ember.randn(1, 1, 2)
    _, session = _export(model, (x,))
    y = session.run(None, {"in0": x.numpy()})[0]
    w_ih, w_hh = model.weight_ih_l0.detach().numpy(), model.weight_hh_l0.detach().numpy()
    b = model.bias_ih_l0.detach().numpy() + model.bias_hh_l0.detach().numpy()
    i, f, g, o = np.split(x.numpy()[0, 0] @ w_ih.T + b, 4)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(y[0, 0], sigmoid(o) * np.tanh(c), rtol=1e-5, atol=1e-6)
    assert np.abs(w_hh).sum() > 0


@pytest.mark.parametrize(
    "cell",
    [
        pytest.param(lambda: nn.LSTMCell(3, 4), id="lstm"),
        pytest.param(lambda: nn.GRUCell(3, 4), id="gru"),
        pytest.param(lambda: nn.RNNCell(3, 4, nonlinearity="relu"), id="rnn_relu"),
        pytest.param(lambda: nn.RNNCell(3, 4, bias=False), id="rnn_nobias"),
    ],
)
def test_cells_dynamic_batch(cell):
    ember.manual_seed(4)
    model = cell()
    lstm = isinstance(model, nn.LSTMCell)

    def inputs(batch):
        h = ember.randn(batch, 4)
        return (ember.randn(batch, 3), (h, ember.randn(batch, 4)) if lstm else h)

    axes = {i: {0: "batch"} for i in range(3 if lstm else 2)}
    _roundtrip(model, inputs(2), axes, other_args=[inputs(5)])
    _roundtrip(model, (ember.randn(3),))  # unbatched, zero initial state


class _CellLoop(nn.Module):
    """An LSTMCell unrolled over a fixed number of steps."""

    def __init__(self):
        super().__init__()
        self.cell = nn.LSTMCell(3, 4)

    def forward(self, x, h, c):
        outs = []
        for t in range(x.shape[0]):
            h, c = self.cell(x[t], (h, c))
            outs.append(h)
        return ember.stack(outs), c


def test_lstm_cell_unrolled():
    ember.manual_seed(5)

    def inputs(batch):
        return ember.randn(4, batch, 3), ember.randn(batch, 4), ember.randn(batch, 4)

    axes = {0: {1: "batch"}, 1: {0: "batch"}, 2: {0: "batch"}}
    proto = _roundtrip(_CellLoop(), inputs(2), axes, other_args=[inputs(6)])
    assert _op_types(proto).count("LSTM") == 4


class _Packed(nn.Module):
    def __init__(self, cls, lengths, **kw):
        super().__init__()
        self.rnn = cls(3, 4, **kw)
        self.lengths = lengths

    def forward(self, x, *hx):
        lengths = self.lengths(x) if callable(self.lengths) else self.lengths
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h = self.rnn(packed, *hx)
        return pad_packed_sequence(out, total_length=x.shape[0])[0], h


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_packed_sequence_runs_with_sequence_lens(cls):
    ember.manual_seed(6)
    model = _Packed(cls, [2, 4, 1], num_layers=2, bidirectional=True)
    proto = _roundtrip(model, (ember.randn(4, 3, 3), _states(cls, 4, 3, 4)))
    assert _op_types(proto).count(cls.__name__) == 4


def test_packed_sequence_with_dynamic_steps_is_refused():
    model = _Packed(nn.GRU, lambda x: [x.shape[0], 1]).eval()  # lengths follow the steps
    with pytest.raises(ember.onnx.UnsupportedOperatorError, match="PackedSequence"):
        _export(model, (ember.randn(3, 2, 3),), {0: {0: "steps"}})


def test_proj_size_is_a_clear_error():
    model = nn.LSTM(3, 4, proj_size=2).eval()
    with pytest.raises(ember.onnx.UnsupportedOperatorError, match="proj_size") as info:
        _export(model, (ember.randn(2, 1, 3),))
    assert "(LSTM)" in str(info.value)  # names the module


def test_float64_graph_is_valid():
    # onnxruntime has no float64 LSTM kernel; the graph itself must still check
    model = nn.LSTM(3, 4, dtype=ember.float64).eval()
    f = io.BytesIO()
    ember.onnx.export(model, (ember.randn(2, 1, 3, dtype=ember.float64),), f)
    onnx.checker.check_model(onnx.load_from_string(f.getvalue()), full_check=True)


@pytest.mark.parametrize("opset", [13, 20])
def test_opsets(opset):
    ember.manual_seed(7)
    _roundtrip(nn.GRU(3, 4, 2), (ember.randn(3, 2, 3),), opset_version=opset)


# -- a word-level language model ---------------------------------------------------------------


class _WordLM(nn.Module):
    """Embedding -> dropout -> multi-layer LSTM (dropout between layers) -> dropout -> linear
    decoder -> log-softmax, the shape of PyTorch's word-level language model example."""

    def __init__(self, tokens=50, embed=16, hidden=16, layers=2, dropout=0.3, tie=False):
        super().__init__()
        self.tokens = tokens
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(tokens, embed)
        self.rnn = nn.LSTM(embed, hidden, layers, dropout=dropout)
        self.decoder = nn.Linear(hidden, tokens)
        if tie:
            self.decoder.weight = self.encoder.weight
        self.layers, self.hidden = layers, hidden

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.tokens)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, batch):
        weight = next(self.parameters())
        zeros = weight.new_zeros((self.layers, batch, self.hidden))
        return zeros, zeros.clone()


@pytest.mark.parametrize("tie", [False, True])
def test_word_language_model(tie):
    ember.manual_seed(8)
    model = _WordLM(tie=tie)
    opt = ember.optim.SGD(model.parameters(), lr=0.5)
    data = ember.randint(0, 50, (6, 4))
    for _ in range(2):  # a little training, in training mode (dropout active)
        model.train()
        opt.zero_grad()
        log_probs, _ = model(data[:-1], model.init_hidden(4))
        F.nll_loss(log_probs, data[1:].reshape(-1)).backward()
        opt.step()

    def inputs(steps, batch):
        h, c = model.init_hidden(batch)
        return ember.randint(0, 50, (steps, batch)), (h + ember.randn(*h.shape), c)

    axes = {0: {0: "steps", 1: "batch"}, 1: {1: "batch"}, 2: {1: "batch"}}
    other = [inputs(9, 2), inputs(1, 7), inputs(5, 5)]
    proto, session = _export(model, inputs(3, 3), axes)  # traced with steps == batch
    assert model.training  # export ran it in eval mode and restored the mode
    model.eval()
    for args in other:
        _compare(session, model, args)
    assert _op_types(proto).count("LSTM") == 2
    assert "Dropout" not in _op_types(proto)


def test_output_that_is_not_a_tensor_is_a_clear_error():
    class _Counted(nn.Module):
        def forward(self, x):
            return x * 2, (x, 3)

    with pytest.raises(ember.onnx.OnnxExporterError, match="model output is a int"):
        _export(_Counted(), (ember.randn(2),))


class _Shared(nn.Module):
    """One bidirectional GRU run on two inputs whose batch sizes vary independently."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4, 2, bidirectional=True)

    def forward(self, a, b):
        return self.rnn(a)[0], self.rnn(b)[0]


def test_one_layer_on_two_inputs_of_independent_batch():
    ember.manual_seed(9)
    axes = {0: {0: "steps_a", 1: "batch_a"}, 1: {0: "steps_b", 1: "batch_b"}}
    args = (ember.randn(3, 2, 3), ember.randn(3, 2, 3))  # the same sizes while tracing
    _roundtrip(_Shared(), args, axes, other_args=[(ember.randn(4, 1, 3), ember.randn(2, 5, 3))])
