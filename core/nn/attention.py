"""``MultiheadAttention`` and its functional form ``multi_head_attention_forward``."""

from __future__ import annotations

import math

from .. import creation
from ..ops.attention import scaled_dot_product_attention
from ..ops.dropout import dropout
from ..ops.join import cat
from ..ops.linalg import linear
from ..ops.softmax import softmax
from ..tensor import Tensor
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter


class NonDynamicallyQuantizableLinear(Linear):
    """``Linear`` under the name PyTorch gives ``MultiheadAttention.out_proj`` (same repr)."""


def _additive_mask(mask: Tensor | None, like: Tensor, name: str) -> Tensor | None:
    """A bool mask (True = not allowed) as a float mask of 0 / -inf; float masks pass."""
    if mask is None:
        return None
    if mask.dtype.name == "bool":
        return creation.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(
            mask, float("-inf")
        )
    if not mask.is_floating_point():
        raise TypeError(f"only bool and floating types of {name} are supported, got {mask.dtype}")
    return mask.to(like.dtype)


def _pad_keys(mask: Tensor | None, extra: int) -> Tensor | None:
    """An additive mask with ``extra`` more (attended) key positions at the end."""
    if mask is None:
        return None
    zeros = creation.zeros(tuple(mask.shape[:-1]) + (extra,), dtype=mask.dtype, device=mask.device)
    return cat([mask, zeros], dim=-1)


def multi_head_attention_forward(
    query,
    key,
    value,
    embed_dim_to_check,
    num_heads,
    in_proj_weight,
    in_proj_bias,
    bias_k,
    bias_v,
    add_zero_attn,
    dropout_p,
    out_proj_weight,
    out_proj_bias,
    training=True,
    key_padding_mask=None,
    need_weights=True,
    attn_mask=None,
    use_separate_proj_weight=False,
    q_proj_weight=None,
    k_proj_weight=None,
    v_proj_weight=None,
    static_k=None,
    static_v=None,
    average_attn_weights=True,
    is_causal=False,
):
    r"""Multi-head attention on (L, N, E) query and (S, N, E) key/value (or unbatched
    (L, E) / (S, E)), PyTorch's functional form. Returns ``(output, weights)``; weights
    are None unless ``need_weights``, averaged over heads if ``average_attn_weights``.

    Masks: ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N * heads, L, S);
    bool True marks a position that may NOT be attended, float masks are added.
    ``bias_k``/``bias_v`` (1, 1, E) append one learned key/value position,
    ``add_zero_attn`` one of zeros; ``static_k``/``static_v`` (N * heads, S, E / heads)
    replace the projected keys/values.
    """
    if (bias_k is None) != (bias_v is None):
        raise ValueError("bias_k and bias_v must both be given or both be None")
    if bias_k is not None and (static_k is not None or static_v is not None):
        raise ValueError("bias_k/bias_v cannot be combined with static_k/static_v")
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(
            f"query, key and value must all be 2-D (unbatched) or 3-D (batched), got "
            f"{list(query.shape)}, {list(key.shape)} and {list(value.shape)}"
        )
    batched = query.ndim == 3
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if embed_dim != embed_dim_to_check:
        raise ValueError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}"
        )
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(
            f"key shape {list(key.shape)} does not match value shape {list(value.shape)}"
        )
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
            "module method `generate_square_subsequent_mask` to create this mask."
        )
    # As PyTorch: the hint replaces the mask only where nothing else needs the mask
    causal = is_causal and key_padding_mask is None and not need_weights
    if causal:
        attn_mask = None
    head_dim = embed_dim // num_heads
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = in_proj_bias.chunk(3)
    if use_separate_proj_weight:
        q, k, v = (
            linear(x, w, b)
            for x, w, b in (
                (query, q_proj_weight, b_q),
                (key, k_proj_weight, b_k),
                (value, v_proj_weight, b_v),
            )
        )
    elif query is key and key is value:
        q, k, v = linear(query, in_proj_weight, in_proj_bias).chunk(3, dim=-1)
    else:
        w_q, w_k, w_v = in_proj_weight.chunk(3)
        q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)

    def heads(x, length):  # (length, N, E) -> (N, heads, length, head_dim)
        return x.reshape(length, bsz, num_heads, head_dim).permute(1, 2, 0, 3)

    def static(x, name):  # (N * heads, S, head_dim) -> (N, heads, S, head_dim)
        if x.shape[0] != bsz * num_heads or x.shape[2] != head_dim:
            raise RuntimeError(
                f"expecting {name} of shape [{bsz * num_heads}, S, {head_dim}], but got "
                f"{list(x.shape)}"
            )
        return x.reshape(bsz, num_heads, x.shape[1], head_dim)

    mask = _additive_mask(attn_mask, q, "attn_mask")
    padding = _additive_mask(key_padding_mask, q, "key_padding_mask")
    extra = 0  # key positions appended below, which every query may attend
    if bias_k is not None:
        k = cat([k, bias_k.expand(1, bsz, embed_dim)])
        v = cat([v, bias_v.expand(1, bsz, embed_dim)])
        extra += 1
    q = heads(q, tgt_len)
    k = heads(k, src_len + extra) if static_k is None else static(static_k, "static_k")
    v = heads(v, src_len + extra) if static_v is None else static(static_v, "static_v")
    if add_zero_attn:
        zeros = creation.zeros((bsz, num_heads, 1, head_dim), dtype=q.dtype, device=q.device)
        k, v = cat([k, zeros], dim=2), cat([v, zeros], dim=2)
        extra += 1
    if extra:
        mask, padding = (_pad_keys(m, extra) for m in (mask, padding))
    src_len = k.shape[2]
    if mask is not None:
        if mask.ndim == 3:
            if tuple(mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 3D attn_mask is {list(mask.shape)}, but should be "
                    f"{[bsz * num_heads, tgt_len, src_len]}."
                )
            mask = mask.reshape(bsz, num_heads, tgt_len, src_len)
        elif tuple(mask.shape) != (tgt_len, src_len):
            raise RuntimeError(
                f"The shape of the 2D attn_mask is {list(mask.shape)}, but should be "
                f"{[tgt_len, src_len]}."
            )
    if padding is not None:
        if tuple(padding.shape) != (bsz, src_len):
            raise RuntimeError(
                f"expecting key_padding_mask shape of {[bsz, src_len]}, but got {list(padding.shape)}"
            )
        padding = padding.reshape(bsz, 1, 1, src_len)
        mask = padding if mask is None else mask + padding
    if not training:
        dropout_p = 0.0
    weights = None
    if need_weights:
        scores = (q * (1.0 / math.sqrt(head_dim))).matmul(k.transpose(-2, -1))
        if mask is not None:
            scores = scores + mask
        weights = softmax(scores, dim=-1)
        if dropout_p > 0.0:
            weights = dropout(weights, p=dropout_p)
        out = weights.matmul(v)
        if average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            weights = weights.squeeze(0)
    else:
        out = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal
        )
    out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias)
    if not batched:
        out = out.squeeze(1)
    return out, weights


class MultiheadAttention(Module):
    r"""Multi-head attention, with PyTorch's parameters (``in_proj_weight`` (3E, E),
    ``in_proj_bias``, ``out_proj``; ``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ from
    ``embed_dim``) so state dicts load either way.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``.

    Example::

        >>> mha = nn.MultiheadAttention(16, 4, batch_first=True)
        >>> x = ember.randn(2, 5, 16)
        >>> out, w = mha(x, x, x)
        >>> out.shape, w.shape
        (ember.Size([2, 5, 16]), ember.Size([2, 5, 5]))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim=None,
        vdim=None,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} "
                f"and num_heads={num_heads} instead"
            )
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads, self.dropout, self.batch_first = num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(creation.empty((3 * embed_dim, embed_dim), **factory))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(creation.empty((embed_dim, embed_dim), **factory))
            self.k_proj_weight = Parameter(creation.empty((embed_dim, self.kdim), **factory))
            self.v_proj_weight = Parameter(creation.empty((embed_dim, self.vdim), **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(creation.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **factory)
        if add_bias_kv:
            self.bias_k = Parameter(creation.empty((1, 1, embed_dim), **factory))
            self.bias_v = Parameter(creation.empty((1, 1, embed_dim), **factory))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask=None,
        need_weights: bool = True,
        attn_mask=None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ):
        batched = query.ndim == 3
        if self.batch_first and batched:
            query, key, value = (
                (query.transpose(1, 0),) * 3
                if key is query and value is query
                else (query.transpose(1, 0), key.transpose(1, 0), value.transpose(1, 0))
            )
        out, weights = multi_head_attention_forward(
            query,
            key,
            value,
            self.embed_dim,
            self.num_heads,
            self.in_proj_weight,
            self.in_proj_bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            training=self.training,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        if self.batch_first and batched:
            out = out.transpose(1, 0)
        return out, weights
