"""The op declaration (core/ops/declare.py): a Function's declared autocast, promotion and
double-backward policy reach its functional form and its Tensor methods, and the op
files that use it have no other way of writing them."""

import pathlib
import re

import numpy as np
import pytest
import torch

import ember
from ember.core import amp
from ember.core.autograd import Function
from ember.core.ops import declare
from ember.core.ops._util import xp_of
from tests.helpers import check_op

OPS = pathlib.Path(ember.__file__).parent / "core" / "ops"
DECLARED_FILES = [
    "activation",
    "activation_smooth",
    "arithmetic",
    "attention",
    "bitwise",
    "comparison",
    "conv",
    "conv3d",
    "conversion",
    "dropout",
    "elementwise",
    "embedding",
    "indexing",
    "interpolate",
    "join",
    "linalg",
    "losses",
    "losses_binary",
    "losses_pairwise",
    "movement",
    "norm",
    "pad",
    "pool",
    "pool3d",
    "pool_adaptive",
    "recurrent",
    "reduce",
    "reorder",
    "scan",
    "scatter",
    "scatter_reduce",
    "softmax",
    "unary_math",
]


@pytest.mark.parametrize("name", DECLARED_FILES)
def test_declared_files_use_only_the_declaration(name):
    source = (OPS / f"{name}.py").read_text()
    assert "cast_for(" not in source, "autocast goes through the Function's declaration"
    assert not re.search(r"^attach\(", source, re.M), "Tensor methods come from declarations"
    assert len(source.splitlines()) < 600


@pytest.mark.parametrize(
    "method,args",
    [
        ("cos_", ()),
        ("sin_", ()),
        ("expm1_", ()),
        ("log1p_", ()),
        ("reciprocal_", ()),
        ("rsqrt_", ()),
        ("square_", ()),
        ("negative_", ()),
        ("subtract_", (0.5,)),
        ("multiply_", (3.0,)),
        ("divide_", (2.0,)),
        ("true_divide_", (4.0,)),
        ("positive", ()),
        ("atan2_", (0.5,)),
        ("clip_", (0.2, 0.9)),
    ],
)
def test_declared_in_place_methods_match_torch(method, args):
    x = np.random.default_rng(0).uniform(0.1, 1.0, (3, 4))
    e, t = ember.tensor(x), torch.tensor(x)
    args_e = [ember.tensor(a) if method == "atan2_" else a for a in args]
    args_t = [torch.tensor(a, dtype=torch.float64) if method == "atan2_" else a for a in args]
    out_e = getattr(e, method)(*args_e)
    out_t = getattr(t, method)(*args_t)
    np.testing.assert_allclose(out_e.numpy(), out_t.numpy(), rtol=1e-12)
    np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-12)
    assert (out_e is e) == (out_t is t)


def test_autocast_policies_come_from_the_declarations():
    cuda, cpu = amp._POLICY["cuda"], amp._POLICY["cpu"]
    assert cuda["exp"] == cuda["sum"] == cuda["pow"] == "float32" and "exp" not in cpu
    assert cuda["matmul"] == cpu["matmul"] == cpu["linear"] == "lower"
    assert cuda["mv"] == "lower" and "mv" not in cpu
    assert cuda["prod"] == cpu["prod"] == "float32"
    assert cuda["dot"] == cuda["atan2"] == cuda["index_put"] == "promote"
    assert cpu["cat"] == cpu["stack"] == cpu["index_copy"] == "promote" and "cat" not in cuda
    assert cuda["scatter_add"] == "promote" and "scatter_add" not in cpu


def test_nn_ops_declare_their_autocast_policies():
    cuda, cpu = amp._POLICY["cuda"], amp._POLICY["cpu"]
    for op in ("softmax", "log_softmax", "cumsum", "layer_norm", "group_norm", "softplus"):
        assert cuda[op] == "float32" and op not in cpu, op
    for op in ("cross_entropy", "nll_loss", "mse_loss", "kl_div", "cosine_embedding_loss"):
        assert cuda[op] == cpu[op] == "float32", op
    assert cuda["binary_cross_entropy"] == "banned" and cpu["binary_cross_entropy"] == "float32"
    assert cuda["scaled_dot_product_attention"] == cpu["scaled_dot_product_attention"] == "lower"
    assert cuda["lstm_layer"] == cpu["lstm_layer"] == "lower"
    assert cuda["gru_layer"] == "lower" and "gru_layer" not in cpu


def test_every_autocast_policy_comes_from_a_declaration():
    """core/amp.py keeps no op lists of its own: its table starts empty."""
    source = (OPS.parent / "amp.py").read_text()
    assert '_POLICY: dict = {"cuda": {}, "cpu": {}}' in source
    assert not re.search(r"^_(LOWER|FP32)_(BOTH|CUDA)", source, re.M)
    cuda, cpu = amp._POLICY["cuda"], amp._POLICY["cpu"]
    for op in ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"):
        assert cuda[op] == cpu[op] == "lower", op


def test_one_relu_for_every_public_form():
    """``ember.relu``, ``F.relu`` and ``Tensor.relu`` are one function, with torch's
    ``inplace=`` and ``Tensor.relu_``."""
    F = ember.nn.functional
    assert F.relu is ember.relu is ember.Tensor.relu
    x = ember.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    y = ember.tensor([-3.0, 1.0])
    assert y.relu_() is y and y.tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib, x, y: lib.nn.functional.cross_entropy(x, y.argmax(1)),
        lambda lib, x, y: lib.nn.functional.mse_loss(x, y),
        lambda lib, x, y: lib.nn.functional.binary_cross_entropy(x.sigmoid(), y.sigmoid()),
        lambda lib, x, y: lib.nn.functional.kl_div(x.log_softmax(1), y.softmax(1), reduction="sum"),
        lambda lib, x, y: lib.nn.functional.scaled_dot_product_attention(x, y, y),
        lambda lib, x, y: lib.nn.functional.softmax(x.to(lib.bfloat16), 1),
        lambda lib, x, y: lib.nn.functional.layer_norm(x, (3,)),
    ],
)
def test_declared_nn_autocast_on_cpu_matches_torch(fn):
    x = np.random.default_rng(3).standard_normal((3, 3)).astype(np.float32)
    y = np.random.default_rng(4).standard_normal((3, 3)).astype(np.float32)
    with ember.autocast("cpu"):
        e = fn(ember, ember.tensor(x).to(ember.bfloat16), ember.tensor(y))
    with torch.autocast("cpu"):
        t = fn(torch, torch.tensor(x).to(torch.bfloat16), torch.tensor(y))
    assert str(e.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
    np.testing.assert_allclose(e.float().numpy(), t.float().numpy(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib, a, b: lib.matmul(a, b),
        lambda lib, a, b: a @ b,
        lambda lib, a, b: lib.nn.functional.linear(a, b),
        lambda lib, a, b: lib.einsum("ij,kj->ik", a, b),
        lambda lib, a, b: lib.cat([a.to(lib.bfloat16), b]),
        lambda lib, a, b: lib.stack([a, b.to(lib.bfloat16)]),
        lambda lib, a, b: a.to(lib.bfloat16).prod(dim=1),
        lambda lib, a, b: a.to(lib.bfloat16).prod(dim=1, dtype=lib.float64),
        lambda lib, a, b: lib.exp(a.to(lib.bfloat16)),
    ],
)
def test_declared_autocast_on_cpu_matches_torch(fn):
    x = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    y = np.random.default_rng(2).standard_normal((3, 3)).astype(np.float32)
    with ember.autocast("cpu"):
        e = fn(ember, ember.tensor(x), ember.tensor(y))
    with torch.autocast("cpu"):
        t = fn(torch, torch.tensor(x), torch.tensor(y))
    assert str(e.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
    np.testing.assert_allclose(e.float().numpy(), t.float().numpy(), rtol=2e-2, atol=2e-2)


class _Cube(Function):
    r"""``input ** 3``, a test op."""

    autocast, promotes, differentiable_backward = "cpu:fp32", "float", True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x * x


class _Twice(Function):
    promotes = "common"

    @staticmethod
    def forward(ctx, a, b):
        return (a + b) * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2, grad * 2


@pytest.fixture
def declared_test_ops():
    """Declare two ops as an op file would, and take them back afterwards."""
    before_cpu = dict(amp._POLICY["cpu"])
    cube = declare.unary(_Cube, "_test_cube", inplace=True)
    twice = declare.binary(_Twice, "_test_twice", operator="test_twice", reflected=True)
    try:
        yield cube, twice
    finally:
        for name in ("_test_cube", "_test_cube_", "_test_twice", "__test_twice__"):
            delattr(ember.Tensor, name)
        delattr(ember.Tensor, "__rtest_twice__")
        amp._POLICY["cpu"].clear()
        amp._POLICY["cpu"].update(before_cpu)


def test_a_declared_op_gets_its_functional_form_and_methods(declared_test_ops):
    cube, twice = declared_test_ops
    assert cube.__name__ == "_test_cube" and cube.__doc__ == _Cube.__doc__
    assert ember.Tensor._test_cube is cube
    # promotes="float": integers compute in the default float dtype
    assert cube(ember.tensor([1, 2])).dtype is ember.float32
    # promotes="common": a float64 tensor and a float32 one meet in float64
    out = twice(ember.tensor([1.0], dtype=ember.float64), ember.tensor([2.0]))
    assert out.dtype is ember.float64 and out.tolist() == [6.0]
    assert ember.tensor([1.0]).__rtest_twice__(2.0).tolist() == [6.0]
    # the declared autocast: float32 inside a CPU region, from a bfloat16 input
    assert amp._POLICY["cpu"]["_test_cube"] == "float32"
    with ember.autocast("cpu"):
        assert cube(ember.tensor([1.0], dtype=ember.bfloat16)).dtype is ember.float32
    x = ember.tensor([2.0])
    assert x._test_cube_() is x and x.tolist() == [8.0]


def test_a_declared_op_differentiates_twice(declared_test_ops):
    cube, _ = declared_test_ops
    check_op([(4,)], lambda x: cube(x), lambda x: x**3)
    x = ember.tensor([2.0], requires_grad=True)
    (g,) = ember.autograd.grad(cube(x), x, create_graph=True)
    (gg,) = ember.autograd.grad(g, x)
    assert g.tolist() == [12.0] and gg.tolist() == [12.0]


def test_declaration_rejects_unknown_policies():
    class Bad(Function):
        promotes = "sometimes"

        @staticmethod
        def forward(ctx, x):
            return xp_of(x).copy(x)

    with pytest.raises(ValueError, match="promotes must be one of"):
        declare.unary(Bad, "_test_bad", method=False)
    with pytest.raises(ValueError, match="autocast policy of _test_bad"):
        declare.declared(None, name="_test_bad", autocast="fp16", method=False)(lambda x: x)


def test_declared_autocast_respects_a_given_dtype():
    """PyTorch's rule for ops with a ``dtype`` argument, keyword or positional: a given
    dtype wins over the autocast list."""
    seen = []

    def reduce_like(input, dim=None, dtype=None):
        seen.append(input.dtype)
        return input

    before = dict(amp._POLICY["cpu"])
    op = declare.declared(None, name="_test_dtype", autocast="cpu:fp32", method=False)(reduce_like)
    try:
        x = ember.ones(2, dtype=ember.bfloat16)
        with ember.autocast("cpu"):
            op(x)
            op(x, 0, ember.float64)
            op(x, dtype=ember.float64)
            op(x, 0, None)
        assert seen == [ember.float32, ember.bfloat16, ember.bfloat16, ember.float32]
    finally:
        amp._POLICY["cpu"].clear()
        amp._POLICY["cpu"].update(before)
