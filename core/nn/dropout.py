"""Dropout modules: ``Dropout``, ``Dropout1d``, ``Dropout2d``, ``Dropout3d``."""

from __future__ import annotations

from ..ops import dropout as ops_dropout
from ..tensor import Tensor
from .module import Module


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    r"""While training, zero each element with probability ``p`` and scale the rest
    by ``1 / (1 - p)``; the identity in eval mode.

    Example::

        >>> m = nn.Dropout(p=0.2)
    """

    def forward(self, input: Tensor) -> Tensor:
        return ops_dropout.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    r"""Zero whole channels of (N, C, L) or (C, L) inputs while training."""

    def forward(self, input: Tensor) -> Tensor:
        return ops_dropout.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    r"""Zero whole channels of (N, C, H, W) or (C, H, W) inputs while training."""

    def forward(self, input: Tensor) -> Tensor:
        return ops_dropout.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    r"""Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs while training."""

    def forward(self, input: Tensor) -> Tensor:
        return ops_dropout.dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    r"""Dropout that keeps SELU activations' mean and variance."""

    def forward(self, input: Tensor) -> Tensor:
        return ops_dropout.alpha_dropout(input, self.p, self.training, self.inplace)


class FeatureAlphaDropout(_DropoutNd):
    r"""Alpha dropout of whole channels."""

    def forward(self, input: Tensor) -> Tensor:
        return ops_dropout.feature_alpha_dropout(input, self.p, self.training, self.inplace)
