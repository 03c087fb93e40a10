"""Linear algebra: matmul and its fixed-rank forms (mm, bmm, mv, dot, outer), einsum,
addmm/baddbmm and the fused ``linear`` layer op.

Every backward here runs on arrays with plain GEMMs, and on Tensors (double backward)
through these same ops, so the whole family is differentiable to any order.
"""

from __future__ import annotations

import builtins
import string

import numpy as np

from .. import parallel
from ..autograd import Function, broadcast_error
from ..dtypes import is_bfloat16
from ..tensor import Tensor
from . import cpu_rows
from ._util import array_matmul, check_same_device, xp_of
from .declare import declared
from .reduce import Sum


def _reduce_to(grad, shape):
    """Sum a broadcast gradient down to ``shape`` (leading dims, then size-1 dims)."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    ones = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i + lead] != 1)
    if isinstance(grad, Tensor):
        if lead:
            grad = Sum.apply(grad, dim=tuple(range(lead)), keepdim=False)
        return Sum.apply(grad, dim=ones, keepdim=True) if ones else grad
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    return grad.sum(axis=ones, keepdims=True) if ones else grad


def _keep_dtype(out, like):
    """NumPy computes bfloat16 (ml_dtypes) products in float32: cast back to ``like``'s dtype."""
    if out is None or out.dtype == like.dtype:
        return out
    return out.astype(like.dtype)


def _mT(x):
    return x.swapaxes(-1, -2)


# -- matmul -----------------------------------------------------------------------------------


class MatMul(Function):
    autocast, differentiable_backward = "lower", True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        out = array_matmul(a, b)
        return out if out.dtype is a.dtype else _keep_dtype(out, a)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        if isinstance(grad, Tensor):
            return _matmul_backward_graph(ctx, grad, a, b)
        ga = gb = None
        if a.ndim == 2 and b.ndim == 2:
            if ctx.needs_input_grad[0]:
                ga = array_matmul(grad, b.T)
            if ctx.needs_input_grad[1]:
                gb = array_matmul(a.T, grad)
            return _keep_dtype(ga, a), _keep_dtype(gb, b)
        a2 = a if a.ndim > 1 else a[None, :]
        b2 = b if b.ndim > 1 else b[:, None]
        g2 = grad
        if b.ndim == 1:
            g2 = g2[..., None]
        if a.ndim == 1:
            g2 = g2[..., None, :]
        if ctx.needs_input_grad[0]:
            ga = _reduce_to(array_matmul(g2, _mT(b2)), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            if b2.ndim == 2 and a2.ndim > 2:
                # x @ W with a batched x: one GEMM over the flattened batch
                k, n = b2.shape
                gb = array_matmul(a2.reshape(-1, k).T, g2.reshape(-1, n))
            else:
                gb = _reduce_to(array_matmul(_mT(a2), g2), b2.shape)
            gb = gb.reshape(b.shape)
        return _keep_dtype(ga, a), _keep_dtype(gb, b)


def _matmul_backward_graph(ctx, grad, a, b):
    # Under create_graph: einsum over the matrix letters; ellipsis covers batch dims.
    sa = "...ik" if a.ndim > 1 else "k"
    sb = "...kj" if b.ndim > 1 else "k"
    so = "..." + ("i" if a.ndim > 1 else "") + ("j" if b.ndim > 1 else "")
    if a.ndim == 1 and b.ndim == 1:
        so = ""
    ga = gb = None
    if ctx.needs_input_grad[0]:
        ta = sa if a.ndim > 1 else ("...k" if b.ndim > 1 else "k")
        ga = _reduce_to(einsum(f"{so},{sb}->{ta}", grad, b), a.shape)
    if ctx.needs_input_grad[1]:
        tb = sb if b.ndim > 1 else ("...k" if a.ndim > 1 else "k")
        gb = _reduce_to(einsum(f"{sa},{so}->{tb}", a, grad), b.shape)
    return ga, gb


def _check_matmul(name, a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(
            f"{name}(): expected Tensor arguments, got {type(a).__name__} and {type(b).__name__}"
        )
    if a._array.dtype != b._array.dtype:
        raise RuntimeError(
            f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != {b.dtype}"
        )
    if type(a._array) is not np.ndarray or type(b._array) is not np.ndarray:
        check_same_device(name, a, b)


def _product_error(rows: int, k: int, second: tuple) -> RuntimeError:
    """PyTorch's error (mv's or mm's) for a ``rows x k`` matrix times a vector or matrix of
    shape ``second`` whose first dim is not ``k``."""
    if len(second) == 1:
        return RuntimeError(
            f"size mismatch, got input ({rows}), mat ({rows}x{k}), vec ({second[0]})"
        )
    return RuntimeError(
        f"mat1 and mat2 shapes cannot be multiplied ({rows}x{k} and {'x'.join(map(str, second))})"
    )


@declared(MatMul, operator="matmul", reflected=True)
def matmul(input: Tensor, other: Tensor) -> Tensor:
    r"""Matrix product with NumPy/PyTorch semantics: 1-D operands are vectors, batch
    dimensions broadcast.

    Example::

        >>> ember.matmul(ember.ones(5, 2, 3), ember.ones(3, 4)).shape
        ember.Size([5, 2, 4])
    """
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        a, b = input._array, other._array
        if a.dtype is b.dtype and type(a) is type(b):
            # NumPy and CuPy refuse what PyTorch refuses, with a ValueError: the shapes are
            # checked below only then (each NumPy attribute read costs ~0.3k instructions)
            try:
                return MatMul.apply(input, other)
            except ValueError:
                pass
    _check_matmul("matmul", input, other)
    sa, sb = input._array.shape, other._array.shape
    if not sa or not sb:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {len(sa)}D and {len(sb)}D"
        )
    k_a = sa[-1]
    k_b = sb[0] if len(sb) == 1 else sb[-2]
    if len(sb) <= 2:  # PyTorch's dot, mv or mm, a's batch dims folded into its rows
        if k_a != k_b:
            if len(sa) == 1 and len(sb) == 1:
                raise RuntimeError(
                    f"inconsistent tensor size, expected tensor [{k_a}] and src [{k_b}] to have "
                    f"the same number of elements, but got {k_a} and {k_b} elements respectively"
                )
            raise _product_error(int(np.prod(sa[:-1])), k_a, sb)
    elif len(sa) <= 2 and input.requires_grad and k_a != k_b:
        # PyTorch folds b's batch into rows, transposed, to save memory in a's backward
        raise _product_error(int(np.prod(sb[:-2])) * sb[-1], k_b, sa[::-1])
    else:  # PyTorch's bmm over the broadcast batch dims
        batch_a, batch_b = sa[:-2], sb[:-2]
        if (mismatch := broadcast_error(batch_a, batch_b)) is not None:
            raise mismatch
        if k_a != k_b:
            batch = int(np.prod(np.broadcast_shapes(batch_a, batch_b)))
            raise RuntimeError(
                f"Expected size for first two dimensions of batch2 tensor to be: "
                f"[{batch}, {k_a}] but got: [{batch}, {k_b}]."
            )
    return MatMul.apply(input, other)


@declared(MatMul, name="mm")
def mm(input: Tensor, mat2: Tensor) -> Tensor:
    r"""Product of two 2-D matrices (no broadcasting)."""
    _check_matmul("mm", input, mat2)
    if input.ndim != 2:
        raise RuntimeError(f"self must be a matrix, got {input.ndim}-D tensor")
    if mat2.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix, got {mat2.ndim}-D tensor")
    if input._array.shape[1] != mat2._array.shape[0]:
        raise _product_error(*input._array.shape, mat2._array.shape)
    return MatMul.apply(input, mat2)


@declared(MatMul, name="bmm")
def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    r"""Batched product of (b, n, m) and (b, m, p) tensors."""
    _check_matmul("bmm", input, mat2)
    if input.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if mat2.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    (b, _, m), (b2, m2, _) = input._array.shape, mat2._array.shape
    if (b2, m2) != (b, m):
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{b}, {m}] but "
            f"got: [{b2}, {m2}]."
        )
    return MatMul.apply(input, mat2)


@declared(MatMul, name="mv", autocast="cuda:lower")
def mv(input: Tensor, vec: Tensor) -> Tensor:
    r"""Matrix-vector product."""
    _check_matmul("mv", input, vec)
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(
            f"vector + matrix @ vector expected, got {input.ndim}, {input.ndim}, {vec.ndim}"
        )
    if input._array.shape[1] != vec._array.shape[0]:
        raise _product_error(*input._array.shape, vec._array.shape)
    return MatMul.apply(input, vec)


@declared(MatMul, name="dot", autocast="cuda:promote")
def dot(input: Tensor, other: Tensor) -> Tensor:
    r"""Inner product of two 1-D tensors."""
    _check_matmul("dot", input, other)
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    return matmul(input, other)


@declared(None)
def inner(input: Tensor, other: Tensor) -> Tensor:
    r"""Inner product over the last dimension of each operand."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    la = string.ascii_lowercase[: input.ndim - 1]
    lb = string.ascii_uppercase[: other.ndim - 1]
    return einsum(f"{la}z,{lb}z->{la}{lb}", input, other)


class Outer(Function):
    differentiable_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).outer(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = _matmul_any(grad, b) if ctx.needs_input_grad[0] else None
        gb = _matmul_any(a, grad) if ctx.needs_input_grad[1] else None
        return ga, gb


def _matmul_any(a, b):
    return MatMul.apply(a, b) if isinstance(a, Tensor) else array_matmul(a, b)


@declared(Outer, aliases=("ger",))
def outer(input: Tensor, vec2: Tensor) -> Tensor:
    r"""Outer product of two 1-D tensors."""
    _check_matmul("outer", input, vec2)
    if input.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got {input.ndim}-D and {vec2.ndim}-D")
    return Outer.apply(input, vec2)


@declared(MatMul, name="addmm")
def addmm(input, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:
    r"""``beta * input + alpha * (mat1 @ mat2)``."""
    prod = mm(mat1, mat2)
    return _scaled_sum(input, prod, beta, alpha)


@declared(MatMul, name="baddbmm")
def baddbmm(input, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    r"""``beta * input + alpha * (batch1 @ batch2)`` for batches of matrices."""
    prod = bmm(batch1, batch2)
    return _scaled_sum(input, prod, beta, alpha)


def _scaled_sum(input, prod, beta, alpha):
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:  # input is ignored, nan and inf included, as in PyTorch
        return prod
    return prod + (input if beta == 1 else input * beta)


# -- einsum -----------------------------------------------------------------------------------


def _parse_einsum(equation, ndims):
    """Split ``equation`` into per-operand subscripts and the output subscript, making
    the implicit output explicit (sorted letters used once, ellipsis first)."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    subs = lhs.split(",")
    if len(subs) != len(ndims):
        raise ValueError(
            f"einsum(): {len(subs)} operand subscripts in {equation!r} but {len(ndims)} operands"
        )
    for s, nd in zip(subs, ndims):
        letters = s.replace("...", "")
        if not all(c.isalpha() for c in letters):
            raise ValueError(f"einsum(): invalid subscript {s!r} in {equation!r}")
        if len(letters) != nd if "..." not in s else len(letters) > nd:
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({len(letters)}) does not "
                f"match the number of dimensions ({nd}) for operand {subs.index(s)}"
                + ("" if "..." in s else " and no ellipsis was given")
            )
    if not arrow:
        counts = {}
        for c in lhs.replace("...", "").replace(",", ""):
            counts[c] = counts.get(c, 0) + 1
        out = ("..." if "..." in lhs else "") + "".join(
            sorted(c for c, n in counts.items() if n == 1)
        )
    return subs, out


def _einsum_arrays(xp, equation, arrays):
    # Contraction-order search and BLAS dispatch cost ~10-20 us: worth it for three or
    # more operands or large pairs, not for one operand or small pairs. NumPy's plain
    # einsum cannot sum over ellipsis dims missing from the output; the optimized one can.
    n = len(arrays)
    lhs, _, rhs = equation.partition("->")
    optimize = (
        n > 2
        or (n == 2 and arrays[0].size * arrays[1].size > 1 << 16)
        or ("..." in lhs and "..." not in rhs)
    )
    if is_bfloat16(arrays[0].dtype):  # no bfloat16 einsum in NumPy; CuPy's is integer-style
        out = xp.einsum(equation, *[a.astype(np.float32) for a in arrays], optimize=optimize)
        return out.astype(arrays[0].dtype)
    return xp.einsum(equation, *arrays, optimize=optimize)


class Einsum(Function):
    autocast, differentiable_backward = "lower", True

    @staticmethod
    def forward(ctx, *operands, subs, out):
        ctx.subs, ctx.out = subs, out
        ctx.save_for_backward(*operands)
        return _einsum_arrays(xp_of(operands[0]), ",".join(subs) + "->" + out, operands)

    @staticmethod
    def backward(ctx, grad):
        operands = ctx.saved_tensors
        return tuple(
            _einsum_grad(i, grad, operands, ctx.subs, ctx.out) if need else None
            for i, need in enumerate(ctx.needs_input_grad)
        )


def _einsum_grad(i, grad, operands, subs, out):
    """d/d(operand i): einsum of the output gradient with the other operands, adding
    ones for letters only operand i has and an identity for its repeated letters."""
    target = subs[i]
    xp_like = operands[i]._array if isinstance(operands[i], Tensor) else operands[i]
    xp = xp_of(xp_like)
    shape = tuple(operands[i].shape)
    sizes = _letter_sizes(subs[i], shape)
    terms = [out] + [s for j, s in enumerate(subs) if j != i]
    args = [grad] + [o for j, o in enumerate(operands) if j != i]
    present = set("".join(terms))
    result = ""
    free = iter(c for c in string.ascii_letters if c not in "".join(subs) + out)
    for c in target.replace("...", "."):
        if c == ".":
            if "..." not in "".join(terms):
                pre = target.index("...")
                ell = shape[pre : pre + len(shape) - len(target) + 3]
                terms.append("...")
                args.append(xp.ones(ell, xp_like.dtype))
            result += "..."
            continue
        if c in result:  # repeated letter: a diagonal, so multiply by the identity
            new = next(free)
            terms.append(c + new)
            args.append(xp.eye(sizes[c], dtype=xp_like.dtype))
            result += new
            continue
        if c not in present:
            terms.append(c)
            args.append(xp.ones(sizes[c], xp_like.dtype))
            present.add(c)
        result += c
    if isinstance(grad, Tensor):
        args = [a if isinstance(a, Tensor) else Tensor._make(a, False, None, 0) for a in args]
        g = Einsum.apply(*args, subs=terms, out=result)
    else:
        g = _einsum_arrays(xp, ",".join(terms) + "->" + result, args)
    return _reduce_to(g, shape)


def _letter_sizes(sub, shape):
    letters = sub.replace("...", "")
    if "..." in sub:
        pre = sub.index("...")
        dims = list(shape[:pre]) + list(shape[len(shape) - (len(letters) - pre) :])
    else:
        dims = list(shape)
    return dict(zip(letters, dims))


@declared(Einsum, method=False)
def einsum(equation: str, *operands) -> Tensor:
    r"""Einstein summation over ``operands`` (list form ``einsum(eq, [a, b])`` too).

    Example::

        >>> ember.einsum("bij,bjk->bik", a, b)  # batched matmul
    """
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum(): must provide at least one operand")
    for o in operands:
        if not isinstance(o, Tensor):
            raise TypeError(f"einsum(): expected Tensor operands, got {type(o).__name__}")
    dts = {o._array.dtype for o in operands}
    if len(dts) > 1:
        raise RuntimeError(
            f"einsum(): operands must have the same dtype, got {[str(o.dtype) for o in operands]}"
        )
    check_same_device("einsum", *operands)
    subs, out = _parse_einsum(equation, [o.ndim for o in operands])
    try:
        return Einsum.apply(*operands, subs=subs, out=out)
    except ValueError as err:
        shapes = [list(o.shape) for o in operands]
        raise RuntimeError(f"einsum(): {err} (equation {equation!r}, shapes {shapes})") from None


@declared(Einsum, name="tensordot", autocast="cuda:promote")
def tensordot(a: Tensor, b: Tensor, dims=2) -> Tensor:
    r"""Contract the last ``dims`` dims of ``a`` with the first of ``b``, or the dim lists
    ``dims = (dims_a, dims_b)``."""
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        dims_a, dims_b = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(dims_a) != len(dims_b):
        raise RuntimeError(
            f"both dimension lists should have same length, got {dims_a} and {dims_b}"
        )
    dims_a = [d % a.ndim for d in dims_a]
    dims_b = [d % b.ndim for d in dims_b]
    for da, db in zip(dims_a, dims_b):
        if a.shape[da] != b.shape[db]:
            raise RuntimeError(
                f"contracted dimensions need to match, but first has size {a.shape[da]} in "
                f"dim {da} and second has size {b.shape[db]} in dim {db}"
            )
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [next(letters) for _ in range(b.ndim)]
    for da, db in zip(dims_a, dims_b):
        sb[db] = sa[da]
    out = [c for i, c in enumerate(sa) if i not in dims_a]
    out += [c for i, c in enumerate(sb) if i not in dims_b]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


@declared(None)
def trace(input: Tensor) -> Tensor:
    r"""Sum of the main diagonal of a 2-D tensor."""
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    n = builtins.min(input.shape)
    if input.shape[0] != input.shape[1]:
        return einsum("ii->", input[:n, :n])
    return einsum("ii->", input)


# -- linear -----------------------------------------------------------------------------------


def _threaded_fits(x2, weight, other) -> bool:
    """Whether products of ``x2``- and ``weight``-sized operands go to ``core.parallel``
    whole (the bias added in the forward GEMM's pieces, the two backward GEMMs in one
    region): float32/float64 NumPy arrays of one dtype (``other``: the bias or the output
    gradient), a product large enough to be split between threads."""
    return (
        other is not None
        and x2.size * weight.shape[0] >= parallel.MATMUL_MIN_WORK  # first: small ones stop
        and type(x2) is np.ndarray
        and type(weight) is np.ndarray
        and type(other) is np.ndarray
        and x2.dtype in cpu_rows.ROW_DTYPES
        and weight.dtype == x2.dtype == other.dtype
    )


class Linear(Function):
    """``input @ weight.T + bias`` as one GEMM over the flattened leading dims."""

    autocast, differentiable_backward = "lower", True

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        if _threaded_fits(x2, weight, bias):  # each thread adds the bias to its piece
            out = parallel.matmul(x2, weight.T, bias)
        else:
            out = _keep_dtype(array_matmul(x2, weight.T), x)
            if bias is not None and cpu_rows.binary(np.add, out, bias, out=out) is None:
                out += bias
        return out.reshape(x.shape[:-1] + (weight.shape[0],)) if x.ndim != 2 else out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        if isinstance(grad, Tensor):
            gx = MatMul.apply(grad, weight) if need_x else None
            gw = einsum("...o,...i->oi", grad, x) if need_w else None
            gb = None
            if need_b:
                lead = tuple(range(grad.ndim - 1))
                gb = Sum.apply(grad, dim=lead, keepdim=False) if lead else grad
            return gx, gw, gb
        g2 = grad.reshape(-1, grad.shape[-1]) if grad.ndim != 2 else grad
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        if need_x and need_w and _threaded_fits(x2, weight, g2):
            gx, gw, gb = parallel.matmul_pair((g2, weight), (g2.T, x2), sum_second_rows=need_b)
            gx = gx.reshape(x.shape)
        else:
            gx = array_matmul(g2, weight).reshape(x.shape) if need_x else None
            gw = array_matmul(g2.T, x2) if need_w else None
            gb = g2.sum(0) if need_b else None
        return _keep_dtype(gx, x), _keep_dtype(gw, weight), gb


@declared(Linear, method=False)
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    r"""``input @ weight.T + bias``: input (*, in), weight (out, in), bias (out,).

    Example::

        >>> F.linear(ember.ones(4, 3), ember.ones(2, 3)).shape
        ember.Size([4, 2])
    """
    _check_matmul("linear", input, weight)
    if weight.ndim != 2 and weight.ndim != 1:
        raise RuntimeError(f"linear(): weight must be 1-D or 2-D, got {weight.ndim}-D")
    if input.ndim == 0:
        raise RuntimeError("linear(): input must be at least 1-D, got a 0-D tensor")
    if weight.ndim == 1:
        out = matmul(input, weight)
        return out if bias is None else out + bias
    k = input._array.shape[-1]
    if weight._array.shape[1] != k:
        raise _product_error(int(np.prod(input._array.shape[:-1])), k, weight._array.shape[::-1])
    if bias is not None:
        if bias._array.dtype != input._array.dtype:
            raise RuntimeError(
                f"linear(): bias dtype {bias.dtype} does not match input dtype {input.dtype}"
            )
        if bias._array.shape not in ((weight._array.shape[0],), (), (1,)):
            raise RuntimeError(
                f"linear(): bias of shape {list(bias.shape)} does not match "
                f"{weight._array.shape[0]} output features"
            )
        if bias._array.shape != (weight._array.shape[0],):
            return Linear.apply(input, weight, None) + bias
    return Linear.apply(input, weight, bias)
