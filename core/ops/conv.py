"""Convolutions (1-d / 2-d, transposed).

A convolution is im2col plus a GEMM batched over (images, groups): the padded input
is viewed as windows through ``as_strided`` (no copy) and each cache-sized chunk of
images is copied to columns and multiplied in one ``matmul``. Backward recomputes the
columns chunk by chunk for the weight gradient; the input gradient is col2im, a
scatter-add of the column gradient with one strided slice per kernel offset. 1-d
convolutions run as 2-d ones with a height of 1; unbatched inputs get a batch of 1.
"""

from __future__ import annotations

from ..amp import _state as _autocast
from ..amp import cast_for
from ..autograd import Function
from ..tensor import Tensor
from ._util import array_matmul, check_same_device, xp_of

# -- im2col / col2im ----------------------------------------------------------------------


def _windows(xpd, kernel, out_hw, stride, dilation):
    """View of ``xpd`` (N, C, H, W) as (N, C, kh, kw, Ho, Wo) windows, without copying."""
    xp = xp_of(xpd)
    n, c = xpd.shape[:2]
    s_n, s_c, s_h, s_w = xpd.strides
    shape = (n, c, kernel[0], kernel[1], out_hw[0], out_hw[1])
    strides = (s_n, s_c, s_h * dilation[0], s_w * dilation[1], s_h * stride[0], s_w * stride[1])
    return xp.lib.stride_tricks.as_strided(xpd, shape, strides)


def _col2im(gcols, out, stride, dilation):
    """Scatter-add (N, C, kh, kw, Ho, Wo) columns into ``out`` (N, C, H, W), in place."""
    _, _, kh, kw, ho, wo = gcols.shape
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        for j in range(kw):
            r, c = i * dh, j * dw
            out[:, :, r : r + sh * (ho - 1) + 1 : sh, c : c + sw * (wo - 1) + 1 : sw] += gcols[
                :, :, i, j
            ]
    return out


def _col2im_flat(gcols, out, stride_w, dilation):
    """``_col2im`` for the flat-row layout (row stride 1): each offset is one long run."""
    n, c, kh, kw, span = gcols.shape
    width = out.shape[3]
    flat = out.reshape(n, c, -1)
    last = stride_w * (span - 1) + 1
    for i in range(kh):
        for j in range(kw):
            start = i * dilation[0] * width + j * dilation[1]
            flat[:, :, start : start + last : stride_w] += gcols[:, :, i, j]


class _Geometry:
    """Where a convolution's windows lie in its padded input.

    When rows are adjacent (height stride 1) each padded image is read as one flat row:
    a kernel offset's window is then a single long strided run (fast to copy and to
    scatter back), at the cost of ``wr - wo`` junk columns per output row.
    """

    def __init__(self, x_hw, kernel, stride, padding, dilation, flat=True):
        (h, w), (kh, kw) = x_hw, kernel
        (pt, pb), (pl, pr) = padding
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.hp, wp = h + pt + pb, w + pl + pr
        self.ho = _out_size(self.hp, kh, stride[0], dilation[0])
        self.wo = _out_size(wp, kw, stride[1], dilation[1])
        self.flat = flat and stride[0] == 1
        if self.flat:
            self.wq = -(-wp // stride[1]) * stride[1]
            self.wr = self.wq // stride[1]
            self.span = (self.ho - 1) * self.wr + self.wo
        else:
            self.wq, self.wr, self.span = wp, self.wo, self.ho * self.wo

    def windows(self, xpd):
        """A copy-free view of the padded input's windows, (N, C, kh, kw, ...span)."""
        if not self.flat:
            return _windows(xpd, self.kernel, (self.ho, self.wo), self.stride, self.dilation)
        n, c = xpd.shape[:2]
        flat = xpd.reshape(n, c, -1)
        s_n, s_c, s_x = flat.strides
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        shape = (n, c, kh, kw, self.span)
        strides = (s_n, s_c, s_x * dh * self.wq, s_x * dw, s_x * self.stride[1])
        return xp_of(xpd).lib.stride_tricks.as_strided(flat, shape, strides)

    def col2im_channels_last(self, gcols, out):
        """Scatter-add (n, kh*kw, span, C) column gradients into ``out`` (n, H*W, C)."""
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        span = self.span
        for i in range(kh):
            for j in range(kw):
                start = i * dh * self.wq + j * dw
                out[:, start : start + span] += gcols[:, i * kw + j]

    def col2im(self, gcols, out):
        """Scatter-add (n, C, kh, kw, span) column gradients into ``out``, in place."""
        if self.flat:
            _col2im_flat(gcols, out, self.stride[1], self.dilation)
        else:
            shape = gcols.shape[:4] + (self.ho, self.wo)
            _col2im(gcols.reshape(shape), out, self.stride, self.dilation)


# Images per im2col chunk: about 256K column elements, so a chunk's columns stay in
# cache between the copy, the GEMM and the scatter (2x faster than one huge GEMM).
_CHUNK_ELEMENTS = 1 << 18


def _as_4d(x, spatial):
    """(N, C, L) / (C, L) / (C, H, W) -> (N, C, H, W)."""
    if spatial == 1:
        x = x.reshape(x.shape[:-1] + (1, x.shape[-1]))
    if x.ndim == 3:
        x = x[None]
    return x


def _out_size(size, kernel, stride, dilation):
    return (size - dilation * (kernel - 1) - 1) // stride + 1


# -- ops ----------------------------------------------------------------------------------


class Convolution(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, spatial):
        x_shape, w_shape = x.shape, weight.shape
        x = _as_4d(x, spatial)
        weight = _as_4d(weight, spatial) if spatial == 1 else weight
        xp = xp_of(x)
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        # The flat layout pays off when the columns (cg*kh*kw rows) outweigh the output
        # (o rows) that carries its junk columns.
        geo = _Geometry((h, w), (kh, kw), stride, padding, dilation, flat=cg * kh * kw >= o)
        (pt, pb), (pl, pr) = padding
        if (pt, pb, pl, pr) == (0, 0, 0, 0) and geo.wq == w:
            xpd = x
        else:
            xpd = xp.zeros((n, c, geo.hp, geo.wq), x.dtype)
            xpd[:, :, pt : pt + h, pl : pl + w] = x
        k, span, og = cg * kh * kw, geo.span, o // groups
        wmat = weight.reshape(groups, og, k)
        windows = geo.windows(xpd)
        y = xp.empty((n, groups, og, geo.ho, geo.wo), x.dtype)
        step = max(1, _CHUNK_ELEMENTS // (c * kh * kw * span))
        # With junk columns each chunk's GEMM goes to a small cached buffer and only the
        # valid columns are copied out (no second full-size output to allocate and copy).
        junk = xp.empty((step, groups, og, geo.ho, geo.wr), x.dtype) if geo.wr != geo.wo else None
        for b in range(0, n, step):
            cols = windows[b : b + step].reshape(-1, groups, k, span)
            if junk is None:
                array_matmul(wmat, cols, out=y[b : b + step].reshape(-1, groups, og, span))
            else:
                buf = junk[: cols.shape[0]]
                array_matmul(
                    wmat, cols, out=buf.reshape(-1, groups, og, geo.ho * geo.wr)[..., :span]
                )
                y[b : b + step] = buf[..., : geo.wo]
        y = y.reshape(n, o, geo.ho, geo.wo)
        if bias is not None:
            y += bias.reshape(o, 1, 1)
        ctx.save_for_backward(xpd, wmat)
        ctx.meta = (x_shape, w_shape, (h, w), geo, padding, step)
        if len(x_shape) == spatial + 1:
            y = y[0]
        return y.reshape(y.shape[:-2] + (geo.wo,)) if spatial == 1 else y

    @staticmethod
    def backward(ctx, grad):
        xpd, wmat = ctx.saved_tensors
        x_shape, w_shape, (h, w), geo, ((pt, _), (pl, _)), step = ctx.meta
        xp = xp_of(grad)
        n, c = xpd.shape[:2]
        groups, og, k = wmat.shape
        o, span = groups * og, geo.span
        if geo.wr == geo.wo:
            gy = grad.reshape(n, groups, og, span)
        else:
            gy = xp.empty((n, o, geo.ho, geo.wr), grad.dtype)
            gy[..., : geo.wo] = grad.reshape(n, o, geo.ho, geo.wo)
            gy[..., geo.wo :] = 0  # junk columns must not feed the weight gradient
            gy = gy.reshape(n, groups, og, -1)[..., :span]
        need_x, need_w = ctx.needs_input_grad[:2]
        # Unit-stride single-group convolutions scatter in channels-last order: every
        # kernel offset's add is then one contiguous block (NumPy's 2-d strided adds are
        # several times slower).
        channels_last = need_x and geo.flat and groups == 1 and geo.stride == (1, 1)
        gx = gw = None
        if channels_last:
            gx = xp.zeros((n, geo.hp * geo.wq, c), grad.dtype)
            kk = geo.kernel[0] * geo.kernel[1]
            w_offsets = xp.ascontiguousarray(wmat.reshape(o, c, kk).transpose(2, 0, 1))
        elif need_x:
            gx = xp.zeros(xpd.shape, grad.dtype)
        if need_w:  # accumulated transposed: columns @ gy^T is the faster GEMM shape
            gw_t = xp.zeros((groups, k, og), grad.dtype)
        windows = geo.windows(xpd)
        wmat_t = wmat.swapaxes(-1, -2)
        for b in range(0, n if need_x or need_w else 0, step):
            gy_b = gy[b : b + step]
            if need_w:
                cols = windows[b : b + step].reshape(-1, groups, k, span)
                gw_t += array_matmul(cols, gy_b.swapaxes(-1, -2)).sum(0)
            if channels_last:
                gcols = array_matmul(gy_b[:, 0].swapaxes(-1, -2)[:, None], w_offsets)
                geo.col2im_channels_last(gcols, gx[b : b + step])
            elif need_x:
                gcols = array_matmul(wmat_t, gy_b)
                geo.col2im(gcols.reshape((-1, c) + geo.kernel + (span,)), gx[b : b + step])
        if channels_last:
            gx = gx.reshape(n, geo.hp, geo.wq, c).transpose(0, 3, 1, 2)
            gx = xp.ascontiguousarray(gx[:, :, pt : pt + h, pl : pl + w]).reshape(x_shape)
        elif need_x:
            gx = gx[:, :, pt : pt + h, pl : pl + w].reshape(x_shape)
        if need_w:
            gw = gw_t.swapaxes(-1, -2).reshape(w_shape)
        gb = grad.reshape(n, o, -1).sum(axis=(0, 2)) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


class ConvolutionTranspose(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, dilation, groups, spatial):
        x_shape, w_shape = x.shape, weight.shape
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
        gcols = array_matmul(wmat.swapaxes(-1, -2), xmat).reshape(n, o, kh, kw, h, w)
        buf = _col2im(gcols, xp.zeros((n, o, buf_hw[0], buf_hw[1]), x.dtype), stride, dilation)
        (pt, pl), (ho, wo) = padding, out_hw
        y = buf[:, :, pt : pt + ho, pl : pl + wo]
        if bias is not None:
            y = y + bias.reshape(o, 1, 1)
        ctx.save_for_backward(xmat, wmat)
        ctx.meta = (x_shape, w_shape, (n, o, buf_hw[0], buf_hw[1]), (kh, kw), (h, w))
        ctx.params = (stride, padding, dilation)
        if len(x_shape) == spatial + 1:
            y = y[0]
        return y.reshape(y.shape[:-2] + (wo,)) if spatial == 1 else y

    @staticmethod
    def backward(ctx, grad):
        xmat, wmat = ctx.saved_tensors
        x_shape, w_shape, buf_shape, kernel, in_hw = ctx.meta
        stride, (pt, pl), dilation = ctx.params
        xp = xp_of(grad)
        n, groups = xmat.shape[:2]
        gy = grad.reshape(buf_shape[0], buf_shape[1], -1, grad.shape[-1])
        buf = xp.zeros(buf_shape, grad.dtype)
        buf[:, :, pt : pt + gy.shape[2], pl : pl + gy.shape[3]] = gy
        cols = _windows(buf, kernel, in_hw, stride, dilation).reshape(n, groups, -1, xmat.shape[3])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = array_matmul(wmat, cols).reshape(x_shape)
        if ctx.needs_input_grad[1]:
            gw = array_matmul(xmat, cols.swapaxes(-1, -2)).sum(0).reshape(w_shape)
        if ctx.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
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
    if _autocast:
        input, weight, bias = cast_for(op, input, weight, bias)
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


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    r"""1-d convolution over an input of shape (N, C_in, L) or (C_in, L).

    Args:
        weight: (C_out, C_in / groups, kW). padding: int, tuple, 'valid' or 'same'.

    Example::

        >>> F.conv1d(ember.randn(2, 4, 10), ember.randn(8, 4, 3), padding="same").shape
        ember.Size([2, 8, 10])
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


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
    if _autocast:
        input, weight, bias = cast_for(op, input, weight, bias)
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
