"""Vision Transformer (ViT-B/16 and smaller variants) with torchvision's module names."""

from __future__ import annotations

import math
from collections import OrderedDict

from .. import creation, nn
from ..nn import init
from ..ops.join import cat
from ._weights import load_weights


class MLPBlock(nn.Sequential):
    r"""Linear, GELU, dropout, linear, dropout: ``0`` ... ``4`` of a Sequential."""

    def __init__(self, in_dim: int, mlp_dim: int, dropout: float):
        super().__init__(
            nn.Linear(in_dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, in_dim),
            nn.Dropout(dropout),
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init.xavier_uniform_(m.weight)
                init.normal_(m.bias, std=1e-6)


class EncoderBlock(nn.Module):
    r"""A pre-norm transformer layer: self-attention and an MLP, each residual."""

    def __init__(
        self, num_heads: int, hidden_dim: int, mlp_dim: int, dropout: float, attention_dropout
    ):
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(
            hidden_dim, num_heads, dropout=attention_dropout, batch_first=True
        )
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def forward(self, input):
        if input.ndim != 3:
            raise ValueError(f"expected (batch, seq, hidden) input, got {list(input.shape)}")
        x = self.ln_1(input)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x) + input
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    r"""Learned position embeddings, dropout, ``num_layers`` encoder blocks and a final
    LayerNorm ``ln``."""

    def __init__(
        self,
        seq_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
    ):
        super().__init__()
        self.pos_embedding = nn.Parameter(creation.empty(1, seq_length, hidden_dim))
        init.normal_(self.pos_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(
            OrderedDict(
                (
                    f"encoder_layer_{i}",
                    EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout),
                )
                for i in range(num_layers)
            )
        )
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, input):
        return self.ln(self.layers(self.dropout(input + self.pos_embedding)))


class VisionTransformer(nn.Module):
    r"""ViT: ``patch_size`` patches embedded by a strided convolution ``conv_proj``, a
    learned ``class_token``, a transformer ``encoder``, and ``heads`` reading the class
    token.

    Args:
        image_size: side of the (square) input; a multiple of ``patch_size``.
        patch_size, num_layers, num_heads, hidden_dim, mlp_dim: the architecture.
        dropout, attention_dropout: dropout probabilities.
        num_classes: outputs of ``heads.head``.
        representation_size: if set, a ``pre_logits`` linear layer with tanh before
            the head.

    Example::

        >>> model = VisionTransformer(32, 8, num_layers=2, num_heads=2, hidden_dim=16,
        ...                           mlp_dim=32, num_classes=10)
        >>> model(ember.randn(2, 3, 32, 32)).shape
        ember.Size([2, 10])
    """

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        num_classes: int = 1000,
        representation_size: int | None = None,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}")
        self.image_size, self.patch_size = image_size, patch_size
        self.hidden_dim, self.mlp_dim = hidden_dim, mlp_dim
        self.num_classes, self.representation_size = num_classes, representation_size
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        seq_length = (image_size // patch_size) ** 2 + 1
        self.class_token = nn.Parameter(creation.zeros(1, 1, hidden_dim))
        self.encoder = Encoder(
            seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout
        )
        self.seq_length = seq_length
        heads: OrderedDict = OrderedDict()
        if representation_size is None:
            heads["head"] = nn.Linear(hidden_dim, num_classes)
        else:
            heads["pre_logits"] = nn.Linear(hidden_dim, representation_size)
            heads["act"] = nn.Tanh()
            heads["head"] = nn.Linear(representation_size, num_classes)
        self.heads = nn.Sequential(heads)

        fan_in = 3 * patch_size * patch_size
        init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        init.zeros_(self.conv_proj.bias)
        if representation_size is not None:
            pre = self.heads.pre_logits
            init.trunc_normal_(pre.weight, std=math.sqrt(1 / pre.in_features))
            init.zeros_(pre.bias)
        init.zeros_(self.heads.head.weight)
        init.zeros_(self.heads.head.bias)

    def _process_input(self, x):
        n, c, h, w = x.shape
        if (h, w) != (self.image_size, self.image_size) or c != 3:
            raise ValueError(
                f"expected input of shape (N, 3, {self.image_size}, {self.image_size}), "
                f"got {list(x.shape)}"
            )
        x = self.conv_proj(x)  # (n, hidden, h/p, w/p)
        return x.reshape(n, self.hidden_dim, -1).permute(0, 2, 1)

    def forward(self, x):
        x = self._process_input(x)
        x = cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder(x)
        return self.heads(x[:, 0])


def vit_b_16(*, weights=None, **kwargs) -> VisionTransformer:
    r"""ViT-B/16: 16x16 patches, 12 layers, 12 heads, width 768, MLP 3072, 224x224
    input. ``weights``: a local safetensors file (or a directory holding
    ``model.safetensors``) in torchvision's layout; other keyword arguments (e.g.
    ``image_size``, ``num_classes``) go to :class:`VisionTransformer`."""
    arch = dict(
        image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072
    )
    arch.update(kwargs)
    model = VisionTransformer(**arch)
    if weights is not None:
        load_weights(model, weights)
    return model
