"""ONNX translations of elementwise math, activations, comparisons, reductions, matmul and
tensor creation."""

from __future__ import annotations

import math

import numpy as np

from ..ops import (
    activation,
    activation_smooth,
    arithmetic,
    cast,
    elementwise,
    linalg,
    reduce,
    scan,
    softmax,
    unary_math,
)
from .graph import OnnxExporterError, register_op


def _unary(onnx_op):
    def translate(g, n):
        return g.op(onnx_op, g.name(n["x"]))

    return translate


for _cls, _op in [
    (arithmetic.Neg, "Neg"),
    (unary_math.Exp, "Exp"),
    (unary_math.Log, "Log"),
    (unary_math.Sqrt, "Sqrt"),
    (arithmetic.Abs, "Abs"),
    (unary_math.Reciprocal, "Reciprocal"),
    (unary_math.Sin, "Sin"),
    (unary_math.Cos, "Cos"),
    (unary_math.Tanh, "Tanh"),
    (unary_math.Sigmoid, "Sigmoid"),
    (elementwise.Clone, "Identity"),
    (activation.Relu, "Relu"),
    (activation_smooth.Softsign, "Softsign"),
    (unary_math.Sign, "Sign"),
    (unary_math.Tan, "Tan"),
    (unary_math.Asin, "Asin"),
    (unary_math.Acos, "Acos"),
    (unary_math.Atan, "Atan"),
    (unary_math.Sinh, "Sinh"),
    (unary_math.Cosh, "Cosh"),
    (unary_math.Asinh, "Asinh"),
    (unary_math.Acosh, "Acosh"),
    (unary_math.Atanh, "Atanh"),
    (unary_math.Erf, "Erf"),
]:
    register_op(_cls)(_unary(_op))


@register_op(unary_math.Erfc)
def _erfc(g, n):
    x = n["x"]
    return g.op("Sub", g.const(np.ones((), x.dtype)), g.op("Erf", g.name(x)))


@register_op(unary_math.Exp2)
def _exp2(g, n):
    x = n["x"]
    return g.op("Pow", g.const(np.full((), 2, x.dtype)), g.name(x))


def _binary(onnx_op):
    def translate(g, n):
        a, b = n["a"], n["b"]
        like = a if hasattr(a, "kind") else b
        return g.op(onnx_op, g.arg(a, like), g.arg(b, like))

    return translate


for _cls, _op in [
    (arithmetic.Mul, "Mul"),
    (arithmetic.Div, "Div"),
    (arithmetic.Maximum, "Max"),
    (arithmetic.Minimum, "Min"),
    (arithmetic.Pow, "Pow"),
]:
    register_op(_cls)(_binary(_op))


def _scaled_b(g, n):
    b = g.arg(n["b"], n["a"])
    if n["alpha"] != 1:
        b = g.op("Mul", b, g.scalar(n["alpha"], n["a"].dtype))
    return b


@register_op(arithmetic.Add)
def _add(g, n):
    return g.op("Add", g.arg(n["a"], n["b"]), _scaled_b(g, n))


@register_op(arithmetic.Sub)
def _sub(g, n):
    return g.op("Sub", g.arg(n["a"], n["b"]), _scaled_b(g, n))


@register_op(unary_math.Expm1)
def _expm1(g, n):
    x = n["x"]
    return g.op("Sub", g.op("Exp", g.name(x)), g.scalar(1, x.dtype))


@register_op(unary_math.Log1p)
def _log1p(g, n):
    x = n["x"]
    return g.op("Log", g.op("Add", g.name(x), g.scalar(1, x.dtype)))


@register_op(unary_math.Rsqrt)
def _rsqrt(g, n):
    return g.op("Reciprocal", g.op("Sqrt", g.name(n["x"])))


@register_op(elementwise.Clamp)
def _clamp(g, n):
    x = n["x"]
    lo = None if n["min"] is None else g.arg(n["min"], x)
    hi = None if n["max"] is None else g.arg(n["max"], x)
    return g.op("Clip", g.name(x), lo, hi)


@register_op(elementwise.Where)
def _where(g, n):
    a, b = n["a"], n["b"]
    like = a if hasattr(a, "kind") else b
    return g.op("Where", g.name(n["cond"]), g.arg(a, like), g.arg(b, like))


@register_op(cast.ToCopy)
def _to_copy(g, n):
    if n["dtype"] is None:
        return g.op("Identity", g.name(n["x"]))
    return g.op("Cast", g.name(n["x"]), to=g.onnx.helper.np_dtype_to_tensor_dtype(n["dtype"].np))


# -- activations -------------------------------------------------------------------------------


@register_op(activation.LeakyRelu)
def _leaky_relu(g, n):
    return g.op("LeakyRelu", g.name(n["x"]), alpha=float(n["negative_slope"]))


@register_op(activation.Elu)
def _elu(g, n):
    return g.op("Elu", g.name(n["x"]), alpha=float(n["alpha"]))


@register_op(activation.Celu, min_opset=12)
def _celu(g, n):
    return g.op("Celu", g.name(n["x"]), alpha=float(n["alpha"]))


@register_op(activation.Selu)
def _selu(g, n):
    return g.op("Selu", g.name(n["x"]))


@register_op(activation_smooth.Gelu)
def _gelu(g, n):
    x = n["x"]
    name, dt = g.name(x), x.dtype
    if n["approximate"] == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", g.op("Mul", name, name), name)
        inner = g.op("Add", name, g.op("Mul", cube, g.scalar(0.044715, dt)))
        t = g.op("Tanh", g.op("Mul", inner, g.scalar(math.sqrt(2 / math.pi), dt)))
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = g.op("Erf", g.op("Mul", name, g.scalar(1 / math.sqrt(2), dt)))
    half = g.op("Mul", name, g.scalar(0.5, dt))
    return g.op("Mul", half, g.op("Add", t, g.scalar(1, dt)))


@register_op(activation_smooth.Silu)
def _silu(g, n):
    x = g.name(n["x"])
    return g.op("Mul", x, g.op("Sigmoid", x))


@register_op(activation_smooth.Softplus)
def _softplus(g, n):
    x, dt = n["x"], n["x"].dtype
    beta, threshold = float(n["beta"]), float(n["threshold"])
    bx = g.name(x) if beta == 1 else g.op("Mul", g.name(x), g.scalar(beta, dt))
    soft = g.op("Softplus", bx)
    if beta != 1:
        soft = g.op("Div", soft, g.scalar(beta, dt))
    linear = g.op("Greater", bx, g.scalar(threshold, dt))
    return g.op("Where", linear, g.name(x), soft)


@register_op(activation.Hardtanh)
def _hardtanh(g, n):
    x = n["x"]
    return g.op("Clip", g.name(x), g.arg(n["min_val"], x), g.arg(n["max_val"], x))


@register_op(activation.Hardsigmoid)
def _hardsigmoid(g, n):
    return g.op("HardSigmoid", g.name(n["x"]), alpha=1 / 6, beta=0.5)


@register_op(activation.Hardswish, min_opset=14)
def _hardswish(g, n):
    return g.op("HardSwish", g.name(n["x"]))


@register_op(activation_smooth.Mish)
def _mish(g, n):
    x = g.name(n["x"])
    return g.op("Mul", x, g.op("Tanh", g.op("Softplus", x)))


@register_op(activation_smooth.LogSigmoid)
def _logsigmoid(g, n):
    return g.op("Log", g.op("Sigmoid", g.name(n["x"])))


@register_op(activation.Prelu)
def _prelu(g, n):
    x, w = n["x"], n["w"]
    slope = g.name(w)
    if x.shape and len(w.shape) == 1 and len(x.shape) > 2:  # weight per channel (dim 1)
        slope = g.op("Reshape", slope, g.ints([w.shape[0]] + [1] * (len(x.shape) - 2)))
    return g.op("PRelu", g.name(x), slope)


@register_op(softmax.Softmax)
def _softmax(g, n):
    return g.op("Softmax", g.name(n["x"]), axis=int(n["dim"]))


@register_op(softmax.LogSoftmax)
def _log_softmax(g, n):
    return g.op("LogSoftmax", g.name(n["x"]), axis=int(n["dim"]))


# -- comparisons (traceable functions) -------------------------------------------------------


def _compare(onnx_op, negate=False):
    def translate(g, n):
        a, b = n["input"], n["other"]
        like = a if hasattr(a, "kind") else b
        out = g.op(onnx_op, g.arg(a, like), g.arg(b, like))
        return g.op("Not", out) if negate else out

    return translate


for _name, _op, _neg in [
    ("eq", "Equal", False),
    ("ne", "Equal", True),
    ("lt", "Less", False),
    ("le", "Greater", True),
    ("gt", "Greater", False),
    ("ge", "Less", True),
    ("logical_and", "And", False),
    ("logical_or", "Or", False),
    ("logical_xor", "Xor", False),
]:
    register_op(_name)(_compare(_op, _neg))


@register_op("logical_not")
def _logical_not(g, n):
    x = n["input"]
    if x.dtype != np.bool_:
        return g.op("Equal", g.name(x), g.scalar(0, x.dtype))
    return g.op("Not", g.name(x))


# -- reductions ------------------------------------------------------------------------------


def _axes(dim, ndim):
    if dim is None:
        return list(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return sorted(d % ndim for d in dims) if ndim else []


def reduce_op(g, op, x: str, axes, keepdim: bool, since_axes_input: int = 18) -> str:
    """``op`` over ``axes``; the axes are an input from ReduceSum 13 / the others 18 on."""
    keep = int(bool(keepdim))
    if g.opset >= since_axes_input:
        return g.op(op, x, g.ints(axes), keepdims=keep)
    return g.op(op, x, axes=list(axes), keepdims=keep)


def _reduction(onnx_op, since):
    def translate(g, n):
        x = n["x"]
        out = reduce_op(g, onnx_op, g.name(x), _axes(n["dim"], len(x.shape)), n["keepdim"], since)
        dtype = n.args.get("dtype")
        if dtype is not None and np.dtype(dtype) != x.dtype:
            out = g.op("Cast", out, to=g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
        return out

    return translate


register_op(reduce.Sum)(_reduction("ReduceSum", 13))
register_op(reduce.Mean)(_reduction("ReduceMean", 18))
register_op(reduce.Prod)(_reduction("ReduceProd", 18))
register_op(reduce.LogSumExp)(_reduction("ReduceLogSumExp", 18))


@register_op(reduce.Amax)
def _amax(g, n):
    x = n["x"]
    op = "ReduceMax" if n["largest"] else "ReduceMin"
    return reduce_op(g, op, g.name(x), _axes(n["dim"], len(x.shape)), n["keepdim"])


@register_op(reduce.Var)
def _var(g, n):
    x = n["x"]
    axes = _axes(n["dim"], len(x.shape))
    name, dt = g.name(x), x.dtype
    mean = reduce_op(g, "ReduceMean", name, axes, True)
    dev = g.op("Sub", name, mean)
    total = reduce_op(g, "ReduceSum", g.op("Mul", dev, dev), axes, n["keepdim"], 13)
    count = math.prod(x.shape[a] for a in axes)
    if any(x.is_dynamic(a) for a in axes):
        g.warn_baked(f"element count {count}")
    return g.op("Div", total, g.scalar(max(count - n["correction"], 0), dt))


@register_op(reduce.MaxDim)
def _max_dim(g, n):
    if n["median"]:
        raise OnnxExporterError("median has no ONNX translation")
    x, d, keep = n["x"], int(n["dim"]), int(bool(n["keepdim"]))
    op, arg = ("ReduceMax", "ArgMax") if n["largest"] else ("ReduceMin", "ArgMin")
    values = reduce_op(g, op, g.name(x), [d % len(x.shape)], keep)
    return [values, g.op(arg, g.name(x), axis=d, keepdims=keep)]


def _arg(onnx_op):
    def translate(g, n):
        x, dim, keep = n["input"], n["dim"], int(bool(n["keepdim"]))
        name = g.name(x)
        if dim is None:
            flat = g.op("Reshape", name, g.ints([-1]))
            out = g.op(onnx_op, flat, axis=0, keepdims=0)
            return g.op("Reshape", out, g.ints([1] * len(x.shape))) if keep else out
        return g.op(onnx_op, name, axis=int(dim), keepdims=keep)

    return translate


register_op("argmax")(_arg("ArgMax"))
register_op("argmin")(_arg("ArgMin"))


@register_op(scan.CumSum)
def _cumsum(g, n):
    x = n["x"]
    out = g.op("CumSum", g.name(x), g.ints(int(n["dim"])))
    if n["dtype"] is not None and np.dtype(n["dtype"]) != x.dtype:
        out = g.op("Cast", out, to=g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(n["dtype"])))
    return out


# -- matrix products --------------------------------------------------------------------------


@register_op(linalg.MatMul)
def _matmul(g, n):
    return g.op("MatMul", g.name(n["a"]), g.name(n["b"]))


@register_op(linalg.Linear)
def _linear(g, n):
    x, w, b = n["x"], n["weight"], n["bias"]
    if len(x.shape) == 2 and b is not None and len(b.shape) == 1:
        return g.op("Gemm", g.name(x), g.name(w), g.name(b), transB=1)
    out = g.op("MatMul", g.name(x), g.op("Transpose", g.name(w), perm=[1, 0]))
    return out if b is None else g.op("Add", out, g.name(b))


@register_op(linalg.Outer)
def _outer(g, n):
    a = g.op("Unsqueeze", g.name(n["a"]), g.ints([1]))
    return g.op("Mul", a, g.name(n["b"]))


@register_op(linalg.Einsum, min_opset=12)
def _einsum(g, n):
    terms, out = n["subs"], n["out"]
    equation = ",".join(terms) + "->" + out
    return g.op("Einsum", *[g.name(v) for v in n["operands"]], equation=equation)


# -- tensor creation inside forward (traceable functions) ----------------------------------


def _creation_sizes(g, n, size):
    if len(size) == 1 and isinstance(size[0], tuple | list):
        size = size[0]
    alt = n.alt_arg("size")
    if len(alt) == 1 and isinstance(alt[0], tuple | list):
        alt = alt[0]
    return g.sizes([int(s) for s in size], [int(s) for s in alt], [])


def _filled(fill):
    def translate(g, n):
        out = n.outputs[0]
        value = fill if fill is not None else n["fill_value"]
        sizes = _creation_sizes(g, n, n["size"] if fill is None else n["size"])
        tensor = g.onnx.numpy_helper.from_array(np.asarray([value], dtype=out.dtype))
        return g.op("ConstantOfShape", sizes, value=tensor)

    return translate


register_op("zeros")(_filled(0))
register_op("ones")(_filled(1))
register_op("full")(_filled(None))


def _filled_like(fill):
    def translate(g, n):
        out = n.outputs[0]
        value = fill if fill is not None else n["args"][0]
        tensor = g.onnx.numpy_helper.from_array(np.asarray([value], dtype=out.dtype))
        return g.op("ConstantOfShape", g.shape_of(n["input"]), value=tensor)

    return translate


register_op("zeros_like")(_filled_like(0))
register_op("ones_like")(_filled_like(1))
register_op("full_like")(_filled_like(None))


@register_op("arange", min_opset=11)
def _arange(g, n):
    out = n.outputs[0]
    start, end, step = n["start"], n["end"], n["step"]
    if end is None:
        start, end = 0, start
    alt_start, alt_end = n.alt_arg("start"), n.alt_arg("end")
    if alt_end is None:
        alt_start, alt_end = 0, alt_start
    bounds = g.sizes([int(start), int(end)], [int(alt_start), int(alt_end)], [])
    cast = g.onnx.helper.np_dtype_to_tensor_dtype(out.dtype)
    first, last = g.op("Split", bounds, g.ints([1, 1]), outputs=2, axis=0)
    first, last = (g.op("Cast", g.op("Squeeze", t, g.ints([0])), to=cast) for t in (first, last))
    return g.op("Range", first, last, g.scalar(step, out.dtype))


# -- rounding, tests and logical reductions (traceable functions) ---------------------------


for _name, _op in [("sign", "Sign"), ("floor", "Floor"), ("ceil", "Ceil"), ("round", "Round")]:
    register_op(_name)(lambda g, n, op=_op: g.op(op, g.name(n["input"])))


def _trunc_of(g, name: str, dtype) -> str:
    negative = g.op("Less", name, g.scalar(0, dtype))
    return g.op("Where", negative, g.op("Ceil", name), g.op("Floor", name))


@register_op("trunc")
def _trunc(g, n):
    return _trunc_of(g, g.name(n["input"]), n["input"].dtype)


@register_op("_rounded_div")
def _rounded_div(g, n):
    a, b, mode = n["a"], n["b"], n["mode"]
    like = a if hasattr(a, "kind") else b
    xa, xb = g.arg(a, like), g.arg(b, like)
    dtype = like.dtype
    if dtype.kind != "f":  # integer division through float64 (exact for |values| < 2**53)
        xa, xb = (g.op("Cast", t, to=11) for t in (xa, xb))
        dtype = np.dtype(np.float64)
    q = g.op("Div", xa, xb)
    q = g.op("Floor", q) if mode == "floor" else _trunc_of(g, q, dtype)
    if dtype != like.dtype:
        q = g.op("Cast", q, to=g.onnx.helper.np_dtype_to_tensor_dtype(like.dtype))
    return q


@register_op("isnan")
def _isnan(g, n):
    return g.op("IsNaN", g.name(n["input"]))


@register_op("isinf")
def _isinf(g, n):
    return g.op("IsInf", g.name(n["input"]))


@register_op("isfinite")
def _isfinite(g, n):
    x = g.name(n["input"])
    return g.op("Not", g.op("Or", g.op("IsNaN", x), g.op("IsInf", x)))


@register_op("bitwise_not")
def _bitwise_not(g, n):
    if n["input"].dtype != np.bool_:
        raise OnnxExporterError("bitwise_not of an integer tensor")
    return g.op("Not", g.name(n["input"]))


for _name, _op in [("bitwise_and", "And"), ("bitwise_or", "Or"), ("bitwise_xor", "Xor")]:

    def _bitwise(g, n, op=_op, name=_name):
        a, b = n["input"], n["other"]
        if a.dtype != np.bool_:
            raise OnnxExporterError(f"{name} of integer tensors")
        return g.op(op, g.name(a), g.arg(b, a))

    register_op(_name)(_bitwise)


def _logical_reduce(onnx_op):
    def translate(g, n):
        x = n["input"]
        as_int = g.op("Cast", g.op("Cast", g.name(x), to=9), to=6)  # nonzero -> 1 (int32)
        out = reduce_op(g, onnx_op, as_int, _axes(n["dim"], len(x.shape)), n["keepdim"])
        return g.op("Cast", out, to=9)

    return translate


register_op("all")(_logical_reduce("ReduceMin"))
register_op("any")(_logical_reduce("ReduceMax"))


@register_op(reduce.Norm)
def _norm(g, n):
    x, p = n["x"], n["p"]
    axes, keep = _axes(n["dim"], len(x.shape)), n["keepdim"]
    if p == 2:
        return reduce_op(g, "ReduceL2", g.name(x), axes, keep)
    if p == 1:
        return reduce_op(g, "ReduceL1", g.name(x), axes, keep)
    powered = g.op("Pow", g.op("Abs", g.name(x)), g.scalar(p, x.dtype))
    total = reduce_op(g, "ReduceSum", powered, axes, keep, 13)
    return g.op("Pow", total, g.scalar(1 / p, x.dtype))


def _top_k(g, x, dim: int, k, largest: bool):
    """TopK along ``dim`` (ties keep their order, as ember's stable sort does); ``k=None``
    sorts the whole dim, also when its size is dynamic."""
    dim %= len(x.shape)
    if k is None:
        k = g.dim(x, dim) if x.is_dynamic(dim) else g.ints([x.shape[dim]])
    else:
        k = g.ints([k])
    return g.op("TopK", g.name(x), k, outputs=2, axis=dim, largest=int(largest), sorted=1)


@register_op(scan.Sort)
def _sort(g, n):
    return _top_k(g, n["x"], int(n["dim"]), n["k"], bool(n["descending"]))


@register_op("argsort")
def _argsort(g, n):
    return _top_k(g, n["input"], int(n["dim"]), None, bool(n["descending"]))[1]
