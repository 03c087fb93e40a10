"""Transformer layers against torch.nn: state_dict keys and shapes, torch's weights
loaded into ember give the same outputs and the same gradients for every parameter and
input (float32 and float64), masks of every kind, and a short training run."""

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
import ember.nn.functional as F

D, H, FF = 8, 2, 16
# torch warns that its nested-tensor fast path is off (it is irrelevant here)
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


def _load_from_torch(e_mod, t_mod):
    missing = e_mod.load_state_dict(
        {k: ember.tensor(v.detach().numpy()) for k, v in t_mod.state_dict().items()}
    )
    assert not missing.missing_keys and not missing.unexpected_keys


def _pair(e_cls, t_cls, dtype, *args, **kw):
    torch.manual_seed(0)
    t_mod = t_cls(*args, **kw).to(getattr(torch, dtype)).eval()
    e_mod = e_cls(*args, **kw).to(getattr(ember, dtype)).eval()
    _load_from_torch(e_mod, t_mod)
    return e_mod, t_mod


def _tol(dtype):
    return {"atol": 1e-5, "rtol": 1e-4} if dtype == "float32" else {"atol": 1e-10, "rtol": 1e-8}


def _compare(e_mod, t_mod, arrays, dtype, **kwargs):
    """Same inputs (masks in ``kwargs`` given as NumPy arrays) through both modules:
    outputs, input gradients and every parameter's gradient must agree."""
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    e_kw = {k: ember.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    t_kw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    e_out, t_out = e_mod(*e_in, **e_kw), t_mod(*t_in, **t_kw)
    tol = _tol(dtype)
    np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(), **tol)
    v = np.random.default_rng(1).standard_normal(tuple(t_out.shape)).astype(dtype)
    e_out.backward(ember.tensor(v))
    t_out.backward(torch.tensor(v))
    for i, (e, t) in enumerate(zip(e_in, t_in)):
        np.testing.assert_allclose(
            e.grad.numpy(), t.grad.numpy(), err_msg=f"grad of input {i}", **tol
        )
    t_params = dict(t_mod.named_parameters())
    e_params = dict(e_mod.named_parameters())
    assert e_params.keys() == t_params.keys()
    for name, p in t_params.items():
        np.testing.assert_allclose(
            e_params[name].grad.numpy(), p.grad.numpy(), err_msg=f"grad of {name}", **tol
        )


def _inputs(*shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _shape(length, batch_first):
    return (3, length, D) if batch_first else (length, 3, D)


def _gelu_tanh_e(x):
    return F.gelu(x, approximate="tanh")


def _gelu_tanh_t(x):
    return torch.nn.functional.gelu(x, approximate="tanh")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "callable"])
def test_encoder_layer_matches_torch(dtype, norm_first, batch_first, activation):
    kw = {"dim_feedforward": FF, "norm_first": norm_first, "batch_first": batch_first}
    e_act, t_act = (_gelu_tanh_e, _gelu_tanh_t) if activation == "callable" else (activation,) * 2
    torch.manual_seed(0)
    t_mod = torch.nn.TransformerEncoderLayer(D, H, activation=t_act, **kw).to(getattr(torch, dtype))
    e_mod = nn.TransformerEncoderLayer(D, H, activation=e_act, **kw).to(getattr(ember, dtype))
    t_mod.eval(), e_mod.eval()
    _load_from_torch(e_mod, t_mod)
    (src,) = _inputs(_shape(5, batch_first), dtype=dtype)
    padding = np.zeros((3, 5), bool)
    padding[1, 3:] = True
    _compare(e_mod, t_mod, [src], dtype, src_key_padding_mask=padding)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer_matches_torch(dtype, norm_first, batch_first):
    e_mod, t_mod = _pair(
        nn.TransformerDecoderLayer,
        torch.nn.TransformerDecoderLayer,
        dtype,
        D,
        H,
        FF,
        dropout=0.0,
        activation="gelu",
        norm_first=norm_first,
        batch_first=batch_first,
    )
    e_mod.train(), t_mod.train()  # dropout=0: training mode is deterministic too
    tgt, memory = _inputs(_shape(4, batch_first), _shape(6, batch_first), dtype=dtype)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(4).numpy().astype(dtype)
    memory_padding = np.zeros((3, 6), bool)
    memory_padding[2, 4:] = True
    _compare(
        e_mod,
        t_mod,
        [tgt, memory],
        dtype,
        tgt_mask=causal,
        tgt_is_causal=True,
        memory_key_padding_mask=memory_padding,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_encoder_stack_with_masks_matches_torch(dtype):
    layer_args = (D, H, FF)
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(*layer_args, dropout=0.0)
    t_mod = torch.nn.TransformerEncoder(
        t_layer, 2, norm=torch.nn.LayerNorm(D), enable_nested_tensor=False
    )
    e_layer = nn.TransformerEncoderLayer(*layer_args, dropout=0.0)
    e_mod = nn.TransformerEncoder(e_layer, 2, norm=nn.LayerNorm(D), enable_nested_tensor=False)
    t_mod.to(getattr(torch, dtype)), e_mod.to(getattr(ember, dtype))
    _load_from_torch(e_mod, t_mod)
    assert [k for k in e_mod.state_dict()] == [k for k in t_mod.state_dict()]
    (src,) = _inputs((5, 3, D), dtype=dtype)
    bool_mask = np.triu(np.ones((5, 5), bool), 1)  # causal, as a bool mask
    _compare(e_mod, t_mod, [src], dtype, mask=bool_mask)
    float_mask = np.random.default_rng(3).standard_normal((3 * H, 5, 5)).astype(dtype)
    float_padding = np.zeros((3, 5), dtype)
    float_padding[0, 4] = -np.inf
    e_mod.zero_grad(), t_mod.zero_grad()
    _compare(e_mod, t_mod, [src], dtype, mask=float_mask, src_key_padding_mask=float_padding)
    # the causal hint with the mask it stands for, detected or given
    causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=getattr(ember, dtype)).numpy()
    for hint in (None, True):
        e_mod.zero_grad(), t_mod.zero_grad()
        _compare(e_mod, t_mod, [src], dtype, mask=causal, is_causal=hint)


def test_generate_square_subsequent_mask():
    e = nn.Transformer.generate_square_subsequent_mask(4)
    t = torch.nn.Transformer.generate_square_subsequent_mask(4)
    assert e.dtype == ember.float32
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    e64 = nn.Transformer.generate_square_subsequent_mask(3, device="cpu", dtype=ember.float64)
    assert e64.dtype == ember.float64 and tuple(e64.shape) == (3, 3)


def _small_transformer(lib, **kw):
    return lib.nn.Transformer(
        d_model=D,
        nhead=H,
        num_encoder_layers=2,
        num_decoder_layers=1,
        dim_feedforward=FF,
        dropout=0.0,
        **kw,
    )


def test_transformer_state_dict_and_init_match_torch():
    torch.manual_seed(0)
    t_mod = _small_transformer(torch)
    e_mod = _small_transformer(ember)
    t_sd, e_sd = t_mod.state_dict(), e_mod.state_dict()
    assert list(e_sd.keys()) == list(t_sd.keys())
    for k, v in t_sd.items():
        assert tuple(e_sd[k].shape) == tuple(v.shape), k
    # xavier_uniform_ on every matrix (including the attention output projections)
    for name, p in e_mod.named_parameters():
        if p.ndim > 1:
            bound = np.sqrt(6.0 / (p.shape[0] + p.shape[1]))
            assert np.abs(p.detach().numpy()).max() <= bound, name
            assert np.abs(p.detach().numpy()).max() > 0.5 * bound, name
    assert e_mod.encoder.norm is not None and e_mod.decoder.norm is not None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_matches_torch(dtype, batch_first):
    torch.manual_seed(0)
    t_mod = _small_transformer(torch, batch_first=batch_first, norm_first=batch_first)
    e_mod = _small_transformer(ember, batch_first=batch_first, norm_first=batch_first)
    t_mod.to(getattr(torch, dtype)), e_mod.to(getattr(ember, dtype))
    _load_from_torch(e_mod, t_mod)
    src, tgt = _inputs(_shape(6, batch_first), _shape(4, batch_first), dtype=dtype)
    src_padding = np.zeros((3, 6), bool)
    src_padding[1, 5:] = True
    tgt_mask = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=getattr(torch, dtype))
    _compare(
        e_mod,
        t_mod,
        [src, tgt],
        dtype,
        tgt_mask=tgt_mask.numpy(),
        src_key_padding_mask=src_padding,
        memory_key_padding_mask=src_padding,
    )


def test_unbatched_transformer_matches_torch():
    e_mod, t_mod = _pair(
        lambda **kw: _small_transformer(ember, **kw),
        lambda **kw: _small_transformer(torch, **kw),
        "float64",
    )
    src, tgt = _inputs((6, D), (4, D), dtype="float64")
    padding = np.array([False] * 5 + [True])  # (S,) for an unbatched source
    _compare(
        e_mod,
        t_mod,
        [src, tgt],
        "float64",
        tgt_mask=np.triu(np.ones((4, 4), bool), 1),
        src_key_padding_mask=padding,
        memory_key_padding_mask=padding,
    )


def _subclass(lib):
    """A language model as public scripts write it: subclass nn.Transformer, keep only
    its encoder, override forward."""

    class TransformerModel(lib.nn.Transformer):
        def __init__(self, ntoken, ninp, nhead, nhid, nlayers):
            super().__init__(
                d_model=ninp,
                nhead=nhead,
                dim_feedforward=nhid,
                num_encoder_layers=nlayers,
                dropout=0.0,
            )
            self.src_mask = None
            self.input_emb = lib.nn.Embedding(ntoken, ninp)
            self.ninp = ninp
            self.decoder = lib.nn.Linear(ninp, ntoken)

        def forward(self, src, has_mask=True):
            mask = self.generate_square_subsequent_mask(len(src)) if has_mask else None
            self.src_mask = mask
            src = self.input_emb(src) * self.ninp**0.5
            output = self.encoder(src, mask=self.src_mask)
            return lib.nn.functional.log_softmax(self.decoder(output), dim=-1)

    return TransformerModel


def _tokens(lib, rng, shape, ntoken):
    return lib.tensor(rng.integers(0, ntoken, size=shape))


def test_subclass_of_transformer_trains_like_torch():
    ntoken = 11
    torch.manual_seed(0)
    t_model = _subclass(torch)(ntoken, D, H, FF, 2)
    e_model = _subclass(ember)(ntoken, D, H, FF, 2)
    assert list(e_model.state_dict()) == list(t_model.state_dict())
    _load_from_torch(e_model, t_model)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9)
    e_opt = ember.optim.SGD(e_model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    t_losses, e_losses = [], []
    for _ in range(8):
        data = rng.integers(0, ntoken, size=(7, 4))
        target = rng.integers(0, ntoken, size=(7, 4))
        for lib, model, opt, losses in (
            (torch, t_model, t_opt, t_losses),
            (ember, e_model, e_opt, e_losses),
        ):
            opt.zero_grad()
            out = model(lib.tensor(data))
            loss = lib.nn.functional.nll_loss(
                out.reshape(-1, ntoken), lib.tensor(target).reshape(-1)
            )
            loss.backward()
            opt.step()
            losses.append(loss.item())
    np.testing.assert_allclose(e_losses, t_losses, rtol=1e-4, atol=1e-5)
    assert e_losses[-1] < e_losses[0]


def test_errors():
    with pytest.raises(RuntimeError, match="relu/gelu"):
        nn.TransformerEncoderLayer(D, H, activation="tanh")
    layer = nn.TransformerEncoderLayer(D, H, FF)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        layer(ember.randn(5, 3, D), is_causal=True)
    with pytest.raises(AssertionError, match="only bool and floating"):
        layer(ember.randn(5, 3, D), src_mask=ember.zeros(5, 5, dtype=ember.int64))
    model = _small_transformer(ember)
    with pytest.raises(RuntimeError, match="batch number"):
        model(ember.randn(5, 3, D), ember.randn(4, 2, D))
    with pytest.raises(RuntimeError, match="d_model"):
        model(ember.randn(5, 3, D), ember.randn(4, 3, D + 1))


# -- MultiheadAttention options beyond what the layers use ------------------------------------


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("bias_kv, zero_attn", [(True, False), (False, True), (True, True)])
def test_mha_bias_kv_and_zero_attn_match_torch(bias_kv, zero_attn, need_weights):
    e_mod, t_mod = _pair(
        nn.MultiheadAttention,
        torch.nn.MultiheadAttention,
        "float64",
        D,
        H,
        add_bias_kv=bias_kv,
        add_zero_attn=zero_attn,
    )
    assert list(e_mod.state_dict()) == list(t_mod.state_dict())
    query, memory = _inputs((4, 3, D), (5, 3, D), dtype="float64")
    padding = np.zeros((3, 5))
    padding[0, 3:] = -np.inf  # float, as the attn_mask (torch warns on mixed mask types)
    attn_mask = np.random.default_rng(2).standard_normal((4, 5))

    def first(mod):
        def run(q, m, **kw):
            return mod(q, m, m, need_weights=need_weights, **kw)[0]

        return run

    class Wrap:  # _compare wants modules with parameters
        def __init__(self, mod):
            self.mod, self.run = mod, first(mod)

        def __call__(self, *a, **kw):
            return self.run(*a, **kw)

        def named_parameters(self):
            return self.mod.named_parameters()

    _compare(
        Wrap(e_mod),
        Wrap(t_mod),
        [query, memory],
        "float64",
        key_padding_mask=padding,
        attn_mask=attn_mask,
    )


def test_mha_functional_static_kv_matches_torch():
    torch.manual_seed(0)
    t_mod = torch.nn.MultiheadAttention(D, H).double()
    rng = np.random.default_rng(3)
    query = rng.standard_normal((4, 3, D))
    static_k, static_v = rng.standard_normal((2, 3 * H, 6, D // H))

    def run(lib, mod_params):
        q = lib.tensor(query)
        out, weights = lib.nn.functional.multi_head_attention_forward(
            q,
            q,
            q,
            D,
            H,
            mod_params["in_proj_weight"],
            mod_params["in_proj_bias"],
            None,
            None,
            False,
            0.0,
            mod_params["out_proj.weight"],
            mod_params["out_proj.bias"],
            static_k=lib.tensor(static_k),
            static_v=lib.tensor(static_v),
        )
        return out, weights

    t_params = {k: v.detach() for k, v in t_mod.state_dict().items()}
    e_params = {k: ember.tensor(v.numpy()) for k, v in t_params.items()}
    (t_out, t_w), (e_out, e_w) = run(torch, t_params), run(ember, e_params)
    np.testing.assert_allclose(e_out.numpy(), t_out.numpy(), atol=1e-10)
    np.testing.assert_allclose(e_w.numpy(), t_w.numpy(), atol=1e-10)


def test_bias_false_and_custom_encoder_decoder():
    e_mod, t_mod = _pair(
        nn.TransformerEncoderLayer,
        torch.nn.TransformerEncoderLayer,
        "float64",
        D,
        H,
        FF,
        dropout=0.0,
        bias=False,
    )
    assert list(e_mod.state_dict()) == list(t_mod.state_dict())  # no bias entries
    (src,) = _inputs((5, 3, D), dtype="float64")
    _compare(e_mod, t_mod, [src], "float64")

    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, H, FF), 1)
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, H, FF), 1)
    model = nn.Transformer(d_model=D, nhead=H, custom_encoder=encoder, custom_decoder=decoder)
    assert model.encoder is encoder and model.decoder is decoder
    assert model.encoder.norm is None and model.decoder.norm is None
    out = model(ember.randn(5, 3, D), ember.randn(4, 3, D))
    assert tuple(out.shape) == (4, 3, D)


def test_dropout_is_active_in_training_only():
    layer = nn.TransformerEncoderLayer(D, H, FF, dropout=0.5)
    src = ember.randn(5, 3, D)
    layer.eval()
    np.testing.assert_array_equal(layer(src).detach().numpy(), layer(src).detach().numpy())
    layer.train()
    assert not np.allclose(layer(src).detach().numpy(), layer(src).detach().numpy())
