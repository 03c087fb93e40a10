"""LeNet-5, in the form PyTorch's tutorials use (ReLU and max-pooling)."""

from __future__ import annotations

from .. import nn
from ._weights import load_weights


class LeNet5(nn.Module):
    r"""LeNet-5 on 32x32 inputs: two 5x5 convolutions (6 and 16 channels) each followed by
    ReLU and 2x2 max-pooling, then ``fc1`` (120), ``fc2`` (84) and ``fc3``
    (``num_classes``).

    Args:
        in_channels: channels of the input images.
        num_classes: outputs of ``fc3``.

    Example::

        >>> model = lenet5()
        >>> model(ember.randn(4, 1, 32, 32)).shape
        ember.Size([4, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def features(self, x):
        r"""The 400-dimensional feature vector before the classifier."""
        if x.ndim != 4 or tuple(x.shape[2:]) != (32, 32):
            raise ValueError(f"LeNet5 expects (N, C, 32, 32) input, got {list(x.shape)}")
        x = self.pool(self.relu(self.conv1(x)))
        return self.pool(self.relu(self.conv2(x))).flatten(1)

    def forward(self, x):
        x = self.relu(self.fc1(self.features(x)))
        return self.fc3(self.relu(self.fc2(x)))


def lenet5(*, weights=None, **kwargs) -> LeNet5:
    r"""LeNet-5. ``weights``: a local safetensors file (or a directory holding
    ``model.safetensors``); other keyword arguments go to :class:`LeNet5`."""
    model = LeNet5(**kwargs)
    if weights is not None:
        load_weights(model, weights)
    return model
