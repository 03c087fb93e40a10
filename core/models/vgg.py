"""VGG-11/16, with and without BatchNorm, with torchvision's module names."""

from __future__ import annotations

from .. import nn
from ..nn import init
from ._weights import load_weights

# Output channels of each 3x3 convolution; "M" is a 2x2 max-pool.
_CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    r"""A VGG network: convolutional ``features``, adaptive average pooling to 7x7 and a
    three-layer ``classifier`` (4096, 4096, ``num_classes``) with dropout.

    Args:
        features: the convolutional part, e.g. from :func:`make_layers`.
        num_classes: outputs of the last linear layer.
        init_weights: initialize as torchvision does (Kaiming-normal convolutions,
            normal(0, 0.01) linear layers, zero biases).
        dropout: dropout probability in the classifier.

    Example::

        >>> model = vgg11_bn(num_classes=10)
        >>> model(ember.randn(1, 3, 32, 32)).shape
        ember.Size([1, 10])
    """

    def __init__(
        self,
        features: nn.Module,
        num_classes: int = 1000,
        init_weights: bool = True,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    init.ones_(m.weight)
                    init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    init.normal_(m.weight, 0.0, 0.01)
                    init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def make_layers(cfg: list, batch_norm: bool = False) -> nn.Sequential:
    r"""VGG's ``features`` from a list of channel counts and ``"M"`` (max-pool)."""
    layers: list = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


def _vgg(cfg: str, batch_norm: bool, weights, **kwargs) -> VGG:
    if weights is not None:
        kwargs["init_weights"] = False
    model = VGG(make_layers(_CONFIGS[cfg], batch_norm=batch_norm), **kwargs)
    if weights is not None:
        load_weights(model, weights)
    return model


def vgg11(*, weights=None, **kwargs) -> VGG:
    r"""VGG-11 (configuration "A"). ``weights``: a local safetensors file (or a
    directory holding ``model.safetensors``) in torchvision's layout; other keyword
    arguments go to :class:`VGG`."""
    return _vgg("A", False, weights, **kwargs)


def vgg11_bn(*, weights=None, **kwargs) -> VGG:
    r"""VGG-11 with BatchNorm; arguments as :func:`vgg11`."""
    return _vgg("A", True, weights, **kwargs)


def vgg16(*, weights=None, **kwargs) -> VGG:
    r"""VGG-16 (configuration "D"); arguments as :func:`vgg11`."""
    return _vgg("D", False, weights, **kwargs)


def vgg16_bn(*, weights=None, **kwargs) -> VGG:
    r"""VGG-16 with BatchNorm; arguments as :func:`vgg11`."""
    return _vgg("D", True, weights, **kwargs)
