"""``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``."""

from __future__ import annotations

import math

from .. import creation
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from ..ops.conv3d import conv3d, conv_transpose3d
from ..ops.pad import pad
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, n):
    return tuple(value) if isinstance(value, tuple | list) else (value,) * n


class _ConvNd(Module):
    """The convolution layers' common state, parameters and initialisation, with
    ``ConvNd``'s signature. Subclasses set ``_dims`` and ``forward``; the transposed
    layers set ``_transposed`` (weight laid out (C_in, C_out / groups, k...)) and their
    ``output_padding``."""

    _dims = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        super().__init__()
        n = self._dims
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {list(_PADDING_MODES)}, but got "
                f"padding_mode='{padding_mode}'"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride, n)
        self.dilation = _ntuple(dilation, n)
        self.transposed = transposed = self._transposed
        self.output_padding = (0,) * n
        self.groups, self.padding_mode = groups, padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Invalid padding string '{padding}', should be one of ['valid', 'same']"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, n)
        # F.pad amounts (last dim first) for the non-zero padding modes
        if padding == "same":
            amounts = []
            for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                total = d * (k - 1)
                amounts += [total // 2, total - total // 2]
            self._reversed_padding_repeated_twice = amounts
        elif padding == "valid":
            self._reversed_padding_repeated_twice = [0, 0] * n
        else:
            self._reversed_padding_repeated_twice = [
                p for p in reversed(self.padding) for _ in (0, 1)
            ]
        factory = {"device": device, "dtype": dtype}
        shape = (
            (in_channels, out_channels // groups)
            if transposed
            else (out_channels, in_channels // groups)
        )
        self.weight = Parameter(creation.empty(shape + self.kernel_size, **factory))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        n = self._dims
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def _conv_forward(self, input, conv):
        if self.padding_mode != "zeros":
            input = pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return conv(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class Conv1d(_ConvNd):
    r"""1-d convolution over (N, C_in, L): weight (C_out, C_in / groups, k), bias (C_out).

    Initialised like PyTorch (``kaiming_uniform_(a=sqrt(5))``, bias U(±1/sqrt(fan_in))).

    Example::

        >>> nn.Conv1d(16, 33, 3, stride=2)(ember.randn(20, 16, 50)).shape
        ember.Size([20, 33, 24])
    """

    _dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, conv1d)


class Conv2d(_ConvNd):
    r"""2-d convolution over (N, C_in, H, W): weight (C_out, C_in / groups, kH, kW).

    Args:
        padding: int, pair, 'valid' or 'same'. padding_mode: 'zeros', 'reflect',
            'replicate' or 'circular'.

    Example::

        >>> nn.Conv2d(3, 8, 3, padding=1)(ember.randn(2, 3, 16, 16)).shape
        ember.Size([2, 8, 16, 16])
    """

    _dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, conv2d)


class Conv3d(_ConvNd):
    r"""3-d convolution over (N, C_in, D, H, W): weight (C_out, C_in / groups, kD, kH, kW).

    Example::

        >>> nn.Conv3d(2, 4, 3, padding=1)(ember.randn(1, 2, 5, 6, 7)).shape
        ember.Size([1, 4, 5, 6, 7])
    """

    _dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, conv3d)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__} does not support string padding '{padding}'")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )
        self.output_padding = _ntuple(output_padding, self._dims)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        n = self._dims
        output_size = list(output_size)[-n:]
        if len(output_size) != n:
            raise ValueError(
                f"output_size must have {n} or {n + 2} elements (got {len(output_size)})"
            )
        result = []
        for i in range(n):
            size = input.shape[-n + i]
            smallest = (
                (size - 1) * self.stride[i]
                - 2 * self.padding[i]
                + self.dilation[i] * (self.kernel_size[i] - 1)
                + 1
            )
            largest = smallest + max(self.stride[i], self.dilation[i]) - 1
            if not smallest <= output_size[i] <= largest:
                raise ValueError(
                    f"requested an output size of {output_size}, but valid sizes range from "
                    f"{smallest} to {largest} (for an input of {list(input.shape[-n:])})"
                )
            result.append(output_size[i] - smallest)
        return tuple(result)

    def _transpose_forward(self, input, output_size, conv):
        output_padding = self._output_padding(input, output_size)
        return conv(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


class ConvTranspose1d(_ConvTransposeNd):
    r"""1-d transposed convolution: weight (C_in, C_out / groups, k).

    Example::

        >>> nn.ConvTranspose1d(4, 2, 3, stride=2)(ember.randn(1, 4, 5)).shape
        ember.Size([1, 2, 11])
    """

    _dims = 1

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        return self._transpose_forward(input, output_size, conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    r"""2-d transposed convolution: weight (C_in, C_out / groups, kH, kW).

    ``forward(input, output_size)`` picks the output padding that yields ``output_size``.

    Example::

        >>> up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1)
        >>> up(ember.randn(1, 16, 12, 12), output_size=[24, 24]).shape
        ember.Size([1, 8, 24, 24])
    """

    _dims = 2

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        return self._transpose_forward(input, output_size, conv_transpose2d)


class ConvTranspose3d(_ConvTransposeNd):
    r"""3-d transposed convolution: weight (C_in, C_out / groups, kD, kH, kW).

    Example::

        >>> nn.ConvTranspose3d(4, 2, 2, stride=2)(ember.randn(1, 4, 3, 3, 3)).shape
        ember.Size([1, 2, 6, 6, 6])
    """

    _dims = 3

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        return self._transpose_forward(input, output_size, conv_transpose3d)
