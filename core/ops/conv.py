"""Convolutions (1-d / 2-d, transposed).

A convolution is im2col plus a GEMM batched over (images, groups): the padded input
is viewed as windows through ``as_strided`` (no copy) and each cache-sized chunk of
images is copied to columns and multiplied in one ``matmul``. Backward recomputes the
columns chunk by chunk for the weight gradient; the input gradient is col2im, a
scatter-add of the column gradient with one strided slice per kernel offset. 1-d
convolutions run as 2-d ones with a height of 1; unbatched inputs get a batch of 1.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import array_matmul, check_same_device, xp_of
from .conv_nd import ConvNd, ConvNdWeightGrad, ConvParams, _conv_grads, transposed_conv
from .declare import declared
from .im2col import _as_4d, _col2im, _Geometry, _windows, conv_blocks, gemm_parallel_for

# -- ops ----------------------------------------------------------------------------------


class Convolution(Function):
    autocast, differentiable_backward = "lower", True  # backward through conv_nd's ops

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, spatial):
        x_shape, w_shape = x.shape, weight.shape
        x_in, w_in = x, weight
        x = _as_4d(x, spatial)
        weight = _as_4d(weight, spatial) if spatial == 1 else weight
        xp = xp_of(x)
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        # The flat layout pays off when the columns (cg*kh*kw rows) outweigh the output
        # (o rows) that carries its junk columns.
        geo = _Geometry((h, w), (kh, kw), stride, padding, dilation, flat=cg * kh * kw >= o)
        (pt, pb), (pl, pr) = padding
        padded = (pt, pb, pl, pr) != (0, 0, 0, 0) or geo.wq != w
        xpd = xp.zeros((n, c, geo.hp, geo.wq), x.dtype) if padded else x
        k, span, og = cg * kh * kw, geo.span, o // groups
        wmat = weight.reshape(groups, og, k)
        windows = geo.windows(xpd)
        y = xp.empty((n, groups, og, geo.ho, geo.wo), x.dtype)
        y4 = y.reshape(n, o, geo.ho, geo.wo)
        step = conv_blocks(n, c * kh * kw * span, xp)

        def blocks(first, last):
            a, e = first * step, min(n, last * step)
            if padded:
                xpd[a:e, :, pt : pt + h, pl : pl + w] = x[a:e]
            # With junk columns each block's GEMM goes to a small cached buffer and only
            # the valid columns are copied out (no second full-size output).
            junk = None
            if geo.wr != geo.wo:
                junk = xp.empty((step, groups, og, geo.ho, geo.wr), x.dtype)
            for b in range(a, e, step):
                cols = windows[b : b + step].reshape(-1, groups, k, span)
                if junk is None:
                    array_matmul(wmat, cols, out=y[b : b + step].reshape(-1, groups, og, span))
                else:
                    buf = junk[: cols.shape[0]]
                    array_matmul(
                        wmat, cols, out=buf.reshape(-1, groups, og, geo.ho * geo.wr)[..., :span]
                    )
                    y[b : b + step] = buf[..., : geo.wo]
            if bias is not None:
                y4[a:e] += bias.reshape(o, 1, 1)

        gemm_parallel_for(blocks, -(-n // step), step * c * kh * kw * span, xp)
        ctx.save_for_backward(xpd, wmat, x_in, w_in)
        ctx.meta = (x_shape, w_shape, (h, w), geo, padding, step)
        if len(x_shape) == spatial + 1:
            y4 = y4[0]
        return y4.reshape(y4.shape[:-2] + (geo.wo,)) if spatial == 1 else y4

    @staticmethod
    def backward(ctx, grad):
        xpd, wmat, x_in, w_in = ctx.saved_tensors
        if isinstance(grad, Tensor):
            return _conv_backward_graph(ctx, grad, x_in, w_in, wmat.shape[0])
        x_shape, w_shape, (h, w), geo, ((pt, _), (pl, _)), step = ctx.meta
        xp = xp_of(grad)
        n, c = xpd.shape[:2]
        groups, og, k = wmat.shape
        o, span, kk = groups * og, geo.span, geo.kernel[0] * geo.kernel[1]
        grad4 = grad.reshape(n, o, geo.ho, geo.wo)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        n_blocks = -(-n // step)
        # Unit-stride single-group convolutions scatter in channels-last order: every
        # kernel offset's add is then one contiguous block (NumPy's 2-d strided adds are
        # several times slower).
        channels_last = need_x and geo.flat and groups == 1 and geo.stride == (1, 1)
        gx = gw = gb = None
        if channels_last:
            gx = xp.empty((n, c, h, w), grad.dtype)
            # (o, kh*kw*c): one GEMM per image gives every offset's column gradients
            w_offsets = xp.ascontiguousarray(wmat.reshape(o, c, kk).transpose(0, 2, 1))
            w_offsets = w_offsets.reshape(o, kk * c)
        elif need_x:
            gx = xp.empty(xpd.shape, grad.dtype)  # zeroed per block, on its thread
        # Per-block partial sums of the batch reductions, added in block order at the end.
        # The weight gradient is accumulated transposed: columns @ gy^T is the faster GEMM.
        gw_parts = xp.empty((n_blocks, groups, k, og), grad.dtype) if need_w else None
        gb_parts = xp.empty((n_blocks, o), grad.dtype) if need_b else None
        windows = geo.windows(xpd)
        wmat_t = wmat.swapaxes(-1, -2)

        def blocks(first, last):
            # Per-thread scratch of one block, reused block after block (it stays in cache,
            # and a first step faults in a few blocks' worth of memory instead of the batch):
            # the gradient widened by its junk columns (zero, so they feed no gradient) and
            # the channels-last input gradient.
            junk = last_rows = None
            if geo.wr != geo.wo:
                junk = xp.zeros((step, o, geo.ho, geo.wr), grad.dtype)
            if channels_last:
                last_rows = xp.empty((step, geo.hp * geo.wq, c), grad.dtype)
            for i in range(first, last):
                images = slice(i * step, min(n, (i + 1) * step))
                nb = images.stop - images.start
                if junk is not None:
                    junk[:nb, ..., : geo.wo] = grad4[images]
                    gy_b = junk[:nb].reshape(nb, groups, og, -1)[..., :span]
                else:
                    gy_b = grad4[images].reshape(nb, groups, og, span)
                if need_b:
                    grad4[images].sum(axis=(0, 2, 3), out=gb_parts[i])
                if need_w:
                    cols = windows[images].reshape(-1, groups, k, span)
                    array_matmul(cols, gy_b.swapaxes(-1, -2)).sum(0, out=gw_parts[i])
                if channels_last:
                    block = last_rows[:nb]
                    block[...] = 0
                    gcols = array_matmul(gy_b[:, 0].swapaxes(-1, -2), w_offsets)
                    geo.col2im_channels_last(gcols.reshape(-1, span, kk, c), block)
                    block = block.reshape(nb, geo.hp, geo.wq, c).transpose(0, 3, 1, 2)
                    gx[images] = block[:, :, pt : pt + h, pl : pl + w]
                elif need_x:
                    gx[images] = 0
                    gcols = array_matmul(wmat_t, gy_b)
                    geo.col2im(gcols.reshape((-1, c) + geo.kernel + (span,)), gx[images])

        if need_x or need_w or need_b:
            gemm_parallel_for(blocks, n_blocks, step * k * groups * span, xp)
        if channels_last:
            gx = gx.reshape(x_shape)
        elif need_x:
            gx = gx[:, :, pt : pt + h, pl : pl + w].reshape(x_shape)
        if need_w:
            gw = gw_parts.sum(0).swapaxes(-1, -2).reshape(w_shape)
        if need_b:
            gb = gb_parts.sum(0)
        return gx, gw, gb


def _conv_backward_graph(ctx, grad, x, weight, groups):
    """Convolution's backward under create_graph, recorded with conv_nd's ops."""
    x_shape, w_shape, (h, w), geo, padding, _ = ctx.meta
    c = w_shape[1] * groups
    n = x.numel() // (c * h * w)
    o = w_shape[0]
    x4 = x.reshape(n, c, h, w)
    w4 = weight.reshape(o, w_shape[1], *geo.kernel)
    g4 = grad.reshape(n, o, geo.ho, geo.wo)
    params = ConvParams(geo.stride, padding, geo.dilation, groups)
    gx, gw = _conv_grads(ctx, g4, x4, w4, params)
    gb = g4.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
    return (
        None if gx is None else gx.reshape(x_shape),
        None if gw is None else gw.reshape(w_shape),
        gb,
    )


class ConvolutionTranspose(Function):
    autocast, differentiable_backward = "lower", True  # backward through conv_nd's ops

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, dilation, groups, spatial):
        x_shape, w_shape = x.shape, weight.shape
        x_in, w_in = x, weight
        x = _as_4d(x, spatial)
        weight = _as_4d(weight, spatial) if spatial == 1 else weight
        xp = xp_of(x)
        n, c, h, w = x.shape
        _, og, kh, kw = weight.shape
        o = og * groups
        out_hw, buf_hw = [], []
        for size, kern, s, p, op, d in zip(
            (h, w), (kh, kw), stride, padding, output_padding, dilation
        ):
            full = (size - 1) * s + d * (kern - 1) + 1
            out_hw.append(full - 2 * p + op)
            buf_hw.append(max(full, p + full - 2 * p + op))
        xmat = x.reshape(n, groups, c // groups, h * w)
        wmat = weight.reshape(groups, c // groups, og * kh * kw)
        buf = xp.zeros((n, o, buf_hw[0], buf_hw[1]), x.dtype)

        def images(a, e):
            gcols = array_matmul(wmat.swapaxes(-1, -2), xmat[a:e])
            _col2im(gcols.reshape(e - a, o, kh, kw, h, w), buf[a:e], stride, dilation)

        gemm_parallel_for(images, n, o * kh * kw * h * w, xp)
        (pt, pl), (ho, wo) = padding, out_hw
        y = buf[:, :, pt : pt + ho, pl : pl + wo]
        if bias is not None:
            y = y + bias.reshape(o, 1, 1)
        ctx.save_for_backward(xmat, wmat, x_in, w_in)
        ctx.meta = (x_shape, w_shape, (n, o, buf_hw[0], buf_hw[1]), (kh, kw), (h, w))
        ctx.params = (stride, padding, dilation)
        if len(x_shape) == spatial + 1:
            y = y[0]
        return y.reshape(y.shape[:-2] + (wo,)) if spatial == 1 else y

    @staticmethod
    def backward(ctx, grad):
        xmat, wmat, x_in, w_in = ctx.saved_tensors
        x_shape, w_shape, buf_shape, kernel, in_hw = ctx.meta
        stride, (pt, pl), dilation = ctx.params
        if isinstance(grad, Tensor):
            return _conv_transpose_backward_graph(ctx, grad, x_in, w_in, wmat.shape[0])
        xp = xp_of(grad)
        n, groups = xmat.shape[:2]
        gy = grad.reshape(buf_shape[0], buf_shape[1], -1, grad.shape[-1])
        buf = xp.zeros(buf_shape, grad.dtype)
        windows = _windows(buf, kernel, in_hw, stride, dilation)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        image_cols = windows[0].size
        # CUDA: the whole batch in one GEMM, as one block
        step = conv_blocks(n, image_cols) if xp is np else max(n, 1)
        gx = xp.empty(xmat.shape, grad.dtype) if need_x else None
        # per-block partial sums of the weight gradient, added in block order at the end
        gw_parts = xp.empty((-(-n // step),) + wmat.shape, grad.dtype) if need_w else None

        def blocks(first, last):
            for i in range(first, last):
                a, e = i * step, min(n, (i + 1) * step)
                buf[a:e, :, pt : pt + gy.shape[2], pl : pl + gy.shape[3]] = gy[a:e]
                cols = windows[a:e].reshape(e - a, groups, -1, xmat.shape[3])
                if need_x:
                    array_matmul(wmat, cols, out=gx[a:e])
                if need_w:
                    array_matmul(xmat[a:e], cols.swapaxes(-1, -2)).sum(0, out=gw_parts[i])

        if need_x or need_w:
            gemm_parallel_for(blocks, -(-n // step), step * image_cols, xp)
        gx = None if gx is None else gx.reshape(x_shape)
        gw = None if gw_parts is None else gw_parts.sum(0).reshape(w_shape)
        gb = gy.sum(axis=(0, 2, 3)) if need_b else None
        return gx, gw, gb


def _conv_transpose_backward_graph(ctx, grad, x, weight, groups):
    """ConvolutionTranspose's backward under create_graph: the transposed convolution
    is conv_nd's input gradient, so its gradients are a convolution and a weight grad."""
    x_shape, w_shape, (n, o, _, _), kernel, (h, w) = ctx.meta
    stride, (pt, pl), dilation = ctx.params
    x4 = x.reshape(n, w_shape[0], h, w)
    w4 = weight.reshape(w_shape[0], w_shape[1], *kernel)
    g4 = grad.reshape(n, o, -1, grad.shape[-1])
    params = ConvParams(stride, ((pt, pt), (pl, pl)), dilation, groups)
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:
        gx = ConvNd.apply(g4, w4, None, params=params)[:, :, :h, :w].reshape(x_shape)
    if ctx.needs_input_grad[1]:
        gw = ConvNdWeightGrad.apply(g4, x4, w_shape=tuple(w4.shape), params=params)
        gw = gw.reshape(w_shape)
    if ctx.needs_input_grad[2]:
        gb = g4.sum((0, 2, 3))
    return gx, gw, gb


# -- functional wrappers ------------------------------------------------------------------


def _tuple(value, n, name):
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    if len(value) == 1:
        return value * n
    if len(value) != n or not all(isinstance(v, int) for v in value):
        raise ValueError(
            f"expected {name} to be a single integer or a list of {n} integers, got {value}"
        )
    return value


def _check_operands(op, input, weight, bias, spatial):
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(
            f"{op}(): argument 'input' and 'weight' must be Tensor, not "
            f"{type(input).__name__} and {type(weight).__name__}"
        )
    if input.ndim not in (spatial + 1, spatial + 2):
        raise RuntimeError(
            f"Expected {spatial + 1}D (unbatched) or {spatial + 2}D (batched) input to {op}, "
            f"but got input of size: {list(input.shape)}"
        )
    if weight.ndim != spatial + 2:
        raise RuntimeError(
            f"{op}: expected weight to be {spatial + 2}-dimensional, but got weight of size "
            f"{list(weight.shape)}"
        )
    for other, name in ((weight, "weight"), (bias, "bias")):
        if other is not None and other.dtype != input.dtype:
            raise RuntimeError(
                f"Input type ({input.dtype}) and {name} type ({other.dtype}) should be the same"
            )
    check_same_device(op, input, weight, bias)


def _conv(op, spatial, input, weight, bias, stride, padding, dilation, groups):
    _check_operands(op, input, weight, bias, spatial)
    stride = _tuple(stride, spatial, "stride")
    dilation = _tuple(dilation, spatial, "dilation")
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"non-positive stride is not supported, got {stride}")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero, got {dilation}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    kernel = weight.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * spatial
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
        else:
            raise ValueError(
                f"Invalid padding string '{padding}', should be one of ['valid', 'same']"
            )
    else:
        pads = [(p, p) for p in _tuple(padding, spatial, "padding")]
        if any(p < 0 for p, _ in pads):
            raise RuntimeError("negative padding is not supported")
    channels = input.shape[-spatial - 1]
    out_channels = weight.shape[0]
    if out_channels % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size {list(weight.shape)} instead"
        )
    if channels != weight.shape[1] * groups:
        shown = list(input.shape) if input.ndim == spatial + 2 else [1, *input.shape]
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
            f"input{shown} to have {weight.shape[1] * groups} channels, but got "
            f"{channels} channels instead"
        )
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise RuntimeError(
            f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
            f"{out_channels} elements, but got bias of size {list(bias.shape)} instead"
        )
    padded = [s + a + b for s, (a, b) in zip(input.shape[-spatial:], pads)]
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(p < s for p, s in zip(padded, span)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
            f"Kernel size: ({' x '.join(map(str, span))}). Kernel size can't be greater than "
            "actual input size"
        )
    if spatial == 3:
        batched = input.ndim == 5
        y = ConvNd.apply(
            input if batched else input.unsqueeze(0),
            weight,
            bias,
            params=ConvParams(stride, pads, dilation, groups),
        )
        return y if batched else y.squeeze(0)
    if spatial == 1:
        stride, dilation, pads = (1, *stride), (1, *dilation), [(0, 0), *pads]
    return Convolution.apply(
        input,
        weight,
        bias,
        stride=stride,
        padding=tuple(pads),
        dilation=dilation,
        groups=groups,
        spatial=spatial,
    )


@declared(Convolution, method=False)
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    r"""1-d convolution over an input of shape (N, C_in, L) or (C_in, L).

    Args:
        weight: (C_out, C_in / groups, kW). padding: int, tuple, 'valid' or 'same'.

    Example::

        >>> F.conv1d(ember.randn(2, 4, 10), ember.randn(8, 4, 3), padding="same").shape
        ember.Size([2, 8, 10])
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


@declared(Convolution, method=False)
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    r"""2-d convolution over an input of shape (N, C_in, H, W) or (C_in, H, W).

    Args:
        weight: (C_out, C_in / groups, kH, kW). padding: int, tuple, 'valid' or 'same'.

    Example::

        >>> F.conv2d(ember.randn(1, 3, 8, 8), ember.randn(4, 3, 3, 3)).shape
        ember.Size([1, 4, 6, 6])
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(
    op, spatial, input, weight, bias, stride, padding, output_padding, groups, dilation
):
    _check_operands(op, input, weight, bias, spatial)
    stride = _tuple(stride, spatial, "stride")
    padding = _tuple(padding, spatial, "padding")
    output_padding = _tuple(output_padding, spatial, "output_padding")
    dilation = _tuple(dilation, spatial, "dilation")
    if any(s <= 0 for s in stride) or any(d <= 0 for d in dilation) or groups <= 0:
        raise RuntimeError(
            f"{op}: stride, dilation and groups must be positive, got stride={stride}, "
            f"dilation={dilation}, groups={groups}"
        )
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= max(s, d) or op_ < 0:
            raise RuntimeError(
                f"output padding must be smaller than either stride or dilation, but got "
                f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
            )
    channels = input.shape[-spatial - 1]
    if weight.shape[0] != channels or channels % groups:
        shown = list(input.shape) if input.ndim == spatial + 2 else [1, *input.shape]
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected input{shown} "
            f"to have {weight.shape[0]} channels, but got {channels} channels instead"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[1] * groups,):
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be "
            f"1-dimensional with {weight.shape[1] * groups} elements, but got bias of size "
            f"{list(bias.shape)} instead"
        )
    sizes = input.shape[-spatial:]
    out = [
        (n - 1) * s - 2 * p + d * (k - 1) + op_ + 1
        for n, s, p, d, k, op_ in zip(
            sizes, stride, padding, dilation, weight.shape[2:], output_padding
        )
    ]
    if any(o <= 0 for o in out):
        raise RuntimeError(
            f"{op}: calculated output size {out} is too small for input {list(input.shape)}"
        )
    if spatial == 3:
        batched = input.ndim == 5
        params = ConvParams(stride, [(p, p) for p in padding], dilation, groups)
        x = input if batched else input.unsqueeze(0)
        y = transposed_conv(x, weight, bias, out, params)
        return y if batched else y.squeeze(0)
    if spatial == 1:
        stride, padding, output_padding, dilation = (
            (1, *stride),
            (0, *padding),
            (0, *output_padding),
            (1, *dilation),
        )
    return ConvolutionTranspose.apply(
        input,
        weight,
        bias,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
        spatial=spatial,
    )


@declared(ConvolutionTranspose, method=False)
def conv_transpose1d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    r"""1-d transposed convolution ("deconvolution"); weight is (C_in, C_out / groups, kW)."""
    return _conv_transpose(
        "conv_transpose1d",
        1,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )


@declared(ConvolutionTranspose, method=False)
def conv_transpose2d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    r"""2-d transposed convolution, the gradient of ``conv2d`` with respect to its input.

    Args:
        weight: (C_in, C_out / groups, kH, kW).

    Example::

        >>> F.conv_transpose2d(ember.randn(1, 4, 5, 5), ember.randn(4, 2, 3, 3), stride=2).shape
        ember.Size([1, 2, 11, 11])
    """
    return _conv_transpose(
        "conv_transpose2d",
        2,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )
