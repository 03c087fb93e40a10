"""``ember.utils.data.transforms``: image preprocessing and augmentation with
torchvision's names and semantics, on NumPy HWC images and ember (..., C, H, W) tensors.

Example::

    >>> from ember.utils.data import transforms as T
    >>> train_tf = T.Compose([T.ToTensor(), T.RandomCrop(32, padding=4),
    ...                       T.RandomHorizontalFlip(), T.Normalize((0.5,), (0.25,))])
"""

from . import functional
from .functional import InterpolationMode
from .transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Grayscale,
    Lambda,
    Normalize,
    Pad,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
    ToTensor,
)
