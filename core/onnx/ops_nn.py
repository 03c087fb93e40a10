"""ONNX translations of the nn ops: convolution, pooling, normalization, attention,
embedding, dropout and padding."""

from __future__ import annotations

import math

import numpy as np

from ..ops import attention, conv, dropout, embedding, interpolate, norm, pad, pool
from .graph import OnnxExporterError, register_op
from .ops_math import reduce_op


def _batched(g, x, spatial):
    """(name, unbatched): a missing batch dim is added (and removed again by the caller)."""
    if len(x.shape) == spatial + 1:
        return g.op("Unsqueeze", g.name(x), g.ints([0])), True
    return g.name(x), False


def _unbatch(g, out, unbatched):
    return g.op("Squeeze", out, g.ints([0])) if unbatched else out


@register_op(conv.Convolution)
def _conv(g, n):
    x, w, b = n["x"], n["weight"], n["bias"]
    sd = len(w.shape) - 2
    pads = n["padding"][-sd:]
    name, unbatched = _batched(g, x, sd)
    out = g.op(
        "Conv",
        name,
        g.name(w),
        None if b is None else g.name(b),
        strides=list(n["stride"][-sd:]),
        dilations=list(n["dilation"][-sd:]),
        pads=[p[0] for p in pads] + [p[1] for p in pads],
        group=int(n["groups"]),
        kernel_shape=list(w.shape[2:]),
    )
    return _unbatch(g, out, unbatched)


@register_op(conv.ConvolutionTranspose)
def _conv_transpose(g, n):
    x, w, b = n["x"], n["weight"], n["bias"]
    sd = len(w.shape) - 2
    name, unbatched = _batched(g, x, sd)
    pads = list(n["padding"][-sd:])
    out = g.op(
        "ConvTranspose",
        name,
        g.name(w),
        None if b is None else g.name(b),
        strides=list(n["stride"][-sd:]),
        dilations=list(n["dilation"][-sd:]),
        pads=pads + pads,
        output_padding=list(n["output_padding"][-sd:]),
        group=int(n["groups"]),
        kernel_shape=list(w.shape[2:]),
    )
    return _unbatch(g, out, unbatched)


def _pool_attrs(win, spatial):
    """Kernel, strides, dilations and pads (the end pads cover exactly the rows the
    windows reach, so no ceil_mode is needed) of a pool window, for ``spatial`` dims."""
    keep = slice(2 - spatial, 2)
    ends = [max(0, need - size - p) for need, size, p in zip(win.need, win.hw, win.padding)]
    return dict(
        kernel_shape=list(win.kernel[keep]),
        strides=list(win.stride[keep]),
        pads=list(win.padding[keep]) + ends[keep],
    ), list(win.dilation[keep])


@register_op(pool.MaxPool)
def _max_pool(g, n):
    if n["return_indices"]:
        raise OnnxExporterError("max pooling with return_indices=True has no ONNX translation")
    spatial = n["spatial"]
    name, unbatched = _batched(g, n["x"], spatial)
    attrs, dilations = _pool_attrs(n["win"], spatial)
    out = g.op("MaxPool", name, dilations=dilations, **attrs)
    return _unbatch(g, out, unbatched)


@register_op(pool.AvgPool)
def _avg_pool(g, n):
    x, spatial, win, divisor = n["x"], n["spatial"], n["win"], n["divisor"]
    name, unbatched = _batched(g, x, spatial)
    attrs, _ = _pool_attrs(win, spatial)
    out = g.op("AveragePool", name, count_include_pad=1, **attrs)  # window sum / kernel size
    kernel = math.prod(win.kernel)
    if not (isinstance(divisor, int | float) and divisor == kernel):
        scale = kernel / np.asarray(divisor, np.float64)
        if scale.ndim == 2 and spatial == 1:
            scale = scale[0]
        out = g.op("Mul", out, g.const(scale.astype(x.dtype)))
    return _unbatch(g, out, unbatched)


@register_op(interpolate.AxisMaps)
def _axis_maps(g, n):
    """Adaptive average pooling and interpolation: one linear map (or gather) per axis."""
    x = n["x"]
    out, ndim = g.name(x), len(x.shape)
    for axis, weight, index in n["maps"]:
        if x.is_dynamic(axis):
            raise OnnxExporterError(
                f"interpolation or adaptive pooling over dynamic axis {axis}: its weights "
                "depend on the size; export with that axis static"
            )
        if index is not None:
            out = g.op("Gather", out, g.const(np.asarray(index, np.int64)), axis=axis)
            continue
        w_t = g.const(np.ascontiguousarray(np.asarray(weight, x.dtype).T))
        if axis == ndim - 1:
            out = g.op("MatMul", out, w_t)
            continue
        perm = [d for d in range(ndim) if d != axis] + [axis]
        back = [perm.index(d) for d in range(ndim)]
        moved = g.op("MatMul", g.op("Transpose", out, perm=perm), w_t)
        out = g.op("Transpose", moved, perm=back)
    return out


# -- normalization ------------------------------------------------------------------------------


def _channel_vector(g, value, channels, fill, dtype):
    return g.name(value) if value is not None else g.const(np.full(channels, fill, dtype))


@register_op(norm.BatchNorm)
def _batch_norm(g, n):
    x, dt = n["x"], n["x"].dtype
    channels = x.shape[1]
    scale = _channel_vector(g, n["weight"], channels, 1, dt)
    bias = _channel_vector(g, n["bias"], channels, 0, dt)
    if not n["training"]:
        mean, var = n["running_mean"], n["running_var"]
        if mean.dtype != dt:
            raise OnnxExporterError(f"batch norm statistics in {mean.dtype} for a {dt} input")
        return g.op(
            "BatchNormalization",
            g.name(x),
            scale,
            bias,
            g.name(mean),
            g.name(var),
            epsilon=float(n["eps"]),
        )
    # batch statistics (a model in training mode, or track_running_stats=False)
    axes = [0, *range(2, len(x.shape))]
    cshape = g.ints([1, channels] + [1] * (len(x.shape) - 2))
    name = g.name(x)
    dev = g.op("Sub", name, reduce_op(g, "ReduceMean", name, axes, True))
    var = reduce_op(g, "ReduceMean", g.op("Mul", dev, dev), axes, True)
    normed = g.op("Div", dev, g.op("Sqrt", g.op("Add", var, g.scalar(n["eps"], dt))))
    out = g.op("Mul", normed, g.op("Reshape", scale, cshape))
    return g.op("Add", out, g.op("Reshape", bias, cshape))


@register_op(norm.LayerNorm)
def _layer_norm(g, n):
    x, w, b, ndim = n["x"], n["weight"], n["bias"], int(n["ndim"])
    dt = x.dtype
    eps = float(n["eps"]) if n["eps"] is not None else float(np.finfo(dt).eps)
    axes = list(range(len(x.shape) - ndim, len(x.shape)))
    name = g.name(x)
    if g.opset >= 17 and not n["rms"]:
        shape = x.shape[-ndim:]
        scale = g.name(w) if w is not None else g.const(np.ones(shape, dt))
        bias = None if b is None else g.name(b)
        return g.op("LayerNormalization", name, scale, bias, axis=-ndim, epsilon=eps)
    if n["rms"]:
        centered = name
    else:
        centered = g.op("Sub", name, reduce_op(g, "ReduceMean", name, axes, True))
    var = reduce_op(g, "ReduceMean", g.op("Mul", centered, centered), axes, True)
    out = g.op("Div", centered, g.op("Sqrt", g.op("Add", var, g.scalar(eps, dt))))
    if w is not None:
        out = g.op("Mul", out, g.name(w))
    return out if b is None else g.op("Add", out, g.name(b))


@register_op(norm.GroupNorm)
def _group_norm(g, n):
    x, groups, dt = n["x"], int(n["groups"]), n["x"].dtype
    channels = x.shape[1]
    name = g.name(x)
    grouped = g.op("Reshape", name, g.ints([0, groups, -1]))
    dev = g.op("Sub", grouped, reduce_op(g, "ReduceMean", grouped, [2], True))
    var = reduce_op(g, "ReduceMean", g.op("Mul", dev, dev), [2], True)
    normed = g.op("Div", dev, g.op("Sqrt", g.op("Add", var, g.scalar(n["eps"], dt))))
    out = g.op("Reshape", normed, g.shape_of(x))
    cshape = g.ints([channels] + [1] * (len(x.shape) - 2))
    if n["weight"] is not None:
        out = g.op("Mul", out, g.op("Reshape", g.name(n["weight"]), cshape))
    if n["bias"] is not None:
        out = g.op("Add", out, g.op("Reshape", g.name(n["bias"]), cshape))
    return out


# -- attention, embedding, dropout, padding ---------------------------------------------------


@register_op(attention.ScaledDotProductAttention, min_opset=14)
def _sdpa(g, n):
    q, k, v, mask = n["q"], n["k"], n["v"], n["mask"]
    if n["keep"] is not None:
        raise OnnxExporterError("attention dropout (dropout_p > 0 while training)")
    if n["repeat"] != 1:
        raise OnnxExporterError("grouped-query attention (enable_gqa) has no ONNX translation")
    dt = q.dtype
    perm = list(range(len(k.shape)))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    kt = g.op("Transpose", g.name(k), perm=perm)
    scores = g.op("Mul", g.op("MatMul", g.name(q), kt), g.scalar(n["scale"], dt))
    if n["is_causal"]:  # top-left aligned lower triangle of an (L, S) block of ones
        last_two = g.op("Slice", g.shape_of(q), g.ints([-2]), g.ints([-1]))
        key_len = g.op("Slice", g.shape_of(k), g.ints([-2]), g.ints([-1]))
        sizes = g.op("Concat", last_two, key_len, axis=0)
        one = g.onnx.numpy_helper.from_array(np.ones(1, np.bool_))
        ones = g.op("Cast", g.op("ConstantOfShape", sizes, value=one), to=7)  # int64
        allowed = g.op("Cast", g.op("Trilu", ones, upper=0), to=9)  # bool
        scores = g.op("Where", allowed, scores, g.scalar(-np.inf, dt))
    elif mask is not None:
        if mask.dtype == np.bool_:
            scores = g.op("Where", g.name(mask), scores, g.scalar(-np.inf, dt))
        else:
            scores = g.op("Add", scores, g.name(mask))
    probs = g.op("Softmax", scores, axis=-1)
    return g.op("MatMul", probs, g.name(v))


@register_op(embedding.Embedding)
def _embedding(g, n):
    indices = n["indices"]
    if not hasattr(indices, "kind"):  # indices the tracer never saw: a constant
        return g.op("Gather", g.name(n["weight"]), g.const(np.asarray(indices)), axis=0)
    return g.op("Gather", g.name(n["weight"]), g.name(indices), axis=0)


@register_op(dropout.Dropout)
def _dropout(g, n):
    raise OnnxExporterError(
        "dropout that is active (a model in training mode): export with "
        "training=TrainingMode.EVAL, where dropout is the identity"
    )


@register_op(pad.Pad, min_opset=11)
def _pad(g, n):
    x, pads, mode = n["x"], n["pads"], n["mode"]
    modes = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    if mode == "circular" and g.opset < 19:
        raise OnnxExporterError("circular padding needs opset_version >= 19")
    onnx_mode = modes[mode]
    amounts = g.ints([p[0] for p in pads] + [p[1] for p in pads])
    value = g.scalar(n["value"], x.dtype) if mode == "constant" else None
    return g.op("Pad", g.name(x), amounts, value, mode=onnx_mode)
