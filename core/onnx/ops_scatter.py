"""ONNX translations of the ops that write or move elements by position: index assignment
(``x[key] = v``, ``index_put``), ``scatter``, ``index_add``/``index_copy``/``index_fill``,
``roll``, ``repeat_interleave``, and ``cumprod`` (which ONNX lacks).

A write through an arbitrary key is translated by indexing a tensor of flat positions
(0, 1, ... numel-1 in ``x``'s shape) with the same key, through the indexing translations,
and scattering the values into the flattened ``x`` at the positions that come out.
"""

from __future__ import annotations

import numpy as np

from ..backend import xp_of
from ..ops import indexing, reorder, scan, scatter
from .graph import _ONNX_INT64_MAX, OnnxExporterError, register_op, translation
from .ops_math import reduce_op
from .trace import Node, Value

_BOOL, _INT64 = 9, 7  # ONNX TensorProto element types


def _cast_like(g, name, dtype, like_dtype):
    if np.dtype(dtype) == np.dtype(like_dtype):
        return name
    return g.op("Cast", name, to=g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(like_dtype)))


def _host(array):
    """An index array made inside forward (NumPy or CuPy) as a NumPy array."""
    xp = xp_of(array)
    return np.asarray(array if xp is np else xp.asnumpy(array))


def _index_name(g, index):
    """An index (a traced Value or an array made inside forward) as int64."""
    if hasattr(index, "kind"):
        return _cast_like(g, g.name(index), index.dtype, np.int64)
    return g.const(_host(index).astype(np.int64))


def _is_array(k) -> bool:
    return hasattr(k, "kind") or isinstance(k, np.ndarray)


def _is_mask(k) -> bool:
    return _is_array(k) and np.dtype(k.dtype) == np.bool_


def _value_name(g, value, like):
    """A written value (a Value or a Python scalar) in ``like``'s dtype."""
    if hasattr(value, "kind"):
        return _cast_like(g, g.name(value), value.dtype, like.dtype)
    return g.scalar(value, like.dtype)


def _positions_at(g, n, x, key, alt_key):
    """The flat positions in ``x`` that ``x[key]`` reads, in the shape ``x[key]`` has."""
    count = g.op("Size", g.name(x))
    flat = g.op("Range", g.scalar(0, np.int64), count, g.scalar(1, np.int64))
    positions = Value("node", np.broadcast_to(np.int64(0), x.shape))
    positions.alt_shape, positions.name = x.alt_shape, g.op("Reshape", flat, g.shape_of(x))
    op = indexing.AdvancedIndex if any(_is_array(k) for k in key) else indexing.Index
    read = Node(op, {"x": positions, "key": tuple(key)}, [None], n.module)
    read.alt = Node(op, {"x": positions, "key": tuple(alt_key)}, [None], n.module)
    return translation(op)[0](g, read)


def _write(g, n, x, key, alt_key, value, reduction):
    """``x`` with ``value`` (broadcast to ``x[key]``'s shape) written (or added, or multiplied)
    at ``key``."""
    where = _positions_at(g, n, x, key, alt_key)
    updates = g.op("Expand", value, g.op("Shape", where))
    flat = g.op(
        "ScatterElements",
        g.op("Reshape", g.name(x), g.ints([-1])),
        g.op("Reshape", where, g.ints([-1])),
        g.op("Reshape", updates, g.ints([-1])),
        axis=0,
        reduction=reduction,
    )
    return g.op("Reshape", flat, g.shape_of(x))


def _check_reduction(g, reduction, what):
    if reduction is not None and g.opset < 16:
        raise OnnxExporterError(f"{what} needs opset_version >= 16 (ScatterElements reduction)")


def mask_split(key):
    """(leading full slices, the mask) when the key is one boolean mask after full slices
    (and only full slices after it); else None."""
    key = [k for k in key if k is not Ellipsis]
    masks = [i for i, k in enumerate(key) if _is_mask(k)]
    if len(masks) != 1:
        return None
    (d,) = masks
    if not key[d].shape:
        return None
    if not all(isinstance(k, slice) and k == slice(None) for i, k in enumerate(key) if i != d):
        return None
    return d, key[d]


def _mask_indices(g, mask):
    """(count, mask.ndim) int64 indices of the True entries of a boolean mask."""
    name = g.name(mask) if hasattr(mask, "kind") else g.const(_host(mask))
    return g.op("Transpose", g.op("NonZero", name), perm=[1, 0])


def mask_read(g, x, d, mask):
    """``x[(:,) * d + (mask,)]``: the entries at the mask's True positions (over dims d to
    d + mask.ndim) as one dim, whose size depends on the data."""
    k, rank = len(mask.shape), len(x.shape)
    indices = _mask_indices(g, mask)
    if d == 0:
        return g.op("GatherND", g.name(x), indices)
    # move the masked dims to the front, gather, and move the count dim back to d
    front = list(range(d, d + k)) + list(range(d)) + list(range(d + k, rank))
    picked = g.op("GatherND", g.op("Transpose", g.name(x), perm=front), indices)
    back = list(range(1, d + 1)) + [0] + list(range(d + 1, rank - k + 1))
    return g.op("Transpose", picked, perm=back)


@register_op(indexing.IndexPut)
def _index_put(g, n):
    x, key = n["x"], list(n["key"])
    value = _value_name(g, n["value"], x)
    reduction = "add" if n["accumulate"] else None
    _check_reduction(g, reduction, "index_put with accumulate=True")
    split = mask_split(key)
    if split is not None and split[0] == 0:  # x[mask] = v: scatter at the mask's True entries
        mask = split[1]
        indices = _mask_indices(g, mask)
        rows = g.op("Slice", g.op("Shape", indices), g.ints([0]), g.ints([1]))
        rest = g.op("Slice", g.shape_of(x), g.ints([len(mask.shape)]), g.ints([_ONNX_INT64_MAX]))
        updates = g.op("Expand", value, g.op("Concat", rows, rest, axis=0))
        return g.op("ScatterND", g.name(x), indices, updates, reduction=reduction)
    if any(_is_mask(k) for k in key):
        raise OnnxExporterError("index assignment with a boolean mask other than x[mask] = v")
    return _write(g, n, x, key, list(n.alt_arg("key")), value, reduction)


@register_op(scatter.IndexUpdate)
def _index_update(g, n):
    x, mode, alpha = n["x"], n["mode"], n["alpha"]
    source = _value_name(g, n["source"], x)
    if mode == "add" and alpha != 1:
        source = g.op("Mul", source, g.scalar(alpha, x.dtype))
    reduction = "add" if mode == "add" else None
    _check_reduction(g, reduction, "index_add")
    return _write(g, n, x, list(n["key"]), list(n.alt_arg("key")), source, reduction)


@register_op(scatter.Scatter)
def _scatter(g, n):
    x, index, src, dim = n["x"], n["index"], n["src"], int(n["dim"])
    reduction = {None: None, "add": "add", "multiply": "mul"}[n["reduce"]]
    _check_reduction(g, reduction, f"scatter with reduce={n['reduce']!r}")
    idx = _index_name(g, index)
    if hasattr(src, "kind") and len(src.shape):
        updates = g.name(src)
        if (src.shape, src.alt_shape) != (tuple(index.shape), getattr(index, "alt_shape", None)):
            rank = len(src.shape)  # scatter reads src's leading index.shape block
            zeros, axes = g.ints([0] * rank), g.ints(list(range(rank)))
            updates = g.op("Slice", updates, zeros, g.op("Shape", idx), axes)
        updates = _cast_like(g, updates, src.dtype, x.dtype)
    else:
        updates = g.op("Expand", _value_name(g, src, x), g.op("Shape", idx))
    return g.op("ScatterElements", g.name(x), idx, updates, axis=dim, reduction=reduction)


# -- reordering -------------------------------------------------------------------------------


def _roll_dim(g, name, dim, shift, alt_shift, size, alt_size):
    """Roll one dim: out = concat(x[p:], x[:p]) with p = -shift, which is right at every
    size when |shift| < size."""
    if size == 0:
        return name
    if shift == alt_shift and abs(shift) < min(size, alt_size or size):
        split = -shift
    else:
        if (shift % size) != (alt_shift % alt_size if alt_size else shift % size):
            g.warn_baked(f"roll shift {shift}")
        split = size - shift % size
    if split % size == 0:
        return name
    head = g.op("Slice", name, g.ints([split]), g.ints([_ONNX_INT64_MAX]), g.ints([dim]))
    tail = g.op("Slice", name, g.ints([0]), g.ints([split]), g.ints([dim]))
    return g.op("Concat", head, tail, axis=dim)


@register_op(reorder.Roll)
def _roll(g, n):
    x, shifts, dims = n["x"], n["shifts"], n["dims"]
    alt_shifts = n.alt_arg("shifts")
    if dims is None:  # the flattened tensor
        flat = g.op("Reshape", g.name(x), g.ints([-1]))
        size, alt_size = int(np.prod(x.shape)), int(np.prod(x.alt_shape))
        out = _roll_dim(g, flat, 0, int(shifts), int(alt_shifts), size, alt_size)
        return g.op("Reshape", out, g.shape_of(x))
    out = g.name(x)
    for shift, alt, d in zip(shifts, alt_shifts, dims):
        out = _roll_dim(g, out, int(d), int(shift), int(alt), x.shape[d], x.alt_shape[d])
    return out


@register_op(reorder.RepeatInterleave)
def _repeat_interleave(g, n):
    x, repeats, d = n["x"], n["repeats"], int(n["dim"])
    rank = len(x.shape)
    if isinstance(repeats, int | np.integer):
        if repeats != n.alt_arg("repeats"):
            g.warn_baked(f"repeat_interleave repeats {repeats}")
        copies = g.ints([1] * (d + 1) + [int(repeats)] + [1] * (rank - d - 1))
        spread = g.op("Expand", g.op("Unsqueeze", g.name(x), g.ints([d + 1])), copies)
        shape = g.shape_of(x)
        pieces = [g.op("Slice", shape, g.ints([0]), g.ints([d]))] if d else []
        pieces.append(g.ints([-1]))
        if d + 1 < rank:
            pieces.append(g.op("Slice", shape, g.ints([d + 1]), g.ints([_ONNX_INT64_MAX])))
        return g.op("Reshape", spread, g.op("Concat", *pieces, axis=0))
    counts = [int(c) for c in repeats]
    if counts != [int(c) for c in n.alt_arg("repeats")]:
        g.warn_baked(f"repeat_interleave repeats {counts}")
    rows = np.repeat(np.arange(len(counts)), counts)
    return g.op("Gather", g.name(x), g.ints(rows), axis=d)


@register_op(scan.CumProd)
def _cumprod(g, n):
    x, d = n["x"], int(n["dim"])
    dtype = x.dtype if n["dtype"] is None else np.dtype(n["dtype"])
    name = _cast_like(g, g.name(x), x.dtype, dtype)
    rank = len(x.shape)
    if rank == 0:
        return g.op("Identity", name)
    # out[.., i, ..] = prod over j <= i of x[.., j, ..]: a lower-triangular (i, j) mask
    # picks x or 1 on an (.., i, j, ..) grid, reduced over j
    if x.is_dynamic(d):
        size = g.dim(x, d)
        one = g.onnx.numpy_helper.from_array(np.ones(1, np.int64))
        square = g.op("ConstantOfShape", g.op("Concat", size, size, axis=0), value=one)
        lower = g.op("Cast", g.op("Trilu", square, upper=0), to=_BOOL)
    else:
        lower = g.const(np.tril(np.ones((x.shape[d],) * 2, np.bool_)))
    if d + 1 < rank:
        lower = g.op("Unsqueeze", lower, g.ints(list(range(2, rank - d + 1))))
    grid = g.op("Unsqueeze", name, g.ints([d]))
    picked = g.op("Where", lower, grid, g.scalar(1, dtype))
    return reduce_op(g, "ReduceProd", picked, [d + 1], False)
