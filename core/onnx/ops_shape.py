"""ONNX translations of the shape and indexing ops: reshape, permute, expand, indexing,
split, concatenation, gather and the triangular masks."""

from __future__ import annotations

import numpy as np

from ..ops import indexing, join, movement, reorder, scatter
from .graph import _ONNX_INT64_MAX, OnnxExporterError, register_op
from .ops_scatter import mask_read, mask_split


@register_op(movement.Reshape)
@register_op(movement.View)
def _reshape(g, n):
    x = n["x"]
    sizes = g.sizes(n["shape"], n.alt_arg("shape"), [x], reshape_of=x)
    return g.op("Reshape", g.name(x), sizes)


@register_op(movement.Permute)
def _permute(g, n):
    return g.op("Transpose", g.name(n["x"]), perm=[int(d) for d in n["dims"]])


@register_op(movement.Expand)
def _expand(g, n):
    x = n["x"]
    return g.op("Expand", g.name(x), g.sizes(n["shape"], n.alt_arg("shape"), [x]))


def _expand_ellipsis(key, ndim):
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    out = []
    for k in key:
        if k is Ellipsis:
            out += [slice(None)] * (ndim - used)
        else:
            out.append(k)
    if Ellipsis not in key:
        out += [slice(None)] * (ndim - used)
    return out


def _bound(g, what, value, alt, size, alt_size):
    """A slice bound or index that follows a dynamic dim as ``size - c`` becomes the
    negative ``-c``; one that changes otherwise is baked in, with a warning."""
    if value == alt or value is None:
        return value
    if alt is not None and value - size == alt - alt_size:
        return value - size
    g.warn_baked(f"{what} {value}")
    return value


def _slice_end(g, k, alt, size, alt_size):
    if k.stop is None:
        return _ONNX_INT64_MAX
    stop = _bound(g, "slice end", k.stop, alt.stop, size, alt_size)
    if stop == 0 and k.stop != 0:  # up to the end of a dynamic dim
        return _ONNX_INT64_MAX
    return int(stop)  # ONNX clamps an end past the dim, as Python does


@register_op(indexing.Index)
def _index(g, n):
    x = n["x"]
    key = _expand_ellipsis(n["key"], len(x.shape))
    alt_key = _expand_ellipsis(n.alt_arg("key"), len(x.shape))
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    dim = out_pos = 0
    for k, alt in zip(key, alt_key):
        if k is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        size, alt_size = x.shape[dim], x.alt_shape[dim]
        if isinstance(k, slice):
            start = _bound(g, "slice start", k.start or 0, alt.start or 0, size, alt_size)
            end, step = _slice_end(g, k, alt, size, alt_size), k.step or 1
            if (start, end, step) != (0, _ONNX_INT64_MAX, 1):
                starts.append(start), ends.append(end), axes.append(dim), steps.append(step)
            out_pos += 1
        elif isinstance(k, int | np.integer):
            k = _bound(g, "index", int(k), int(alt), size, alt_size)
            starts.append(k), ends.append(k + 1 if k != -1 else _ONNX_INT64_MAX)
            axes.append(dim), steps.append(1)
            squeeze.append(dim)
        else:
            raise OnnxExporterError(f"basic index {type(k).__name__}")
        dim += 1
    out = g.name(x)
    if axes:
        out = g.op("Slice", out, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps))
    if squeeze:
        out = g.op("Squeeze", out, g.ints(squeeze))
    if unsqueeze:
        out = g.op("Unsqueeze", out, g.ints(unsqueeze))
    return out


def _gather_key(g, n, key):
    """A key of full slices and one integer index array (Gather along that dim) or one
    boolean mask (GatherND at its True entries)."""
    x = n["x"]
    split = mask_split(key)
    if split is not None:
        return mask_read(g, x, *split)
    arrays = [i for i, k in enumerate(key) if not isinstance(k, slice | int | type(None))]
    plain = all(
        isinstance(k, slice) and k == slice(None) for i, k in enumerate(key) if i not in arrays
    )
    if len(arrays) != 1 or not plain:
        raise OnnxExporterError(
            "advanced indexing other than one integer index tensor among full slices"
        )
    (d,) = arrays
    index = key[d]
    if hasattr(index, "kind"):
        if index.dtype == np.bool_:
            raise OnnxExporterError("boolean mask indexing other than full slices then the mask")
        name = g.name(index)
    else:
        index = np.asarray(index)
        if index.dtype == np.bool_:
            raise OnnxExporterError("boolean mask indexing other than full slices then the mask")
        name = g.const(index.astype(np.int64))
    return g.op("Gather", g.name(x), name, axis=d)


@register_op(indexing.AdvancedIndex)
def _advanced_index(g, n):
    return _gather_key(g, n, list(n["key"]))


@register_op(scatter.IndexSelect)
def _index_select(g, n):
    return _gather_key(g, n, list(n["key"]))


@register_op(scatter.Gather)
def _gather(g, n):
    return g.op("GatherElements", g.name(n["x"]), g.name(n["index"]), axis=int(n["dim"]))


@register_op(join.Split, min_opset=13)
def _split(g, n):
    x, dim, sizes = n["x"], int(n["dim"]), list(n["sizes"])
    if sizes != list(n.alt_arg("sizes")):
        g.warn_baked(f"split sizes {sizes}")
    if len(sizes) == 1:
        return [g.op("Identity", g.name(x))]
    return g.op("Split", g.name(x), g.ints(sizes), outputs=len(sizes), axis=dim)


@register_op(join.Unbind, min_opset=13)
def _unbind(g, n):
    x, dim = n["x"], int(n["dim"])
    count = x.shape[dim]
    if x.is_dynamic(dim):
        g.warn_baked(f"unbind into {count}")
    parts = g.op("Split", g.name(x), g.ints([1] * count), outputs=count, axis=dim)
    parts = parts if count > 1 else [parts]
    return [g.op("Squeeze", p, g.ints([dim])) for p in parts]


@register_op(join.Cat)
def _cat(g, n):
    values = [v for v in n["arrays"] if not (n["skip_empty"] and 0 in v.shape)]
    return g.op("Concat", *[g.name(v) for v in values], axis=int(n["dim"]))


@register_op(join.Stack, min_opset=13)
def _stack(g, n):
    dim = int(n["dim"])
    parts = [g.op("Unsqueeze", g.name(v), g.ints([dim])) for v in n["arrays"]]
    return g.op("Concat", *parts, axis=dim)


@register_op(reorder.Tril, min_opset=14)
def _tril(g, n):
    x = n["x"]
    return g.op("Trilu", g.name(x), g.ints(int(n["diagonal"])), upper=int(bool(n["upper"])))


@register_op(reorder.Repeat)
def _repeat(g, n):
    x, repeats = n["x"], list(n["repeats"])
    name = g.name(x)
    lead = len(repeats) - len(x.shape)
    if lead:
        name = g.op("Unsqueeze", name, g.ints(list(range(lead))))
    return g.op("Tile", name, g.ints(repeats))


@register_op(reorder.Flip)
def _flip(g, n):
    dims = [int(d) for d in n["dims"]]
    k = len(dims)
    ends = g.ints([np.iinfo(np.int64).min] * k)
    return g.op("Slice", g.name(n["x"]), g.ints([-1] * k), ends, g.ints(dims), g.ints([-1] * k))
