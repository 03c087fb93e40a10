"""GPT-2 loads checkpoints in the published layout (Conv1D weights stored (in, out)) and
then agrees with a PyTorch GPT-2 written here in that layout."""

import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as tF
from safetensors.torch import save_file

import ember
from ember.models import GPT2, GPT2Config, gpt2, to_conv1d_layout
from ember.models.gpt2 import SIZES


class Conv1D(tnn.Module):
    """The published checkpoints' projection: weight (in, out), y = x @ W + b."""

    def __init__(self, nx, nf):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = tnn.Parameter(torch.randn(nf) * 0.02)

    def forward(self, x):
        return x @ self.weight + self.bias


class TBlock(tnn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = tnn.LayerNorm(d)
        self.attn = tnn.Module()
        self.attn.c_attn, self.attn.c_proj = Conv1D(d, 3 * d), Conv1D(d, d)
        self.ln_2 = tnn.LayerNorm(d)
        self.mlp = tnn.Module()
        self.mlp.c_fc, self.mlp.c_proj = Conv1D(d, 4 * d), Conv1D(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (y.view(b, t, self.heads, -1).transpose(1, 2) for y in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.attn.c_proj(y)
        return x + self.mlp.c_proj(tF.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class TGPT2(tnn.Module):
    def __init__(self, vocab, positions, d, layers, heads):
        super().__init__()
        self.wte, self.wpe = tnn.Embedding(vocab, d), tnn.Embedding(positions, d)
        self.h = tnn.ModuleList(TBlock(d, heads) for _ in range(layers))
        self.ln_f = tnn.LayerNorm(d)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T


TINY = dict(vocab_size=50, n_positions=16, n_embd=24, n_layer=2, n_head=3)


def tiny_config(**kw):
    return GPT2Config(**dict(TINY, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0, **kw))


def torch_tiny():
    torch.manual_seed(0)
    return TGPT2(
        TINY["vocab_size"], TINY["n_positions"], TINY["n_embd"], TINY["n_layer"], TINY["n_head"]
    )


def test_gpt2_matches_torch_in_logits_and_gradients(tmp_path):
    ref = torch_tiny()
    save_file(ref.state_dict(), str(tmp_path / "model.safetensors"))
    model = gpt2(tiny_config(), weights=tmp_path)
    idx = np.random.default_rng(0).integers(0, TINY["vocab_size"], (2, 11))

    with torch.no_grad():
        tout = ref(torch.tensor(idx))
    eout = model(ember.tensor(idx))
    np.testing.assert_allclose(eout.detach().numpy(), tout.numpy(), atol=1e-4, rtol=1e-4)

    ref.double(), model.double()
    targets = np.roll(idx, -1, axis=1)
    tloss = tF.cross_entropy(ref(torch.tensor(idx)).flatten(0, 1), torch.tensor(targets).flatten())
    eloss = ember.nn.functional.cross_entropy(
        model(ember.tensor(idx)).flatten(0, 1), ember.tensor(targets).flatten()
    )
    tloss.backward()
    eloss.backward()
    np.testing.assert_allclose(eloss.item(), tloss.item(), rtol=1e-10)
    egrads = dict(model.named_parameters())
    assert set(egrads) == {k for k, _ in ref.named_parameters()}
    for name, p in ref.named_parameters():
        g = egrads[name].grad.numpy()
        if isinstance(dict(ref.named_modules())[name.rsplit(".", 1)[0]], Conv1D) and g.ndim == 2:
            g = g.T  # ember's Linear keeps (out, in)
        np.testing.assert_allclose(g, p.grad.numpy(), atol=1e-10, rtol=1e-7, err_msg=name)


def test_gpt2_state_dict_keys_are_the_published_ones_and_round_trip(tmp_path):
    ref = torch_tiny()
    model = GPT2(tiny_config())
    published = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert list(model.state_dict()) == list(published)
    exported = to_conv1d_layout(model.state_dict())
    assert {k: tuple(v.shape) for k, v in exported.items()} == published

    # what ember exports, a published-layout reader (torch here) loads and agrees with
    ember.serialization.save_file(exported, tmp_path / "out.safetensors")
    from safetensors.torch import load_file

    ref.load_state_dict(load_file(str(tmp_path / "out.safetensors")))
    idx = np.arange(8).reshape(1, 8)
    with torch.no_grad():
        tout = ref(torch.tensor(idx))
    np.testing.assert_allclose(
        model(ember.tensor(idx)).detach().numpy(), tout.numpy(), atol=1e-4, rtol=1e-4
    )


def test_gpt2_loads_exports_with_prefix_tied_head_and_mask_buffers(tmp_path):
    ref = torch_tiny()
    sd = {"transformer." + k: v for k, v in ref.state_dict().items()}
    sd["lm_head.weight"] = ref.wte.weight.detach().clone()
    sd["transformer.h.0.attn.bias"] = torch.ones(1, 1, 16, 16).tril()
    save_file(sd, str(tmp_path / "model.safetensors"))
    model = gpt2(tiny_config(), weights=tmp_path / "model.safetensors")
    np.testing.assert_array_equal(
        model.h[0].attn.c_attn.weight.detach().numpy(), ref.h[0].attn.c_attn.weight.detach().T
    )


def test_gpt2_load_names_the_first_mismatch(tmp_path):
    sd = torch_tiny().state_dict()
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(RuntimeError, match=r"'wte\.weight' has shape \[50, 24\].*\[60, 24\]"):
        gpt2(tiny_config(vocab_size=60), weights=tmp_path)
    del sd["h.1.mlp.c_fc.bias"]
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(RuntimeError, match=r"lacks the key 'h\.1\.mlp\.c_fc\.bias'"):
        gpt2(tiny_config(), weights=tmp_path)


def test_gpt2_sizes_have_the_published_parameter_counts():
    # the per-block layout is tested at a tiny width above; here, the size table
    published = {
        "124M": 124_439_808,
        "355M": 354_823_168,
        "774M": 774_030_080,
        "1558M": 1_557_611_200,
    }
    for size, count in published.items():
        arch = SIZES[size]
        d = arch["n_embd"]
        per_block = 12 * d * d + 13 * d  # c_attn, c_proj, c_fc, c_proj and two LayerNorms
        assert (50257 + 1024) * d + arch["n_layer"] * per_block + 2 * d == count, size
    with pytest.raises(ValueError, match="unknown GPT-2 size"):
        gpt2(size="7B")
    with pytest.raises(ValueError, match="divisible"):
        GPT2Config(n_embd=10, n_head=3)


def test_gpt2_rejects_too_long_sequences():
    model = GPT2(tiny_config())
    with pytest.raises(ValueError, match="n_positions 16"):
        model(ember.zeros(1, 17, dtype=ember.int64))
