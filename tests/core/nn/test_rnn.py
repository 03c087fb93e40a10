"""Recurrent layers (RNN, LSTM, GRU and their cells) and nn.utils.rnn packing against
torch: same initial weights, then outputs, final states and every gradient."""

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
from ember.core.gradcheck import gradcheck
from ember.nn.utils.rnn import (
    PackedSequence,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
    pad_sequence,
    unpack_sequence,
    unpad_sequence,
)

tr = torch.nn.utils.rnn
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
TOL = {"float32": {"atol": 2e-5, "rtol": 1e-4}, "float64": {"atol": 1e-10, "rtol": 1e-8}}


def make_pair(name, *args, dtype="float64", **kwargs):
    r"""A torch module and an ember one holding the same weights (numpy round trip)."""
    torch.manual_seed(0)
    t_mod = getattr(torch.nn, name)(*args, **kwargs).to(getattr(torch, dtype))
    e_mod = getattr(nn, name)(*args, **kwargs).to(getattr(ember, dtype))
    e_mod.load_state_dict({k: v.detach().numpy() for k, v in t_mod.state_dict().items()})
    return e_mod, t_mod


def flat(out):
    r"""Tensors of a nested (output, state) result, PackedSequence data included."""
    if isinstance(out, PackedSequence | tr.PackedSequence):
        return [out.data]
    if isinstance(out, tuple | list):
        return [t for o in out for t in flat(o)]
    return [out]


def compare(e_mod, t_mod, e_args, t_args, dtype, seed=0):
    r"""Outputs of e_mod(*e_args) and t_mod(*t_args) agree, and so do the gradients of
    a random projection of them w.r.t. every input that requires grad and every param."""
    tol = TOL[dtype]
    e_out, t_out = flat(e_mod(*e_args)), flat(t_mod(*t_args))
    assert len(e_out) == len(t_out)
    rng = np.random.default_rng(seed)
    vs = []
    for e, t in zip(e_out, t_out):
        assert tuple(e.shape) == tuple(t.shape)
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), **tol)
        vs.append(rng.standard_normal(tuple(t.shape)).astype(dtype))
    ember.autograd.backward(e_out, [ember.tensor(v) for v in vs])
    torch.autograd.backward(t_out, [torch.tensor(v) for v in vs])
    for e, t in zip(flat(e_args), flat(t_args)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), **tol)
    t_params = dict(t_mod.named_parameters())
    for name, p in e_mod.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), **tol, err_msg=name)


def tensors(*arrays):
    return (
        [ember.tensor(a, requires_grad=True) for a in arrays],
        [torch.tensor(a, requires_grad=True) for a in arrays],
    )


LAYER_CASES = [
    ("RNN", {}),
    ("RNN", {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}),
    ("RNN", {"bias": False, "batch_first": True}),
    ("LSTM", {}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("LSTM", {"proj_size": 3, "num_layers": 2, "bidirectional": True}),
    ("LSTM", {"proj_size": 2, "bias": False}),
    ("LSTM", {"num_layers": 2, "dropout": 0.5}),  # compared in eval mode
    ("GRU", {}),
    ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("GRU", {"bias": False, "num_layers": 2}),
]


def initial_state(name, kwargs, batch, rng, dtype, hidden=5):
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    h = rng.standard_normal((layers, batch, kwargs.get("proj_size") or hidden)).astype(dtype)
    if name != "LSTM":
        return [h]
    return [h, rng.standard_normal((layers, batch, hidden)).astype(dtype)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("name,kwargs", LAYER_CASES)
def test_layer_matches_torch(name, kwargs, with_state, dtype):
    e_mod, t_mod = make_pair(name, 4, 5, dtype=dtype, **kwargs)
    e_mod.eval(), t_mod.eval()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 4) if kwargs.get("batch_first") else (6, 3, 4)).astype(dtype)
    arrays = [x] + (initial_state(name, kwargs, 3, rng, dtype) if with_state else [])
    e_in, t_in = tensors(*arrays)
    if with_state:
        e_args = (e_in[0], tuple(e_in[1:]) if name == "LSTM" else e_in[1])
        t_args = (t_in[0], tuple(t_in[1:]) if name == "LSTM" else t_in[1])
    else:
        e_args, t_args = (e_in[0],), (t_in[0],)
    compare(e_mod, t_mod, e_args, t_args, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("LSTM", {"num_layers": 2, "bidirectional": True}),
        ("LSTM", {"proj_size": 2, "bidirectional": True}),
        ("GRU", {"num_layers": 2, "bidirectional": True}),
        ("RNN", {"bidirectional": True, "nonlinearity": "relu"}),
    ],
)
def test_packed_unsorted_lengths_match_torch(name, kwargs, dtype):
    e_mod, t_mod = make_pair(name, 4, 5, dtype=dtype, **kwargs)
    rng = np.random.default_rng(2)
    lengths = [3, 6, 1, 4]
    arrays = [rng.standard_normal((6, 4, 4)).astype(dtype)]
    arrays += initial_state(name, kwargs, 4, rng, dtype)
    e_in, t_in = tensors(*arrays)
    e_packed = pack_padded_sequence(e_in[0], lengths, enforce_sorted=False)
    t_packed = tr.pack_padded_sequence(t_in[0], lengths, enforce_sorted=False)
    np.testing.assert_array_equal(e_packed.batch_sizes.numpy(), t_packed.batch_sizes.numpy())
    np.testing.assert_array_equal(e_packed.sorted_indices.numpy(), t_packed.sorted_indices.numpy())
    e_state = tuple(e_in[1:]) if name == "LSTM" else e_in[1]
    t_state = tuple(t_in[1:]) if name == "LSTM" else t_in[1]
    e_out, e_h = e_mod(e_packed, e_state)
    t_out, t_h = t_mod(t_packed, t_state)
    assert isinstance(e_out, PackedSequence)
    e_pad, e_len = pad_packed_sequence(e_out, batch_first=True, padding_value=-1.0)
    t_pad, t_len = tr.pad_packed_sequence(t_out, batch_first=True, padding_value=-1.0)
    np.testing.assert_array_equal(e_len.numpy(), t_len.numpy())
    e_all, t_all = [e_pad, *flat(e_h)], [t_pad, *flat(t_h)]
    tol = TOL[dtype]
    vs = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in t_all]
    for e, t in zip(e_all, t_all):
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), **tol)
    ember.autograd.backward(e_all, [ember.tensor(v) for v in vs])
    torch.autograd.backward(t_all, [torch.tensor(v) for v in vs])
    for e, t in zip(e_in, t_in):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), **tol)
    t_params = dict(t_mod.named_parameters())
    for n, p in e_mod.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[n].grad.numpy(), **tol, err_msg=n)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_input(name, batch_first):
    e_mod, t_mod = make_pair(name, 4, 5, num_layers=2, batch_first=batch_first)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    states = [a[:, 0] for a in initial_state(name, {"num_layers": 2}, 1, rng, "float64")]
    e_in, t_in = tensors(x, *states)
    compare(e_mod, t_mod, (e_in[0],), (t_in[0],), "float64")
    e_mod.zero_grad(), t_mod.zero_grad()
    e_state = tuple(e_in[1:]) if name == "LSTM" else e_in[1]
    t_state = tuple(t_in[1:]) if name == "LSTM" else t_in[1]
    compare(e_mod, t_mod, (e_in[0], e_state), (t_in[0], t_state), "float64")


def test_dropout_between_layers_in_training():
    # dropout=1 zeroes the second layer's input: deterministic, so comparable with torch
    e_mod, t_mod = make_pair("GRU", 4, 5, num_layers=3, dropout=1.0)
    x = np.random.default_rng(4).standard_normal((5, 2, 4))
    e_in, t_in = tensors(x)
    compare(e_mod, t_mod, (e_in[0],), (t_in[0],), "float64")
    ember.manual_seed(0)
    e_mod, _ = make_pair("LSTM", 4, 5, num_layers=2, dropout=0.5)
    xe = ember.tensor(x)
    train_a, train_b = e_mod(xe)[0], e_mod(xe)[0]
    eval_out = e_mod.eval()(xe)[0]
    assert not np.allclose(train_a.detach().numpy(), train_b.detach().numpy())
    assert not np.allclose(train_a.detach().numpy(), eval_out.detach().numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch(name, bias, dtype):
    kwargs = {"nonlinearity": "relu"} if name == "RNNCell" and not bias else {}
    e_mod, t_mod = make_pair(name, 4, 5, bias=bias, dtype=dtype, **kwargs)
    rng = np.random.default_rng(5)
    x, h, c = (rng.standard_normal(s).astype(dtype) for s in [(3, 4), (3, 5), (3, 5)])
    e_in, t_in = tensors(x, h, c)
    compare(e_mod, t_mod, (e_in[0],), (t_in[0],), dtype)
    e_state = (e_in[1], e_in[2]) if name == "LSTMCell" else e_in[1]
    t_state = (t_in[1], t_in[2]) if name == "LSTMCell" else t_in[1]
    compare(e_mod, t_mod, (e_in[0], e_state), (t_in[0], t_state), dtype)
    e_in, t_in = tensors(x[0], h[0], c[0])  # unbatched
    e_state = (e_in[1], e_in[2]) if name == "LSTMCell" else e_in[1]
    t_state = (t_in[1], t_in[2]) if name == "LSTMCell" else t_in[1]
    compare(e_mod, t_mod, (e_in[0], e_state), (t_in[0], t_state), dtype)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}),
        ("GRU", {"bidirectional": True}),
        ("RNN", {"num_layers": 2}),
        ("RNN", {"nonlinearity": "relu"}),
    ],
)
def test_layer_gradcheck(name, kwargs):
    e_mod = getattr(nn, name)(2, 3, **kwargs).double()
    rng = np.random.default_rng(6)
    x = ember.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    states = [
        ember.tensor(a, requires_grad=True)
        for a in initial_state(name, kwargs, 2, rng, "float64", 3)
    ]
    packed_lengths = [3, 1]

    def run(x, *rest):
        state = tuple(rest[: len(states)])
        state = state if name == "LSTM" else state[0]
        out, h = e_mod(x, state)
        packed_out, _ = e_mod(pack_padded_sequence(x, packed_lengths), state)
        return (out, *flat(h), packed_out.data)

    assert gradcheck(run, (x, *states, *e_mod.parameters()), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_gradcheck(name):
    e_mod = getattr(nn, name)(3, 2).double()
    rng = np.random.default_rng(7)
    x, h, c = (
        ember.tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3), (2, 2), (2, 2)]
    )

    def run(x, h, c, *params):
        out = e_mod(x, (h, c)) if name == "LSTMCell" else e_mod(x, h)
        return tuple(out) if isinstance(out, tuple) else out

    assert gradcheck(run, (x, h, c, *e_mod.parameters()), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(
    "name,args,kwargs",
    [
        ("RNN", (3, 4, 2, "relu"), {"bias": False}),
        ("LSTM", (3, 4), {"num_layers": 3, "bidirectional": True, "proj_size": 2}),
        ("LSTM", (3, 4), {"bias": False, "proj_size": 1, "batch_first": True}),
        ("GRU", (3, 4), {"num_layers": 2, "dropout": 0.25, "bidirectional": True}),
        ("RNNCell", (3, 4), {"nonlinearity": "relu"}),
        ("LSTMCell", (3, 4), {"bias": False}),
        ("GRUCell", (3, 4), {}),
    ],
)
def test_parameters_state_dict_and_repr_match_torch(name, args, kwargs):
    e_mod, t_mod = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    e_sd, t_sd = e_mod.state_dict(), t_mod.state_dict()
    assert list(e_sd) == list(t_sd)
    assert [tuple(v.shape) for v in e_sd.values()] == [tuple(v.shape) for v in t_sd.values()]
    assert repr(e_mod) == repr(t_mod)
    hidden = args[1]
    for p in e_mod.parameters():  # PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H))
        values = p.detach().numpy()
        assert np.abs(values).max() <= hidden**-0.5 and values.std() > 0.1 * hidden**-0.5
    if not name.endswith("Cell"):
        assert e_mod._flat_weights_names == t_mod._flat_weights_names
        assert [[tuple(w.shape) for w in ws] for ws in e_mod.all_weights] == [
            [tuple(w.shape) for w in ws] for ws in t_mod.all_weights
        ]
        e_mod.flatten_parameters()


def test_module_dtype_device_factory_kwargs():
    m = nn.LSTM(3, 4, dtype=ember.float64, device="cpu")
    assert all(p.dtype == ember.float64 for p in m.parameters())
    out, (h, c) = m(ember.randn(2, 1, 3, dtype=ember.float64))
    assert out.dtype == h.dtype == c.dtype == ember.float64


def test_lstm_under_cpu_autocast_runs_in_bfloat16_like_torch():
    e_mod, t_mod = make_pair("LSTM", 4, 5, dtype="float32", num_layers=2)
    x = np.random.default_rng(12).standard_normal((3, 2, 4)).astype("float32")
    e_x = ember.tensor(x, requires_grad=True)
    with ember.autocast("cpu"):
        e_out, (e_h, _) = e_mod(e_x)
    with torch.autocast("cpu"):
        t_out, (t_h, _) = t_mod(torch.tensor(x))
    assert e_out.dtype == ember.bfloat16 and t_out.dtype == torch.bfloat16
    np.testing.assert_allclose(
        e_out.float().detach().numpy(), t_out.float().detach().numpy(), atol=0.05
    )
    e_out.float().sum().backward()
    assert e_mod.weight_hh_l1.grad.dtype == ember.float32 and e_x.grad.dtype == ember.float32


def test_lstm_training_tracks_torch():
    class Regressor:
        def __init__(self, lib):
            lib.manual_seed(0)
            self.lstm = lib.nn.LSTM(3, 8, num_layers=2, batch_first=True)
            self.head = lib.nn.Linear(8, 1)

        def parameters(self):
            return [*self.lstm.parameters(), *self.head.parameters()]

        def __call__(self, x):
            out, _ = self.lstm(x)
            return self.head(out[:, -1])

    e_model, t_model = Regressor(ember), Regressor(torch)
    for e_part, t_part in ((e_model.lstm, t_model.lstm), (e_model.head, t_model.head)):
        e_part.load_state_dict({k: v.detach().numpy() for k, v in t_part.state_dict().items()})
    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 10, 3)).astype("float32")
    y = np.sin(x.sum(axis=(1, 2)))[:, None].astype("float32")
    e_opt = ember.optim.SGD(e_model.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9)
    e_losses, t_losses = [], []
    for _ in range(20):
        for model, opt, lib, losses in (
            (e_model, e_opt, ember, e_losses),
            (t_model, t_opt, torch, t_losses),
        ):
            opt.zero_grad()
            loss = lib.nn.functional.mse_loss(model(lib.tensor(x)), lib.tensor(y))
            loss.backward()
            opt.step()
            losses.append(loss.item())
    np.testing.assert_allclose(e_losses, t_losses, rtol=1e-4)
    assert t_losses[-1] < t_losses[0]


def test_double_backward_is_a_clear_error():
    m = nn.LSTM(2, 3).double()
    x = ember.randn(4, 1, 2, dtype=ember.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="double backward.*not implemented for LSTMSequence"):
        ember.autograd.grad(m(x)[0].sum(), x, create_graph=True)


def test_bad_arguments_raise_like_torch():
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.2)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.GRU(3, 0)
    m = nn.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size"):
        m(ember.randn(5, 2, 2))
    with pytest.raises(
        RuntimeError, match=r"Expected hidden\[1\] size \(1, 2, 4\), got \[1, 3, 4\]"
    ):
        m(ember.randn(5, 2, 3), (ember.zeros(1, 2, 4), ember.zeros(1, 3, 4)))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx and cx should also be 3-D"):
        m(ember.randn(5, 2, 3), (ember.zeros(2, 4), ember.zeros(2, 4)))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D"):
        m(ember.randn(5, 2, 3, 1))
    with pytest.raises(ValueError, match=r"RNN input dtype \(ember.float64\) does not match"):
        m(ember.randn(5, 2, 3, dtype=ember.float64))
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        m(ember.randn(0, 2, 3))
    cell = nn.GRUCell(3, 4)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 2 expected 3"):
        cell(ember.randn(2, 2))
    with pytest.raises(RuntimeError, match="Input batch size 2 doesn't match hidden0 batch size 3"):
        cell(ember.randn(2, 3), ember.randn(3, 4))
    with pytest.raises(RuntimeError, match="hidden1 has inconsistent hidden_size: got 5"):
        nn.LSTMCell(3, 4)(ember.randn(2, 3), (ember.randn(2, 4), ember.randn(2, 5)))


# -- nn.utils.rnn -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_and_pad_match_torch(batch_first, enforce_sorted):
    lengths = [5, 3, 3, 1] if enforce_sorted else [2, 5, 1, 4]
    x = np.random.default_rng(9).standard_normal((4, 5, 2) if batch_first else (5, 4, 2))
    (e_x,), (t_x,) = tensors(x)
    e = pack_padded_sequence(e_x, ember.tensor(lengths), batch_first, enforce_sorted)
    t = tr.pack_padded_sequence(t_x, torch.tensor(lengths), batch_first, enforce_sorted)
    for e_f, t_f in zip(e, t):
        if t_f is None:
            assert e_f is None
        else:
            np.testing.assert_allclose(e_f.detach().numpy(), t_f.detach().numpy())
    assert e.batch_sizes.dtype == ember.int64 and e.batch_sizes.device.type == "cpu"
    e_pad, e_len = pad_packed_sequence(e, batch_first, padding_value=7.0, total_length=6)
    t_pad, t_len = tr.pad_packed_sequence(t, batch_first, padding_value=7.0, total_length=6)
    np.testing.assert_allclose(e_pad.detach().numpy(), t_pad.detach().numpy())
    np.testing.assert_array_equal(e_len.numpy(), t_len.numpy())
    v = np.random.default_rng(10).standard_normal(tuple(t_pad.shape))
    e_pad.backward(ember.tensor(v))
    t_pad.backward(torch.tensor(v))
    np.testing.assert_allclose(e_x.grad.numpy(), t_x.grad.numpy())


def test_pack_sequence_unpack_unpad_and_pad_sequence():
    rng = np.random.default_rng(11)
    seqs = [rng.standard_normal((n, 3)) for n in (2, 4, 1)]
    e_seqs, t_seqs = tensors(*seqs)
    e = pack_sequence(e_seqs, enforce_sorted=False)
    t = tr.pack_sequence(t_seqs, enforce_sorted=False)
    np.testing.assert_allclose(e.data.detach().numpy(), t.data.detach().numpy())
    for a, b in zip(unpack_sequence(e), tr.unpack_sequence(t)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy())
    lengths = [len(s) for s in seqs]
    e_pad = pad_sequence(e_seqs, padding_side="left")
    t_pad = tr.pad_sequence(t_seqs, padding_side="left")
    np.testing.assert_allclose(e_pad.detach().numpy(), t_pad.detach().numpy())
    padded = pad_sequence(e_seqs, batch_first=True)
    for a, s in zip(unpad_sequence(padded, ember.tensor(lengths), batch_first=True), seqs):
        np.testing.assert_allclose(a.detach().numpy(), s)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        pack_sequence(e_seqs)
    as_tuple = PackedSequence((e.data, e.batch_sizes), sorted_indices=e.sorted_indices)
    np.testing.assert_array_equal(as_tuple.unsorted_indices.numpy(), t.unsorted_indices.numpy())
    assert e.double().data.dtype == ember.float64 and e.to("cpu") is e


def test_packing_errors():
    x = ember.randn(3, 2, 1)
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        pack_padded_sequence(x, [3, 0])
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to batch_size"):
        pack_padded_sequence(x, [3, 2, 1])
    with pytest.raises(RuntimeError, match="exceeds the input's 3 time steps"):
        pack_padded_sequence(x, [4, 1])
    with pytest.raises(ValueError, match="Expected total_length to be at least"):
        pad_packed_sequence(pack_padded_sequence(x, [3, 2]), total_length=2)


def test_torch_style_import_paths():
    import ember.nn.utils.rnn as rnn_utils

    assert rnn_utils.pack_padded_sequence is pack_padded_sequence
    assert ember.nn.utils.rnn.PackedSequence is PackedSequence
    assert ember.nn.LSTM is nn.LSTM and ember.nn.GRUCell is nn.GRUCell
