"""GPT-2 (124M ... 1558M) with the key names of the checkpoints published as safetensors.

Those checkpoints store the attention and MLP projections as "Conv1D" weights of shape
(in, out); ember uses ``nn.Linear`` (out, in), so loading transposes them and
:func:`to_conv1d_layout` transposes back for export. Key names are the same both ways.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import creation, nn
from ..nn import init
from ..ops.attention import scaled_dot_product_attention
from ..ops.linalg import linear
from ._weights import load_weights

_CONV1D_SUFFIXES = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)
# Constant causal-mask buffers some exports carry; ember builds the mask itself.
_MASK_SUFFIXES = (".attn.bias", ".attn.masked_bias")


@dataclass
class GPT2Config:
    r"""GPT-2's hyperparameters, under the names of the published ``config.json``."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    layer_norm_epsilon: float = 1e-5
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")


SIZES = {
    "124M": dict(n_layer=12, n_head=12, n_embd=768),
    "355M": dict(n_layer=24, n_head=16, n_embd=1024),
    "774M": dict(n_layer=36, n_head=20, n_embd=1280),
    "1558M": dict(n_layer=48, n_head=25, n_embd=1600),
}


class GPT2Attention(nn.Module):
    r"""Causal multi-head self-attention: fused q/k/v projection ``c_attn``, output
    projection ``c_proj``."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (
            y.reshape(b, t, self.n_head, c // self.n_head).transpose(1, 2) for y in (q, k, v)
        )
        p = self.attn_pdrop if self.training else 0.0
        y = scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(b, t, c)))


class GPT2MLP(nn.Module):
    r"""``c_fc`` to 4x width, tanh-approximated GELU, ``c_proj`` back, dropout."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.act = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2Block(nn.Module):
    r"""Pre-norm transformer block: ``ln_1``, ``attn``, ``ln_2``, ``mlp``."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    r"""GPT-2 language model: token and position embeddings ``wte``/``wpe``, blocks
    ``h.0`` ... ``h.{n_layer-1}``, final ``ln_f``; the output projection is tied to
    ``wte`` (so ``state_dict`` has no ``lm_head`` key, as the published files).

    ``forward(input_ids)`` maps (B, T) token ids to (B, T, vocab_size) logits.

    Example::

        >>> model = GPT2(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2,
        ...                         n_head=4))
        >>> model(ember.randint(0, 64, (2, 16))).shape
        ember.Size([2, 16, 64])
    """

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(GPT2Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2's scaling of residual projections
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))
            elif name.endswith("weight") and p.ndim == 2:
                init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias") and ".ln_" not in name and not name.startswith("ln_"):
                init.zeros_(p)

    def forward(self, input_ids):
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be (batch, seq), got {list(input_ids.shape)}")
        t = input_ids.shape[1]
        if t > self.config.n_positions:
            raise ValueError(
                f"sequence of length {t} exceeds n_positions {self.config.n_positions}"
            )
        pos = creation.arange(t, device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        return linear(self.ln_f(x), self.wte.weight)


def from_conv1d_layout(state_dict: dict) -> dict:
    r"""A published GPT-2 state_dict in ember's layout: Conv1D weights transposed to
    (out, in), an optional ``transformer.`` prefix stripped, the tied ``lm_head.weight``
    and constant attention-mask buffers dropped."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("transformer."):
            key = key[len("transformer.") :]
        if key == "lm_head.weight" or key.endswith(_MASK_SUFFIXES):
            continue
        if key.endswith(_CONV1D_SUFFIXES):
            if value.ndim != 2:
                raise RuntimeError(f"{key!r} should be 2-D, got shape {list(value.shape)}")
            value = value.t().contiguous()
        out[key] = value
    return out


def to_conv1d_layout(state_dict: dict) -> dict:
    r"""ember's GPT-2 state_dict in the published layout (Conv1D weights as (in, out)),
    e.g. to save with ``ember.serialization.save_file`` for other tools."""
    return {
        k: (v.t().contiguous() if k.endswith(_CONV1D_SUFFIXES) else v)
        for k, v in state_dict.items()
    }


def gpt2(config: GPT2Config | None = None, *, size: str = "124M", weights=None) -> GPT2:
    r"""A GPT-2 model from ``config``, or else the published ``size`` ("124M", "355M",
    "774M" or "1558M").

    Args:
        weights: a local safetensors file (or a directory holding
            ``model.safetensors``) in the published layout; its Conv1D weights are
            transposed on load.

    Example::

        >>> model = gpt2(size="124M", weights="gpt2/model.safetensors")
    """
    if config is None:
        if size not in SIZES:
            raise ValueError(f"unknown GPT-2 size {size!r}; choose one of {list(SIZES)}")
        config = GPT2Config(**SIZES[size])
    model = GPT2(config)
    if weights is not None:
        load_weights(model, weights, convert=from_conv1d_layout)
    return model
