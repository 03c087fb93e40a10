"""Padding layers: ``ConstantPad``/``ZeroPad``/``ReflectionPad``/``ReplicationPad``/
``CircularPad`` in 1-d, 2-d and 3-d, thin modules over ``F.pad`` (negative amounts crop)."""

from __future__ import annotations

from ..ops.pad import pad
from ..tensor import Tensor
from .module import Module


class _PadNd(Module):
    _dims = 1
    _mode = "constant"

    def __init__(self, padding):
        super().__init__()
        n = 2 * self._dims
        if isinstance(padding, int):
            padding = (padding,) * n
        padding = tuple(padding)
        if len(padding) != n or not all(isinstance(p, int) for p in padding):
            raise ValueError(
                f"{type(self).__name__}: padding must be an int or a tuple of {n} ints, "
                f"got {padding}"
            )
        self.padding = padding

    def forward(self, input: Tensor) -> Tensor:
        return pad(input, self.padding, mode=self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding)
        self.value = value

    def forward(self, input: Tensor) -> Tensor:
        return pad(input, self.padding, mode="constant", value=self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    r"""Pad the last dim with ``value`` (left, right).

    Example::

        >>> nn.ConstantPad1d(2, 3.5)(ember.zeros(1, 2, 4)).shape
        ember.Size([1, 2, 8])
    """

    _dims = 1


class ConstantPad2d(_ConstantPadNd):
    r"""Pad the last two dims with ``value`` (left, right, top, bottom)."""

    _dims = 2


class ConstantPad3d(_ConstantPadNd):
    r"""Pad the last three dims with ``value`` (left, right, top, bottom, front, back)."""

    _dims = 3


class _ZeroPad:
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad1d(_ZeroPad, ConstantPad1d):
    r"""Pad the last dim with zeros.

    Example::

        >>> nn.ZeroPad1d((1, 2))(ember.ones(1, 3)).shape
        ember.Size([1, 6])
    """


class ZeroPad2d(_ZeroPad, ConstantPad2d):
    r"""Pad the last two dims with zeros (left, right, top, bottom).

    Example::

        >>> nn.ZeroPad2d(1)(ember.ones(1, 1, 2, 2)).shape
        ember.Size([1, 1, 4, 4])
    """


class ZeroPad3d(_ZeroPad, ConstantPad3d):
    r"""Pad the last three dims with zeros."""


class ReflectionPad1d(_PadNd):
    r"""Pad the last dim with its reflection (the edge value is not repeated).

    Example::

        >>> nn.ReflectionPad1d(2)(ember.arange(4.0).reshape(1, 1, 4))
        tensor([[[2., 1., 0., 1., 2., 3., 2., 1.]]])
    """

    _dims, _mode = 1, "reflect"


class ReflectionPad2d(_PadNd):
    r"""Pad the last two dims with their reflection (left, right, top, bottom)."""

    _dims, _mode = 2, "reflect"


class ReflectionPad3d(_PadNd):
    r"""Pad the last three dims with their reflection."""

    _dims, _mode = 3, "reflect"


class ReplicationPad1d(_PadNd):
    r"""Pad the last dim by repeating its edge values."""

    _dims, _mode = 1, "replicate"


class ReplicationPad2d(_PadNd):
    r"""Pad the last two dims by repeating their edge values (left, right, top, bottom)."""

    _dims, _mode = 2, "replicate"


class ReplicationPad3d(_PadNd):
    r"""Pad the last three dims by repeating their edge values."""

    _dims, _mode = 3, "replicate"


class CircularPad1d(_PadNd):
    r"""Pad the last dim by wrapping around (periodic boundary)."""

    _dims, _mode = 1, "circular"


class CircularPad2d(_PadNd):
    r"""Pad the last two dims by wrapping around (left, right, top, bottom)."""

    _dims, _mode = 2, "circular"


class CircularPad3d(_PadNd):
    r"""Pad the last three dims by wrapping around."""

    _dims, _mode = 3, "circular"
