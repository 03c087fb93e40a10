import numpy as np
import pytest
import torch
from helpers import check_op

import ember

BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("radd", lambda a, b: 2.5 + a * b),
    ("rsub", lambda a, b: 1.5 - a),
    ("rmul", lambda a, b: 3 * a),
    ("rdiv", lambda a, b: 2.0 / (b.abs() + 1)),
    ("pow_tensor", lambda a, b: (a.abs() + 0.5) ** b),
    ("pow_scalar", lambda a, b: a**3 + b**2),
    ("rpow", lambda a, b: 2.0**a),
    ("maximum", lambda a, b: a.maximum(b)),
    ("minimum", lambda a, b: a.minimum(b)),
    ("add_alpha", lambda a, b: a.add(b, alpha=0.5)),
    ("sub_alpha", lambda a, b: a.sub(b, alpha=2)),
]

BROADCAST_SHAPES = [
    [(3, 4), (3, 4)],
    [(3, 4), (4,)],
    [(2, 1, 4), (3, 1)],
    [(1,), (2, 3)],
    [(), (2, 3)],
    [(0, 3), (3,)],
]


@pytest.mark.parametrize("name,fn", BINARY, ids=[n for n, _ in BINARY])
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_binary_parity_and_gradcheck(name, fn, shapes):
    check_op(shapes, fn)


UNARY = [
    ("exp", lambda x: x.exp(), None),
    ("expm1", lambda x: x.expm1(), None),
    ("log", lambda x: (x.abs() + 0.1).log(), None),
    ("log1p", lambda x: x.abs().log1p(), None),
    ("sqrt", lambda x: (x.abs() + 0.1).sqrt(), None),
    ("rsqrt", lambda x: (x.abs() + 0.1).rsqrt(), None),
    ("square", lambda x: x.square(), None),
    ("abs", lambda x: x.abs(), None),
    ("neg", lambda x: -x, None),
    ("reciprocal", lambda x: (x.abs() + 0.5).reciprocal(), None),
    ("sin", lambda x: x.sin(), None),
    ("cos", lambda x: x.cos(), None),
    ("tanh", lambda x: x.tanh(), None),
    ("sigmoid", lambda x: x.sigmoid(), None),
    ("relu", lambda x: x.relu(), None),
    ("log2", lambda x: (x.abs() + 0.1).log2(), None),
    ("clamp", lambda x: x.clamp(-0.5, 0.7), None),
    ("clamp_min", lambda x: x.clamp(min=0.1), None),
]


@pytest.mark.parametrize("name,fn,tfn", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("shape", [(3, 4), (), (0,), (2, 1, 3)], ids=str)
def test_unary_parity_and_gradcheck(name, fn, tfn, shape):
    check_op([shape], fn, tfn)


ACTIVATIONS = [
    ("leaky_relu", "leaky_relu", {"negative_slope": 0.2}),
    ("elu", "elu", {"alpha": 0.7}),
    ("gelu", "gelu", {}),
    ("gelu_tanh", "gelu", {"approximate": "tanh"}),
    ("silu", "silu", {}),
    ("softplus", "softplus", {"beta": 2.0, "threshold": 3.0}),
]


@pytest.mark.parametrize("name,fname,kwargs", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_parity(name, fname, kwargs):
    efn = getattr(ember.nn.functional, fname)
    tfn = getattr(torch.nn.functional, fname)
    check_op([(4, 5)], lambda x: efn(x, **kwargs), lambda x: tfn(x, **kwargs))


def test_gelu_float32_close_to_torch():
    x = np.linspace(-6, 6, 1001).astype(np.float32)
    from ember.core.ops.activation_smooth import gelu

    ours = gelu(ember.tensor(x)).numpy()
    ref = torch.nn.functional.gelu(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_gelu_float32_grad_over_several_chunks_matches_torch():
    # float32 GELU works through cache-sized chunks and saves gelu'(x) for backward
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 100_001)) * 3).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ey, ty = ember.nn.functional.gelu(ex), torch.nn.functional.gelu(tx)
    ey.backward(ember.tensor(g))
    ty.backward(torch.tensor(g))
    assert ey.dtype == ember.float32 and ex.grad.dtype == ember.float32
    np.testing.assert_allclose(ey.detach().numpy(), ty.detach().numpy(), atol=2e-6)
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=5e-6)


def test_where_and_masked_fill():
    rng = np.random.default_rng(0)
    cond = rng.random((3, 4)) > 0.5
    check_op(
        [(3, 4), (4,)],
        lambda a, b: ember.where(ember.tensor(cond), a, b),
        lambda a, b: torch.where(torch.tensor(cond), a, b),
    )
    check_op(
        [(3, 4)],
        lambda a: a.masked_fill(ember.tensor(cond), -1.5),
        lambda a: a.masked_fill(torch.tensor(cond), -1.5),
    )


def test_maximum_ties_split_gradient_like_torch():
    a = np.array([1.0, 2.0, 3.0])
    check_op(None, lambda x, y: x.maximum(y), inputs=[a, a.copy()], gradcheck_fd=False)


@pytest.mark.parametrize(
    "lhs,rhs,expected",
    [
        (ember.tensor([1, 2]), 1.5, ember.float32),
        (ember.tensor([1, 2], dtype=ember.int32), 7, ember.int32),
        (ember.tensor([1.0], dtype=ember.float16), 2.0, ember.float16),
        (ember.tensor([1, 2], dtype=ember.uint8), ember.tensor([1], dtype=ember.int8), ember.int16),
        (
            ember.tensor([1.0], dtype=ember.float16),
            ember.tensor([1.0], dtype=ember.bfloat16),
            ember.float32,
        ),
        (
            ember.tensor([1], dtype=ember.int64),
            ember.tensor(2.0, dtype=ember.float64),
            ember.float64,
        ),
        (ember.tensor([1.0]), ember.tensor(2.0, dtype=ember.float64), ember.float32),
        (ember.tensor([True]), 2, ember.int64),
        (ember.tensor([1], dtype=ember.int8), ember.tensor(1000), ember.int8),
    ],
)
def test_type_promotion_matches_torch(lhs, rhs, expected):
    assert (lhs + rhs).dtype is expected
    t = torch.tensor(lhs.numpy().astype(np.float32) if lhs.dtype is ember.bfloat16 else lhs.numpy())
    if lhs.dtype is ember.bfloat16:
        t = t.bfloat16()
    r = rhs
    if isinstance(rhs, ember.Tensor):
        r = torch.tensor(rhs.float().numpy()).to(getattr(torch, rhs.dtype.name))
    assert str(torch.result_type(t, r)).split(".")[1] == expected.name


def test_int_division_is_true_division():
    x = ember.tensor([3, 4])
    assert (x / 2).dtype is ember.float32
    np.testing.assert_allclose((x / 2).numpy(), [1.5, 2.0])
    np.testing.assert_array_equal((x // 2).numpy(), [1, 2])
    np.testing.assert_array_equal(
        ember.tensor([-3, 5]).div(2, rounding_mode="trunc").numpy(), [-1, 2]
    )
    np.testing.assert_array_equal((ember.tensor([-3, 5]) % 3).numpy(), [0, 2])


def test_comparisons_and_logical_ops():
    a, b = ember.tensor([1.0, 2.0, 3.0]), ember.tensor([3.0, 2.0, 1.0])
    assert (a < b).tolist() == [True, False, False]
    assert (a == b).tolist() == [False, True, False]
    assert (a >= 2).tolist() == [False, True, True]
    assert ((a > 1) & (b > 1)).tolist() == [False, True, False]
    assert (~(a > 1)).tolist() == [True, False, False]
    assert not (a < b).requires_grad
    assert ember.equal(a, a.clone()) and not ember.equal(a, b)
    assert ember.allclose(a, a + 1e-9)


def test_mismatched_shapes_error_names_shapes():
    with pytest.raises(
        RuntimeError, match=r"size of tensor a \(3\) must match the size of tensor b \(4\)"
    ):
        ember.ones(3) + ember.ones(4)
    with pytest.raises(RuntimeError, match="must match"):
        ember.ones(2, 3) * ember.ones(4, 3)


@pytest.mark.parametrize(
    "op",
    [
        lambda m, a, b: a + b,
        lambda m, a, b: a - b,
        lambda m, a, b: a * b,
        lambda m, a, b: a / b,
        lambda m, a, b: m.maximum(a, b),
        lambda m, a, b: m.atan2(a, b),
    ],
    ids=["add", "sub", "mul", "div", "maximum", "atan2"],
)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_shapes_that_do_not_broadcast_give_torchs_message(op, requires_grad):
    messages = []
    for m in (torch, ember):
        a = m.ones(2, 3, requires_grad=requires_grad)
        with pytest.raises(RuntimeError) as raised:
            op(m, a, m.ones(4, 3))
        messages.append(str(raised.value))
    assert messages[1] == messages[0]


def test_unsupported_operand_type():
    with pytest.raises(TypeError, match="unsupported operand"):
        ember.ones(3) + "x"


def test_inplace_ops_and_version_counter():
    x = ember.ones(3)
    v0 = x._version
    x.add_(2).mul_(3)
    assert x.tolist() == [9.0, 9.0, 9.0]
    assert x._version == v0 + 2
    x += 1
    assert x.tolist() == [10.0, 10.0, 10.0]


def test_inplace_on_saved_tensor_raises_at_backward():
    a = ember.tensor([1.0, 2.0], requires_grad=True)
    b = a * 1  # non-leaf
    c = b * b  # saves b
    b.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.backward(ember.ones(2))


def test_inplace_on_leaf_requiring_grad_raises():
    a = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        a.add_(1)
    with ember.no_grad():
        a.add_(1)
    assert a.tolist() == [2.0, 2.0]


def test_inplace_gradient_matches_torch():
    def run(lib, x0, y0):
        x = lib.tensor(x0, requires_grad=True)
        y = lib.tensor(y0, requires_grad=True)
        z = x * 2
        z.mul_(y)
        z.add_(x)
        z.backward(lib.ones(3, dtype=lib.float64))
        return x.grad.numpy(), y.grad.numpy()

    x0, y0 = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    for ours, ref in zip(run(ember, x0, y0), run(torch, x0, y0)):
        np.testing.assert_allclose(ours, ref)


def test_copy_and_fill():
    x = ember.zeros(2, 3)
    x.copy_(ember.arange(3))
    assert x.tolist() == [[0, 1, 2], [0, 1, 2]]
    x.fill_(7)
    assert x.tolist() == [[7] * 3] * 2
    x.zero_()
    assert x.sum().item() == 0


def test_to_dtype_is_differentiable():
    check_op([(3,)], lambda x: (x.float() * 2).double(), atol=1e-6, gradcheck_fd=False)
