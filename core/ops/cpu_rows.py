"""Row-chunked NumPy kernels for the CPU thread pool (``core.parallel``).

Each kernel here is the plain NumPy computation of its op applied to a slice of rows (or
of the flattened array), so a chunk computes exactly what the whole-array call would for
those rows: results do not depend on the thread count. The ops call these only for
float32/float64 NumPy arrays; CuPy arrays and other dtypes keep their own paths.
"""

from __future__ import annotations

import numpy as np

from .. import autograd_engine, parallel
from ..parallel import parallel_for

ROW_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# A kernel that makes a single pass over memory (an add, a product, relu, a copy) gains from
# more threads only on large arrays: handing a chunk to a sleeping thread costs ~0.1 ms on a
# VM. Measured on the 2-core CI machine (2026-12-06), a float32 add whole / in two chunks:
# 1M elements 161 / 188 µs, 2M 497 / 454 µs, 4M 1273 / 1131 µs. Such kernels split from
# this many chunks' worth of elements; kernels doing more per element, from two.
SINGLE_PASS_CHUNKS = 32


def split_size(single_pass: bool = False) -> int:
    """Elements from which a kernel is split into chunks."""
    return (SINGLE_PASS_CHUNKS if single_pass else 2) * parallel.MIN_CHUNK_ELEMENTS


def fits(*arrays, elements: int | None = None, single_pass: bool = False) -> bool:
    """Whether the arrays are float32/float64 NumPy arrays of one dtype, with work enough
    (``elements``, default the first array's size) to be split between threads: below
    that the ops keep their whole-array NumPy path, the same computation with less Python
    around it. ``single_pass``: a kernel making one pass over memory, which needs more."""
    first = arrays[0]
    return (
        type(first) is np.ndarray
        and first.dtype in ROW_DTYPES
        and (first.size if elements is None else elements) >= split_size(single_pass)
        and all(type(a) is np.ndarray and a.dtype == first.dtype for a in arrays)
    )


def map_flat(body, inputs, out_dtypes, single_pass: bool = False):
    """Arrays of ``inputs[0]``'s shape, one per dtype in ``out_dtypes``, filled by
    ``body(*input_slices, *output_slices)`` over chunks of the flattened arrays (all
    inputs share one shape). A strided input (a transpose, a broadcast gradient) is split
    along its first dim instead, each chunk copying its own part to contiguous memory.
    Below ``split_size(single_pass)`` elements ``body`` runs once, on the whole arrays."""
    shape = inputs[0].shape
    outs = [np.empty(shape, dt) for dt in out_dtypes]
    if inputs[0].size < split_size(single_pass):  # one chunk: skip the machinery
        body(*(np.ascontiguousarray(a).reshape(-1) for a in inputs + tuple(outs)))
        return tuple(outs)
    if all(a.flags.c_contiguous for a in inputs):
        flats = [a.reshape(-1) for a in inputs + tuple(outs)]

        def run(start, stop):
            body(*(f[start:stop] for f in flats))

        parallel_for(run, flats[0].size)
    else:

        def run(start, stop):
            pieces = [np.ascontiguousarray(a[start:stop]).reshape(-1) for a in inputs]
            body(*pieces, *(o[start:stop].reshape(-1) for o in outs))

        parallel_for(run, shape[0], inputs[0].size // shape[0])
    return tuple(outs)


def product(a, b):
    """``a * b``: in parallel chunks when ``binary`` takes them (large float NumPy arrays of
    one dtype, ``b`` of ``a``'s shape or broadcast into it)."""
    out = binary(np.multiply, a, b)
    return a * b if out is None else out


def copy(x):
    """A new C-ordered array equal to ``x``, copied in chunks when ``fits(x, single_pass=True)``
    (a copy is a single pass over memory), else whole (a CuPy array by CuPy)."""
    if not fits(x, single_pass=True):
        return x.copy()
    return map_flat(lambda src, dst: np.copyto(dst, src), (x,), (x.dtype,), single_pass=True)[0]


def add_in_place(total, g):
    """``total += g``, in chunks when ``binary`` takes the operands."""
    if binary(np.add, total, g, out=total) is None:
        total += g


autograd_engine.register_leaf_grad_kernels(copy, add_in_place)


# The arithmetic ops' first, cheapest test (``split_size(single_pass=True)`` at import).
SPLIT_ELEMENTS = split_size(single_pass=True)


def binary(ufunc, a, b, out=None):
    """``ufunc(a, b)`` in row chunks on ember's threads, for float32/float64 NumPy arrays of
    one dtype where ``a`` is the result's shape and ``b`` equal to it or broadcast into it
    (a bias row, a per-channel scale); written to ``out`` when given. None when the
    operands do not qualify: the caller then computes it whole, as before."""
    if not fits(a, b, single_pass=True):
        return None
    if a.shape == b.shape and out is None:
        return map_flat(lambda x, y, o: ufunc(x, y, out=o), (a, b), (a.dtype,))[0]
    shape = a.shape
    if not shape or np.broadcast_shapes(shape, b.shape) != shape:
        return None  # b grows a (or a is 0-d): NumPy's own loop
    rows = shape[0]
    b_rows = b.ndim == len(shape) and b.shape[0] == rows  # else b is whole in every chunk
    if out is None:
        out = np.empty(shape, a.dtype)

    def run(start, stop):
        ufunc(a[start:stop], b[start:stop] if b_rows else b, out=out[start:stop])

    parallel_for(run, rows, a.size // rows)
    return out


# NumPy's maximum against a scalar runs a plain loop; against an array, its vector loop:
# on the 2-core CI machine (2026-12-06) max(x, 0) of 1.38M float32 took 512 µs, and the same
# pieces against a 64K-element block of zeros 244 µs (an add reads 133 µs). Read-only.
_ZERO_BLOCK = 1 << 16
_zeros: dict = {}


def _zero_block(dtype):
    block = _zeros.get(dtype)
    if block is None:
        block = np.zeros(_ZERO_BLOCK, dtype)
        block.flags.writeable = False
        _zeros[dtype] = block
    return block


def _relu_into(x, out):
    # zeros first: on a tie NumPy's maximum returns its second operand, so -0.0 stays -0.0
    # as in PyTorch (x < 0 ? 0 : x); NaN stays NaN
    zeros = _zero_block(x.dtype)
    size, block = x.size, zeros.size
    for start in range(0, size, block):
        stop = min(start + block, size)
        np.maximum(zeros[: stop - start], x[start:stop], out=out[start:stop])


def _relu_grad_into(grad, y, out):
    # 1.0 where the output is not zero, then times the gradient: grad * (y != 0) at 60 % of
    # its time (a bool operand costs a cast per element). On relu's output y != 0 is
    # PyTorch's not (y <= 0): a NaN output passes its gradient through.
    np.not_equal(y, 0, out=out, casting="unsafe")
    np.multiply(out, grad, out=out)


def relu(x):
    """``max(x, 0)`` of a float32/float64 NumPy array (chunks on the threads when large)."""
    if x.size < _ZERO_BLOCK:  # small: the scalar loop costs less than the slicing
        return np.maximum(0, x)  # the zeros first here too: -0.0 stays -0.0
    return map_flat(_relu_into, (x,), (x.dtype,), single_pass=True)[0]


def relu_grad(grad, y):
    """``grad * (y != 0)`` for relu's output ``y`` and its gradient, float32/float64 NumPy
    arrays of one dtype and shape."""
    if grad.size < _ZERO_BLOCK:
        return grad * (y != 0)
    return map_flat(_relu_grad_into, (grad, y), (grad.dtype,), single_pass=True)[0]


def dropout_mask(draws, p, scale):
    """``(draws >= p) * scale``: the scaled keep-mask of dropout from its uniform draws."""

    def chunk(r, mask):
        np.greater_equal(r, p, out=mask)
        mask *= scale

    return map_flat(chunk, (draws,), (draws.dtype,))[0]


def _last_dim_rows(x):
    """(rows, n) C-contiguous view of ``x`` over its last dim (a copy if not contiguous)."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


# -- softmax / log-softmax over the last dim ----------------------------------------------------


def softmax_forward(x, log=False):
    x2 = _last_dim_rows(x)
    out = np.empty_like(x2)

    def run(start, stop):
        xs, o = x2[start:stop], out[start:stop]
        np.subtract(xs, xs.max(axis=1, keepdims=True), out=o)
        if log:
            o -= np.log(np.exp(o).sum(axis=1, keepdims=True))
        else:
            np.exp(o, out=o)
            o /= o.sum(axis=1, keepdims=True)

    parallel_for(run, *x2.shape)
    return out.reshape(x.shape)


def softmax_backward(grad, y, log=False):
    """Input gradient of softmax (``log``: log-softmax) over the last dim from its output."""
    g2, y2 = _last_dim_rows(grad), _last_dim_rows(y)
    out = np.empty_like(g2)

    def run(start, stop):
        gs, ys, o = g2[start:stop], y2[start:stop], out[start:stop]
        if log:
            np.exp(ys, out=o)
            o *= gs.sum(axis=1, keepdims=True)
            np.subtract(gs, o, out=o)
        else:
            gy = gs * ys
            np.multiply(ys, gy.sum(axis=1, keepdims=True), out=o)
            np.subtract(gy, o, out=o)

    parallel_for(run, *g2.shape)
    return out.reshape(grad.shape)


def masked_softmax_(scores):
    """Softmax over the last dim of ``scores`` in place, in row chunks (see
    ``softmax_rows_``)."""
    s2 = scores.reshape(-1, scores.shape[-1])  # scores is a fresh contiguous array
    parallel_for(lambda start, stop: softmax_rows_(s2[start:stop]), *s2.shape)
    return scores


def softmax_rows_(s):
    """Softmax of each row of the 2-D ``s`` in place; rows that are all ``-inf`` (fully
    masked) become zeros, as PyTorch's math path of attention."""
    top = s.max(axis=1, keepdims=True)
    top[top == -np.inf] = 0
    s -= top
    np.exp(s, out=s)
    total = s.sum(axis=1, keepdims=True)
    total[total == 0] = 1
    s /= total


def softmax_jacobian_(gp, probs):
    """``gp = probs * (gp - sum(gp * probs))`` over the last dim, in place on ``gp``."""
    g2 = gp.reshape(-1, gp.shape[-1])
    p2 = probs.reshape(-1, probs.shape[-1])

    def run(start, stop):
        g, p = g2[start:stop], p2[start:stop]
        g -= (g * p).sum(axis=1, keepdims=True)
        g *= p

    parallel_for(run, *g2.shape)
    return gp


# -- cross entropy with class-index targets -------------------------------------------------------


def cross_entropy_forward(x2, t_safe, w, smoothing):
    """Per row of the (rows, classes) logits: ``exp(x - max)``, its sum, the shifted logit
    of the target class and, with ``smoothing``, the (``w``-weighted) sum of the shifted
    logits. Returns ``(exps, total, picked, weighted_sum)``."""
    rows, _ = x2.shape
    exps = np.empty_like(x2)
    total = np.empty(rows, x2.dtype)
    picked = np.empty(rows, x2.dtype)
    weighted_sum = None
    if smoothing:
        weighted_sum = np.empty(rows, np.result_type(x2, w) if w is not None else x2.dtype)

    def run(start, stop):
        s = exps[start:stop]
        xs = x2[start:stop]
        np.subtract(xs, xs.max(axis=1, keepdims=True), out=s)
        picked[start:stop] = s[np.arange(stop - start), t_safe[start:stop]]
        if smoothing:
            weighted_sum[start:stop] = s.sum(axis=1) if w is None else s @ w
        np.exp(s, out=s)
        total[start:stop] = s.sum(axis=1)

    parallel_for(run, *x2.shape)
    return exps, total, picked, weighted_sum


def cross_entropy_backward(exps, row_coef, t_safe, target_grad, smooth_rows, w):
    """``exps * row_coef[:, None]``, less ``target_grad`` at each row's target class and
    less ``smooth_rows[:, None]`` (times ``w``) everywhere when label smoothing is on."""
    rows = len(exps)
    gx = np.empty(exps.shape, np.result_type(exps, row_coef))
    target_grad = np.broadcast_to(target_grad, (rows,))

    def run(start, stop):
        g = gx[start:stop]
        np.multiply(exps[start:stop], row_coef[start:stop, None], out=g)
        g[np.arange(stop - start), t_safe[start:stop]] -= target_grad[start:stop]
        if smooth_rows is not None:
            per_row = smooth_rows[start:stop, None]
            g -= per_row if w is None else per_row * w

    parallel_for(run, *exps.shape)
    return gx
