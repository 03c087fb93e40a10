"""Transform classes with torchvision's names, arguments and random draws.

Random parameters come from ember's default CPU generator, which every DataLoader worker
seeds from (seed, rank, worker, epoch): ``ember.manual_seed`` makes a run's
augmentations repeatable, in the main process and in workers alike.
"""

from __future__ import annotations

import math
import numbers

from ....random import default_generator
from . import functional as F
from .functional import InterpolationMode


def _rng():
    return default_generator("cpu").rng


def _setup_size(size, name: str = "size") -> tuple:
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    if isinstance(size, list | tuple) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, list | tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{name} should be an int or a sequence of 1 or 2 ints, got {size}")


class _Transform:
    """``transform(img)`` calls ``forward``; repr shows the arguments."""

    def __call__(self, img):
        return self.forward(img)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class Compose(_Transform):
    r"""Apply ``transforms`` in order.

    Example::

        >>> t = Compose([ToTensor(), Normalize((0.5,), (0.5,))])
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def forward(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Lambda(_Transform):
    r"""Apply a user function ``lambd``."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def forward(self, img):
        return self.lambd(img)


class ToTensor(_Transform):
    r"""A NumPy HWC (or HW) image to a CHW tensor; uint8 [0, 255] becomes float32
    [0, 1]."""

    def forward(self, pic):
        return F.to_tensor(pic)


class Normalize(_Transform):
    r"""``(x - mean[c]) / std[c]`` per channel of a float image."""

    def __init__(self, mean, std, inplace: bool = False):
        self.mean, self.std, self.inplace = mean, std, inplace

    def forward(self, tensor):
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class Resize(_Transform):
    r"""Resize to ``size`` ((h, w), or an int for the shorter edge); see
    :func:`functional.resize`."""

    def __init__(
        self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True
    ):
        if not isinstance(size, numbers.Integral | list | tuple):
            raise TypeError(f"Size should be int or sequence. Got {type(size)}")
        self.size, self.interpolation = size, interpolation
        self.max_size, self.antialias = max_size, antialias

    def forward(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, interpolation={self.interpolation}, antialias={self.antialias}"


class CenterCrop(_Transform):
    r"""The central ``size`` region (zero-padded where the image is smaller)."""

    def __init__(self, size):
        self.size = _setup_size(size)

    def forward(self, img):
        return F.center_crop(img, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class Pad(_Transform):
    r"""Pad the borders; see :func:`functional.pad`."""

    def __init__(self, padding, fill=0, padding_mode: str = "constant"):
        F._padding_ltrb(padding)
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def forward(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)


class RandomCrop(_Transform):
    r"""A ``size`` region at a uniformly random position, after optional ``padding``;
    ``pad_if_needed`` pads an image smaller than ``size`` (on both sides of the short
    dimension) instead of failing."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _setup_size(size)
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    @staticmethod
    def get_params(img, output_size) -> tuple:
        r"""``(top, left, height, width)`` of a random crop."""
        _, h, w = F.get_dimensions(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(
                f"Required crop size {(th, tw)} is larger than input image size {(h, w)}"
            )
        if (h, w) == (th, tw):
            return 0, 0, h, w
        rng = _rng()
        return int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1)), th, tw

    def forward(self, img):
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, h, w = F.get_dimensions(img)
        if self.pad_if_needed and w < self.size[1]:
            img = F.pad(img, [self.size[1] - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < self.size[0]:
            img = F.pad(img, [0, self.size[0] - h], self.fill, self.padding_mode)
        return F.crop(img, *self.get_params(img, self.size))

    def extra_repr(self) -> str:
        return f"size={self.size}, padding={self.padding}"


class RandomHorizontalFlip(_Transform):
    r"""Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def forward(self, img):
        return F.hflip(img) if _rng().random() < self.p else img

    def extra_repr(self) -> str:
        return f"p={self.p}"


class RandomVerticalFlip(RandomHorizontalFlip):
    r"""Mirror top-bottom with probability ``p``."""

    def forward(self, img):
        return F.vflip(img) if _rng().random() < self.p else img


class RandomResizedCrop(_Transform):
    r"""A crop of random area (a ``scale`` fraction of the image) and aspect ratio
    (log-uniform in ``ratio``), resized to ``size``. After 10 tries that do not fit, a
    central crop at the nearest allowed ratio."""

    def __init__(
        self,
        size,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        interpolation=InterpolationMode.BILINEAR,
        antialias=True,
    ):
        self.size = _setup_size(size)
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"scale and ratio should be of kind (min, max), got {scale}, {ratio}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation, self.antialias = interpolation, antialias

    @staticmethod
    def get_params(img, scale, ratio) -> tuple:
        r"""``(top, left, height, width)`` of a random sized crop."""
        _, height, width = F.get_dimensions(img)
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        rng = _rng()
        for _ in range(10):
            target_area = area * rng.uniform(scale[0], scale[1])
            aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                i = int(rng.integers(0, height - h + 1))
                j = int(rng.integers(0, width - w + 1))
                return i, j, h, w
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def forward(self, img):
        i, j, h, w = self.get_params(img, self.scale, self.ratio)
        return F.resized_crop(img, i, j, h, w, self.size, self.interpolation, self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}"


def _check_range(value, name, center=1.0, bound=(0.0, math.inf), clip_first_on_zero=True):
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"If {name} is a single number, it must be non negative.")
        value = [center - float(value), center + float(value)]
        if clip_first_on_zero:
            value[0] = max(value[0], 0.0)
    elif isinstance(value, list | tuple) and len(value) == 2:
        value = [float(value[0]), float(value[1])]
        if not bound[0] <= value[0] <= value[1] <= bound[1]:
            raise ValueError(f"{name} values should be between {bound}, but got {value}.")
    else:
        raise TypeError(f"{name} should be a single number or a list/tuple with length 2.")
    return None if value[0] == value[1] == center else tuple(value)


class ColorJitter(_Transform):
    r"""Random brightness, contrast, saturation and hue changes, applied in a random
    order. Each of ``brightness``/``contrast``/``saturation`` is ``b`` (a factor drawn
    from [max(0, 1 - b), 1 + b]) or ``(min, max)``; ``hue`` is ``h`` in [0, 0.5] (a
    shift from [-h, h]) or ``(min, max)`` within [-0.5, 0.5]."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = _check_range(brightness, "brightness")
        self.contrast = _check_range(contrast, "contrast")
        self.saturation = _check_range(saturation, "saturation")
        self.hue = _check_range(hue, "hue", center=0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue) -> tuple:
        r"""``(order, b, c, s, h)``: a permutation of the four adjustments and each
        factor (None where that adjustment is off)."""
        rng = _rng()
        order = [int(k) for k in rng.permutation(4)]
        factors = [
            None if r is None else float(rng.uniform(r[0], r[1]))
            for r in (brightness, contrast, saturation, hue)
        ]
        return (order, *factors)

    def forward(self, img):
        order, *factors = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        for k in order:
            if factors[k] is not None:
                img = adjust[k](img, factors[k])
        return img

    def extra_repr(self) -> str:
        return (
            f"brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue}"
        )


class RandomRotation(_Transform):
    r"""Rotate by an angle drawn uniformly from ``degrees`` (``d`` means (-d, d));
    see :func:`functional.rotate` for ``interpolation``, ``expand``, ``center``,
    ``fill``."""

    def __init__(
        self, degrees, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=0
    ):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError("If degrees is a single number, it must be positive.")
            degrees = (-float(degrees), float(degrees))
        elif not (isinstance(degrees, list | tuple) and len(degrees) == 2):
            raise ValueError("If degrees is a sequence, it must be of len 2.")
        if center is not None and len(center) != 2:
            raise ValueError("center should be a sequence of length 2.")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation, self.expand, self.center, self.fill = (
            interpolation,
            expand,
            center,
            fill,
        )

    @staticmethod
    def get_params(degrees) -> float:
        r"""A random angle in ``degrees``."""
        return float(_rng().uniform(degrees[0], degrees[1]))

    def forward(self, img):
        angle = self.get_params(self.degrees)
        return F.rotate(img, angle, self.interpolation, self.expand, self.center, self.fill)

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, interpolation={self.interpolation}"


class Grayscale(_Transform):
    r"""To greyscale, with 1 or 3 output channels."""

    def __init__(self, num_output_channels: int = 1):
        self.num_output_channels = num_output_channels

    def forward(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)
