"""3-d convolution and transposed 3-d convolution (the functional forms); they run on
conv_nd's ops after conv.py's argument checks. Not on ember's autocast lists (PyTorch
lists them; ember has never cast them), so declared with no Function policy."""

from __future__ import annotations

from ..tensor import Tensor
from .conv import _conv, _conv_transpose
from .declare import declared


@declared(None, method=False)
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    r"""3-d convolution over an input of shape (N, C_in, D, H, W) or (C_in, D, H, W).

    Args:
        weight: (C_out, C_in / groups, kD, kH, kW). padding: int, triple, 'valid' or 'same'.

    Example::

        >>> F.conv3d(ember.randn(1, 2, 6, 6, 6), ember.randn(4, 2, 3, 3, 3)).shape
        ember.Size([1, 4, 4, 4, 4])
    """
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


@declared(None, method=False)
def conv_transpose3d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    r"""3-d transposed convolution, the gradient of ``conv3d`` with respect to its input.

    Args:
        weight: (C_in, C_out / groups, kD, kH, kW).

    Example::

        >>> F.conv_transpose3d(ember.randn(1, 4, 3, 3, 3), ember.randn(4, 2, 2, 2, 2), stride=2).shape
        ember.Size([1, 2, 6, 6, 6])
    """
    return _conv_transpose(
        "conv_transpose3d",
        3,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )
