"""matmul family, einsum, addmm/baddbmm and F.linear: parity with PyTorch, float64
finite differences, double backward (gradient penalty) and shape/dtype errors."""

import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as F
from tests.helpers import check_op, to_numpy

MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((5, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (5, 3, 4)),
    ((3,), (2, 3, 4)),
    ((2, 2, 3), (3,)),
    ((1, 3), (3, 1)),
    ((0, 3), (3, 2)),
    ((2, 0), (0, 3)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(sa, sb):
    check_op([sa, sb], lambda a, b: a @ b)
    check_op([sa, sb], lambda a, b: a.matmul(b) * 2)


def test_matmul_noncontiguous_and_rmatmul():
    check_op([(3, 2), (4, 3)], lambda a, b: a.transpose(0, 1) @ b.transpose(0, 1))
    check_op([(4, 2), (2, 3)], lambda a, b: b.__rmatmul__(a), lambda a, b: b.__rmatmul__(a))


@pytest.mark.parametrize(
    "name,sa,sb",
    [
        ("mm", (2, 3), (3, 4)),
        ("bmm", (2, 2, 3), (2, 3, 4)),
        ("mv", (2, 3), (3,)),
        ("dot", (3,), (3,)),
        ("outer", (3,), (4,)),
        ("inner", (2, 3), (4, 3)),
        ("inner", (3,), (3,)),
    ],
)
def test_fixed_rank_products(name, sa, sb):
    check_op(
        [sa, sb], lambda a, b: getattr(ember, name)(a, b), lambda a, b: getattr(torch, name)(a, b)
    )
    check_op([sa, sb], lambda a, b: getattr(a, name)(b), lambda a, b: getattr(a, name)(b))


@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0)])
def test_addmm_baddbmm(beta, alpha):
    check_op(
        [(4,), (2, 3), (3, 4)],
        lambda c, a, b: ember.addmm(c, a, b, beta=beta, alpha=alpha),
        lambda c, a, b: torch.addmm(c, a, b, beta=beta, alpha=alpha),
    )
    check_op(
        [(2, 4), (2, 2, 3), (2, 3, 4)],
        lambda c, a, b: ember.baddbmm(c, a, b, beta=beta, alpha=alpha),
        lambda c, a, b: torch.baddbmm(c, a, b, beta=beta, alpha=alpha),
    )


def test_addmm_beta_zero_ignores_input():
    out = ember.addmm(ember.full((2,), float("nan")), ember.ones(2, 3), ember.ones(3, 2), beta=0)
    assert out.tolist() == [[3.0, 3.0], [3.0, 3.0]]


EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ij->ji", [(2, 3)]),
    ("i,j->ij", [(2,), (3,)]),
    ("i,i->", [(3,), (3,)]),
    ("ij,ij->i", [(2, 3), (2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (3, 4)]),
    ("b...i,bi->b...", [(2, 4, 3), (2, 3)]),
    ("...i->i", [(2, 4, 3)]),
    ("i...->...", [(2, 4, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("...ij,...jk", [(1, 2, 3), (4, 3, 2)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES)
def test_einsum(eq, shapes):
    check_op(shapes, lambda *xs: ember.einsum(eq, *xs), lambda *xs: torch.einsum(eq, *xs))


def test_einsum_list_form_and_errors():
    check_op(
        [(2, 3), (3,)],
        lambda a, b: ember.einsum("ij,j->i", [a, b]),
        lambda a, b: torch.einsum("ij,j->i", [a, b]),
    )
    with pytest.raises(ValueError, match="2 operand subscripts"):
        ember.einsum("ij,jk->ik", ember.ones(2, 3))
    with pytest.raises(RuntimeError, match="number of subscripts"):
        ember.einsum("ijk->i", ember.ones(2, 3))
    with pytest.raises(RuntimeError, match="einsum\\(\\).*shapes \\[\\[2, 3\\], \\[4, 5\\]\\]"):
        ember.einsum("ij,jk->ik", ember.ones(2, 3), ember.ones(4, 5))


@pytest.mark.parametrize(
    "sa,sb,dims",
    [
        ((2, 3, 4), (3, 4, 5), 2),
        ((2, 3), (3, 4), 1),
        ((2, 3), (4, 5), 0),
        ((2, 3, 4), (4, 2), ([0, 2], [1, 0])),
    ],
)
def test_tensordot(sa, sb, dims):
    check_op(
        [sa, sb], lambda a, b: ember.tensordot(a, b, dims), lambda a, b: torch.tensordot(a, b, dims)
    )


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (4, 2)])
def test_trace(shape):
    check_op([shape], ember.trace, torch.trace)
    check_op([shape], lambda x: x.trace(), lambda x: x.trace())


def test_tensordot_mismatch_raises():
    with pytest.raises(RuntimeError, match="contracted dimensions need to match"):
        ember.tensordot(ember.ones(2, 3), ember.ones(4, 5), 1)


LINEAR_SHAPES = [
    ((4, 3), (2, 3)),
    ((5, 4, 3), (2, 3)),
    ((3,), (2, 3)),
    ((2, 1, 3), (1, 3)),
    ((0, 3), (2, 3)),
]


@pytest.mark.parametrize("sx,sw", LINEAR_SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(sx, sw, bias):
    if bias:
        check_op([sx, sw, sw[:1]], F.linear, torch.nn.functional.linear)
    else:
        check_op([sx, sw], F.linear, torch.nn.functional.linear)


def test_linear_noncontiguous_input_and_scalar_bias():
    check_op(
        [(3, 4), (2, 3), (2,)],
        lambda x, w, b: F.linear(x.transpose(0, 1), w, b),
        lambda x, w, b: torch.nn.functional.linear(x.transpose(0, 1), w, b),
    )
    check_op([(4, 3), (2, 3), ()], F.linear, torch.nn.functional.linear)


def _gradient_penalty(mod, fn, arrays):
    ts = [mod.tensor(a, requires_grad=True) for a in arrays]
    out = fn(mod, *ts)
    (g,) = mod.autograd.grad(out.sum(), ts[0], create_graph=True)
    (g**2).sum().backward()
    return [t.grad for t in ts]


DOUBLE_BACKWARD = {
    "mlp": (
        lambda m, x, w1, b1, w2: m.nn.functional.linear(
            m.tanh(m.nn.functional.linear(x, w1, b1)), w2
        ),
        [(5, 3), (4, 3), (4,), (2, 4)],
    ),
    "mlp_3d": (
        lambda m, x, w1, b1, w2: m.nn.functional.linear(
            m.sigmoid(m.nn.functional.linear(x, w1, b1)), w2
        ),
        [(2, 5, 3), (4, 3), (4,), (2, 4)],
    ),
    "matmul_2d": (lambda m, a, b: m.tanh(a @ b) @ b.transpose(0, 1), [(3, 4), (4, 5)]),
    "matmul_batched": (lambda m, a, b: m.sin(a @ b).mean(), [(2, 3, 4), (4, 5)]),
    "matmul_vec": (lambda m, a, b: m.sin(a @ b) * (a @ b), [(4,), (2, 4, 3)]),
    "matmul_mat_vec": (lambda m, a, b: m.sin(m.matmul(a, b)).sum(0), [(2, 3, 4), (4,)]),
    "einsum": (lambda m, a, b: m.tanh(m.einsum("bij,jk->bik", a, b)).sum(1), [(2, 3, 4), (4, 2)]),
    "outer_mv": (lambda m, a, b: m.mv(m.tanh(m.outer(a, b)), b), [(3,), (4,)]),
    "sum_mean": (lambda m, a: (a * a).sum(1).mean() + m.sin(a).mean(0, keepdim=True), [(3, 4)]),
}


@pytest.mark.parametrize("case", sorted(DOUBLE_BACKWARD))
def test_double_backward_gradient_penalty(case):
    fn, shapes = DOUBLE_BACKWARD[case]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    ge = _gradient_penalty(ember, fn, arrays)
    gt = _gradient_penalty(torch, fn, arrays)
    for i, (e, t) in enumerate(zip(ge, gt)):
        if t is None:
            assert e is None or not np.any(to_numpy(e)), f"input {i}"
            continue
        np.testing.assert_allclose(
            to_numpy(e), to_numpy(t), rtol=1e-6, atol=1e-9, err_msg=f"input {i}"
        )


def test_shape_errors_match_torch():
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x3 and 5x2\)"
    ):
        ember.mm(ember.ones(4, 3), ember.ones(5, 2))
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x3 and 5x2\)"
    ):
        F.linear(ember.ones(4, 3), ember.ones(2, 5))
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(8x3 and 5x2\)"
    ):
        ember.ones(2, 4, 3) @ ember.ones(5, 2)
    with pytest.raises(RuntimeError, match=r"expected tensor \[3\] and src \[4\]"):
        ember.ones(3) @ ember.ones(4)
    with pytest.raises(
        RuntimeError, match=r"size mismatch, got input \(3\), mat \(3x4\), vec \(5\)"
    ):
        ember.mv(ember.ones(3, 4), ember.ones(5))
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        ember.bmm(ember.ones(3, 4), ember.ones(5))
    with pytest.raises(RuntimeError, match=r"batch2 tensor to be: \[2, 3\] but got: \[2, 5\]"):
        ember.bmm(ember.ones(2, 4, 3), ember.ones(2, 5, 2))
    with pytest.raises(RuntimeError, match="at least 1D"):
        ember.matmul(ember.tensor(1.0), ember.ones(3))
    with pytest.raises(RuntimeError, match="1D tensors expected"):
        ember.dot(ember.ones(2, 2), ember.ones(2))


@pytest.mark.parametrize(
    "sa, sb",
    [
        ((4, 3), (5, 2)),
        ((3,), (4, 2)),
        ((4, 3), (2,)),
        ((3,), (4,)),
        ((), (3,)),
        ((2, 4, 3), (5, 2)),
        ((2, 4, 3), (5,)),
        ((2, 4, 3), (2, 5, 2)),
        ((4, 3), (2, 5, 2)),
        ((3,), (2, 5, 2)),
        ((3, 2, 4, 3), (2, 5, 2)),
        ((2, 4, 3), (3, 5, 2)),
        ((4, 2, 4, 3), (3, 3, 2)),
        ((2, 2, 3), (3, 3, 4)),
        ((4, 3), (2, 2, 5, 2)),
    ],
)
@pytest.mark.parametrize("grad", [(False, False), (True, True), (True, False), (False, True)])
def test_matmul_operator_refuses_shapes_as_torch(sa, sb, grad):
    """``a @ b`` tries the product first and checks shapes only when NumPy refuses them: the
    error is still PyTorch's, with or without a graph."""
    import torch

    def message(lib):
        a = lib.ones(sa, requires_grad=grad[0])
        b = lib.ones(sb, requires_grad=grad[1])
        with pytest.raises(RuntimeError) as info:
            a @ b
        return str(info.value)

    assert message(ember) == message(torch)


def test_dtype_mismatch_raises():
    with pytest.raises(RuntimeError, match="same dtype, but got: ember.float32 != ember.float64"):
        ember.mm(ember.ones(3, 4), ember.ones(4, 3, dtype=ember.float64))
    with pytest.raises(TypeError, match="expected Tensor"):
        ember.matmul(ember.ones(3), [1.0, 2.0, 3.0])


def test_integer_matmul():
    a = ember.tensor([[1, 2], [3, 4]])
    out = a @ a
    assert out.dtype == ember.int64 and out.tolist() == [[7, 10], [15, 22]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_products_give_matmuls_bits_in_every_layout(dtype):
    """array_matmul takes ``a.dot(b)`` for contiguous 2-D operands (less overhead per call):
    the same bits as ``np.matmul`` there, and np.matmul itself for strided views."""
    from ember.core.ops._util import array_matmul

    rng = np.random.default_rng(0)

    def layouts(x):
        padded = np.zeros((x.shape[0] + 2, x.shape[1] + 3), dtype)
        padded[: x.shape[0], : x.shape[1]] = x
        wide = np.zeros((x.shape[0], 2 * x.shape[1]), dtype)
        wide[:, ::2] = x
        return [
            x,
            np.asfortranarray(x),
            padded[: x.shape[0], : x.shape[1]],
            np.asfortranarray(padded)[: x.shape[0], : x.shape[1]],
            wide[:, ::2],
        ]

    for m, k, n in [(1, 2, 4), (8, 8, 8), (3, 33, 1), (17, 5, 9), (64, 128, 64)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        for x in layouts(a):
            for y in layouts(b):
                np.testing.assert_array_equal(array_matmul(x, y), np.matmul(x, y))
