"""Conv, pooling, normalization and attention layers against torch.nn: repr, state_dict
keys, default initialisation, loading torch's weights (same outputs and gradients),
running statistics across train steps, and eval mode."""

import math

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn


def _load_from_torch(e_mod, t_mod):
    e_mod.load_state_dict(
        {k: ember.tensor(v.detach().numpy()) for k, v in t_mod.state_dict().items()}
    )


def _compare(e_mod, t_mod, *arrays, atol=1e-5, rtol=1e-4, grads=True):
    """Run both modules on the same inputs; compare outputs, input and parameter grads."""
    e_in = [ember.tensor(a, requires_grad=grads) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=grads) for a in arrays]
    e_out, t_out = e_mod(*e_in), t_mod(*t_in)
    e_out = e_out if isinstance(e_out, tuple) else (e_out,)
    t_out = t_out if isinstance(t_out, tuple) else (t_out,)
    for e, t in zip(e_out, t_out):
        if t is None:
            assert e is None
            continue
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), atol=atol, rtol=rtol)
    if not grads:
        return
    rng = np.random.default_rng(7)
    vs = [
        rng.standard_normal(tuple(t.shape)).astype(t.detach().numpy().dtype)
        for t in t_out
        if t is not None
    ]
    ember.autograd.backward([e for e in e_out if e is not None], [ember.tensor(v) for v in vs])
    torch.autograd.backward([t for t in t_out if t is not None], [torch.tensor(v) for v in vs])
    for e, t in zip(e_in, t_in):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), atol=atol, rtol=rtol)
    t_params = dict(t_mod.named_parameters())
    for name, p in e_mod.named_parameters():
        np.testing.assert_allclose(
            p.grad.numpy(), t_params[name].grad.numpy(), atol=atol, rtol=rtol, err_msg=name
        )


LAYERS = [
    (lambda m: m.Conv2d(3, 8, 3, padding=1), (2, 3, 6, 6)),
    (
        lambda m: m.Conv2d(4, 6, (3, 2), stride=2, dilation=(1, 2), groups=2, bias=False),
        (2, 4, 9, 9),
    ),
    (lambda m: m.Conv2d(3, 4, 3, padding="same", padding_mode="reflect"), (2, 3, 6, 5)),
    (lambda m: m.Conv2d(3, 4, 3, padding=2, padding_mode="circular"), (2, 3, 6, 5)),
    (lambda m: m.Conv2d(3, 4, 2, padding=1, padding_mode="replicate"), (2, 3, 6, 5)),
    (lambda m: m.Conv1d(4, 6, 3, stride=2, padding=1), (2, 4, 9)),
    (lambda m: m.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), (2, 4, 5, 5)),
    (lambda m: m.ConvTranspose1d(4, 6, 3, stride=2, groups=2), (2, 4, 5)),
    (lambda m: m.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 8, 8)),
    (lambda m: m.MaxPool1d(2), (2, 3, 8)),
    (lambda m: m.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 8, 8)),
    (lambda m: m.AvgPool1d(3, stride=2), (2, 3, 9)),
    (lambda m: m.AdaptiveAvgPool2d((3, None)), (2, 3, 7, 5)),
    (lambda m: m.AdaptiveAvgPool1d(4), (2, 3, 9)),
    (lambda m: m.AdaptiveMaxPool2d((3, 2)), (2, 3, 7, 5)),
    (lambda m: m.AdaptiveMaxPool1d(4), (2, 3, 9)),
    (lambda m: m.LayerNorm((4, 5)), (2, 3, 4, 5)),
    (lambda m: m.LayerNorm(5, bias=False), (2, 3, 5)),
    (lambda m: m.GroupNorm(2, 6), (2, 6, 4, 4)),
    (lambda m: m.RMSNorm(5, eps=1e-4), (2, 3, 5)),
    (lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
    (lambda m: m.BatchNorm1d(3, affine=False), (4, 3)),
]


@pytest.mark.parametrize("make, shape", LAYERS)
def test_layer_matches_torch(make, shape):
    t_mod = make(torch.nn).double()
    e_mod = make(nn)
    assert repr(e_mod) == repr(t_mod)
    assert list(e_mod.state_dict()) == list(t_mod.state_dict())
    for (name, p), (_, tp) in zip(e_mod.state_dict().items(), t_mod.state_dict().items()):
        assert tuple(p.shape) == tuple(tp.shape), name
    e_mod = e_mod.double()
    _load_from_torch(e_mod, t_mod)
    x = np.random.default_rng(0).standard_normal(shape)
    _compare(e_mod, t_mod, x)


@pytest.mark.parametrize(
    "make", [lambda m: m.Conv2d(16, 32, 3), lambda m: m.ConvTranspose2d(16, 8, (3, 2), groups=2)]
)
def test_conv_default_init_bounds(make):
    ember.manual_seed(0)
    conv = make(nn)
    fan_in = conv.weight.shape[1] * math.prod(conv.weight.shape[2:])
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) gives the same bound
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound and w.std() > 0.5 * bound / math.sqrt(3)


def test_conv_transpose_output_size():
    t_mod = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1).double()
    e_mod = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1).double()
    _load_from_torch(e_mod, t_mod)
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 5))
    out = e_mod(ember.tensor(x), output_size=[10, 10])
    np.testing.assert_allclose(
        out.detach().numpy(),
        t_mod(torch.tensor(x), output_size=[10, 10]).detach().numpy(),
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="valid sizes range from 9 to 10"):
        e_mod(ember.tensor(x), output_size=[12, 12])


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda m, mo: m.BatchNorm2d(3, momentum=mo), (4, 3, 5, 5)),
        (lambda m, mo: m.BatchNorm1d(3, momentum=mo), (6, 3, 4)),
    ],
)
def test_batch_norm_running_stats_over_train_steps_then_eval(make, shape, momentum):
    t_mod, e_mod = make(torch.nn, momentum).double(), make(nn, momentum).double()
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal(shape) * 3 + 1
        _compare(e_mod, t_mod, x, atol=1e-10, rtol=1e-8)
    for name, buf in t_mod.named_buffers():
        np.testing.assert_allclose(
            dict(e_mod.named_buffers())[name].numpy(), buf.numpy(), rtol=1e-10, err_msg=name
        )
    assert int(e_mod.num_batches_tracked) == 4
    e_mod.eval()
    t_mod.eval()
    _compare(e_mod, t_mod, rng.standard_normal(shape), atol=1e-10, rtol=1e-8)
    assert int(e_mod.num_batches_tracked) == 4


def test_batch_norm_without_running_stats_uses_batch_stats_in_eval():
    t_mod = torch.nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    e_mod = nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    assert e_mod.running_mean is None and list(e_mod.state_dict()) == ["weight", "bias"]
    _compare(e_mod, t_mod, np.random.default_rng(0).standard_normal((5, 3)))


def test_batch_norm_wrong_rank():
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        nn.BatchNorm2d(3)(ember.randn(2, 3, 4))


# -- MultiheadAttention -----------------------------------------------------------------------------


def _mha_pair(**kw):
    torch.manual_seed(0)
    t_mod = torch.nn.MultiheadAttention(8, 2, **kw).double()
    e_mod = nn.MultiheadAttention(8, 2, **kw).double()
    assert repr(e_mod) == repr(t_mod)
    assert list(e_mod.state_dict()) == list(t_mod.state_dict())
    _load_from_torch(e_mod, t_mod)
    return e_mod, t_mod


@pytest.mark.parametrize("need_weights, average", [(True, True), (True, False), (False, True)])
def test_mha_self_attention_batch_first(need_weights, average):
    e_mod, t_mod = _mha_pair(batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (eo, ew), (to, tw) = (
        m(a, a, a, need_weights=need_weights, average_attn_weights=average)
        for m, a in ((e_mod, ex), (t_mod, tx))
    )
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-10)
    if need_weights:
        np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), atol=1e-10)
    else:
        assert ew is None and tw is None
    eo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(
        e_mod.in_proj_weight.grad.numpy(), t_mod.in_proj_weight.grad.numpy(), atol=1e-10
    )


def test_mha_cross_attention_with_masks_seq_first():
    e_mod, t_mod = _mha_pair(kdim=4, vdim=3, bias=False)
    rng = np.random.default_rng(1)
    q, k, v = (
        rng.standard_normal((5, 2, 8)),
        rng.standard_normal((6, 2, 4)),
        rng.standard_normal((6, 2, 3)),
    )
    pad = np.zeros((2, 6), bool)
    pad[1, -2:] = True
    causal = np.triu(np.ones((5, 6), bool), 1)
    for masks in (
        {"key_padding_mask": pad},
        {"attn_mask": causal},
        {"attn_mask": causal, "key_padding_mask": pad},
    ):
        e_masks = {name: ember.tensor(m) for name, m in masks.items()}
        t_masks = {name: torch.tensor(m) for name, m in masks.items()}
        eo, ew = e_mod(ember.tensor(q), ember.tensor(k), ember.tensor(v), **e_masks)
        to, tw = t_mod(torch.tensor(q), torch.tensor(k), torch.tensor(v), **t_masks)
        np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-10)
        np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), atol=1e-10)


def test_mha_float_mask_unbatched_and_eval_dropout():
    e_mod, t_mod = _mha_pair(dropout=0.5)
    e_mod.eval()
    t_mod.eval()
    rng = np.random.default_rng(2)
    x, mask = rng.standard_normal((4, 8)), rng.standard_normal((4, 4))
    eo, ew = e_mod(ember.tensor(x), ember.tensor(x), ember.tensor(x), attn_mask=ember.tensor(mask))
    to, tw = t_mod(torch.tensor(x), torch.tensor(x), torch.tensor(x), attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), atol=1e-10)


def test_mha_errors():
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    mha = nn.MultiheadAttention(8, 2)
    x = ember.randn(3, 2, 8)
    with pytest.raises(
        RuntimeError, match=r"The shape of the 2D attn_mask is \[2, 2\], but should be \[3, 3\]"
    ):
        mha(x, x, x, attn_mask=ember.zeros(2, 2))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        mha(x, x, x, is_causal=True)
