"""Pooling layers: ``MaxPool1d/2d/3d``, ``AvgPool1d/2d/3d``, the adaptive pools and
``MaxUnpool1d/2d/3d``."""

from __future__ import annotations

from ..ops import pool, pool3d, pool_adaptive
from ..tensor import Tensor
from .module import Module


class _MaxPoolNd(Module):
    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    r"""1-d max pooling over (N, C, L); ``stride`` defaults to ``kernel_size``.

    Example::

        >>> nn.MaxPool1d(2)(ember.randn(1, 3, 8)).shape
        ember.Size([1, 3, 4])
    """

    def forward(self, input: Tensor):
        return pool.max_pool1d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class MaxPool2d(_MaxPoolNd):
    r"""2-d max pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``.

    Example::

        >>> nn.MaxPool2d(2)(ember.randn(1, 3, 8, 8)).shape
        ember.Size([1, 3, 4, 4])
    """

    def forward(self, input: Tensor):
        return pool.max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class MaxPool3d(_MaxPoolNd):
    r"""3-d max pooling over (N, C, D, H, W); ``stride`` defaults to ``kernel_size``.

    Example::

        >>> nn.MaxPool3d(2)(ember.randn(1, 3, 4, 4, 4)).shape
        ember.Size([1, 3, 2, 2, 2])
    """

    def forward(self, input: Tensor):
        return pool3d.max_pool3d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class AvgPool1d(Module):
    r"""1-d average pooling over (N, C, L).

    Example::

        >>> nn.AvgPool1d(2)(ember.randn(1, 3, 8)).shape
        ember.Size([1, 3, 4])
    """

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ):
        super().__init__()
        single = lambda v: tuple(v) if isinstance(v, tuple | list) else (v,)  # noqa: E731
        self.kernel_size = single(kernel_size)
        self.stride = single(stride if stride is not None else kernel_size)
        self.padding = single(padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input: Tensor) -> Tensor:
        return pool.avg_pool1d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )


class AvgPool2d(Module):
    r"""2-d average pooling over (N, C, H, W).

    Example::

        >>> nn.AvgPool2d(3, stride=2, padding=1)(ember.randn(1, 3, 8, 8)).shape
        ember.Size([1, 3, 4, 4])
    """

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override=None,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input: Tensor) -> Tensor:
        return pool.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class AvgPool3d(AvgPool2d):
    r"""3-d average pooling over (N, C, D, H, W).

    Example::

        >>> nn.AvgPool3d(2)(ember.randn(1, 3, 4, 4, 4)).shape
        ember.Size([1, 3, 2, 2, 2])
    """

    def forward(self, input: Tensor) -> Tensor:
        return pool3d.avg_pool3d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class AdaptiveAvgPool1d(Module):
    r"""Average pooling to a fixed length.

    Example::

        >>> nn.AdaptiveAvgPool1d(5)(ember.randn(1, 64, 8)).shape
        ember.Size([1, 64, 5])
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def forward(self, input: Tensor) -> Tensor:
        return pool_adaptive.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(AdaptiveAvgPool1d):
    r"""Average pooling to a fixed (H, W); None keeps that size.

    Example::

        >>> nn.AdaptiveAvgPool2d((5, 7))(ember.randn(1, 64, 8, 9)).shape
        ember.Size([1, 64, 5, 7])
    """

    def forward(self, input: Tensor) -> Tensor:
        return pool_adaptive.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveAvgPool3d(AdaptiveAvgPool1d):
    r"""Average pooling to a fixed (D, H, W); None keeps that size.

    Example::

        >>> nn.AdaptiveAvgPool3d(1)(ember.randn(1, 8, 4, 5, 6)).shape
        ember.Size([1, 8, 1, 1, 1])
    """

    def forward(self, input: Tensor) -> Tensor:
        return pool3d.adaptive_avg_pool3d(input, self.output_size)


class AdaptiveMaxPool1d(Module):
    r"""Max pooling to a fixed length; ``return_indices`` also gives the argmax positions.

    Example::

        >>> nn.AdaptiveMaxPool1d(5)(ember.randn(1, 64, 8)).shape
        ember.Size([1, 64, 5])
    """

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def forward(self, input: Tensor):
        return pool_adaptive.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(AdaptiveMaxPool1d):
    r"""Max pooling to a fixed (H, W); None keeps that size.

    Example::

        >>> nn.AdaptiveMaxPool2d((5, 7))(ember.randn(1, 64, 8, 9)).shape
        ember.Size([1, 64, 5, 7])
    """

    def forward(self, input: Tensor):
        return pool_adaptive.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool3d(AdaptiveMaxPool1d):
    r"""Max pooling to a fixed (D, H, W); None keeps that size.

    Example::

        >>> nn.AdaptiveMaxPool3d(2)(ember.randn(1, 8, 4, 5, 6)).shape
        ember.Size([1, 8, 2, 2, 2])
    """

    def forward(self, input: Tensor):
        return pool3d.adaptive_max_pool3d(input, self.output_size, self.return_indices)


class _MaxUnpoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        n = self._dims
        as_tuple = lambda v: tuple(v) if isinstance(v, tuple | list) else (v,) * n  # noqa: E731
        self.kernel_size = as_tuple(kernel_size)
        self.stride = as_tuple(stride if stride is not None else kernel_size)
        self.padding = as_tuple(padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input: Tensor, indices: Tensor, output_size=None) -> Tensor:
        unpool = (pool3d.max_unpool1d, pool3d.max_unpool2d, pool3d.max_unpool3d)[self._dims - 1]
        return unpool(input, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxUnpool1d(_MaxUnpoolNd):
    r"""Inverse of ``MaxPool1d``: values go back to the indices it returned.

    Example::

        >>> y, idx = nn.MaxPool1d(2, return_indices=True)(ember.randn(1, 1, 8))
        >>> nn.MaxUnpool1d(2)(y, idx).shape
        ember.Size([1, 1, 8])
    """

    _dims = 1


class MaxUnpool2d(_MaxUnpoolNd):
    r"""Inverse of ``MaxPool2d``: values go back to the indices it returned, zeros elsewhere.

    Example::

        >>> y, idx = nn.MaxPool2d(2, return_indices=True)(ember.randn(1, 1, 4, 4))
        >>> nn.MaxUnpool2d(2)(y, idx).shape
        ember.Size([1, 1, 4, 4])
    """

    _dims = 2


class MaxUnpool3d(_MaxUnpoolNd):
    r"""Inverse of ``MaxPool3d``: values go back to the indices it returned."""

    _dims = 3
