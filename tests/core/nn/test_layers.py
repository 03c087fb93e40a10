"""Layers (Linear, Bilinear, Flatten, activations, Dropout, Embedding) against torch.nn."""

import math

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
import ember.nn.functional as F
from tests.helpers import check_op

tf = torch.nn.functional


def module_parity(
    e_mod, t_mod, *shapes, dtype="float64", atol=1e-6, rtol=1e-5, inputs=None, grad_input=True
):
    r"""Copy torch's state into ember's module; compare outputs, input and param grads."""
    t_mod = t_mod.to(getattr(torch, dtype))
    e_mod = e_mod.to(getattr(ember, dtype))
    e_mod.load_state_dict({k: v.detach().numpy() for k, v in t_mod.state_dict().items()})
    rng = np.random.default_rng(0)
    arrays = inputs or [rng.uniform(-2, 2, size=s).astype(dtype) for s in shapes]
    e_in = [ember.tensor(a, requires_grad=grad_input and a.dtype.kind == "f") for a in arrays]
    t_in = [torch.tensor(a, requires_grad=grad_input and a.dtype.kind == "f") for a in arrays]
    e_out, t_out = e_mod(*e_in), t_mod(*t_in)
    assert tuple(e_out.shape) == tuple(t_out.shape)
    np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(), atol=atol, rtol=rtol)
    v = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    e_out.backward(ember.tensor(v))
    t_out.backward(torch.tensor(v))
    for e, t in zip(e_in, t_in):
        if t.requires_grad:
            np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), atol=atol, rtol=rtol)
    e_params, t_params = dict(e_mod.named_parameters()), dict(t_mod.named_parameters())
    assert list(e_params) == list(t_params)
    for name, tp in t_params.items():
        if tp.grad is None:
            assert e_params[name].grad is None or not np.any(e_params[name].grad.numpy())
            continue
        np.testing.assert_allclose(
            e_params[name].grad.numpy(), tp.grad.numpy(), atol=atol, rtol=rtol, err_msg=name
        )
    return e_out


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear(bias, shape):
    e = module_parity(nn.Linear(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias), shape)
    assert e.shape[-1] == 3


def test_linear_float32_and_repr():
    module_parity(nn.Linear(6, 2), torch.nn.Linear(6, 2), (3, 6), dtype="float32", atol=1e-5)
    assert repr(nn.Linear(6, 2, bias=False)) == repr(torch.nn.Linear(6, 2, bias=False))
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(3x5 and 6x2\)"
    ):
        nn.Linear(6, 2)(ember.randn(3, 5))


def test_linear_default_init_bounds():
    ember.manual_seed(0)
    m = nn.Linear(400, 300)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives the same bound
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert np.abs(b).max() <= bound and abs(w.mean()) < 0.01 * bound
    assert m.weight.dtype == ember.float32 and m.weight.requires_grad
    assert nn.Linear(3, 2, dtype=ember.float64).weight.dtype == ember.float64


def test_bilinear():
    module_parity(nn.Bilinear(3, 4, 2), torch.nn.Bilinear(3, 4, 2), (5, 3), (5, 4))
    module_parity(
        nn.Bilinear(3, 4, 2, bias=False),
        torch.nn.Bilinear(3, 4, 2, bias=False),
        (2, 5, 3),
        (2, 5, 4),
    )
    assert repr(nn.Bilinear(3, 4, 2)) == repr(torch.nn.Bilinear(3, 4, 2))
    with pytest.raises(RuntimeError, match="batch dimensions do not match"):
        nn.Bilinear(3, 4, 2)(ember.randn(5, 3), ember.randn(4, 4))


def test_flatten_unflatten_identity():
    module_parity(nn.Flatten(), torch.nn.Flatten(), (2, 3, 4))
    module_parity(nn.Flatten(0, 1), torch.nn.Flatten(0, 1), (2, 3, 4))
    module_parity(nn.Unflatten(1, (3, 4)), torch.nn.Unflatten(1, (3, 4)), (2, 12))
    module_parity(nn.Identity(54, unused=1), torch.nn.Identity(54, unused=1), (2, 3))
    for e, t in [
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Unflatten(1, (3, 4)), torch.nn.Unflatten(1, (3, 4))),
    ]:
        assert repr(e) == repr(t)


ACTIVATIONS = [
    ("ReLU", (), {}),
    ("ReLU6", (), {}),
    ("LeakyReLU", (0.2,), {}),
    ("ELU", (), {"alpha": 0.7}),
    ("CELU", (), {"alpha": 1.3}),
    ("SELU", (), {}),
    ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}),
    ("SiLU", (), {}),
    ("Mish", (), {}),
    ("Sigmoid", (), {}),
    ("Tanh", (), {}),
    ("Softplus", (), {"beta": 2.0, "threshold": 3.0}),
    ("Softmax", (), {"dim": 1}),
    ("LogSoftmax", (), {"dim": -1}),
    ("Hardtanh", (-0.5, 1.5), {}),
    ("Hardswish", (), {}),
    ("Hardsigmoid", (), {}),
    ("LogSigmoid", (), {}),
    ("Softsign", (), {}),
]


@pytest.mark.parametrize(
    "name,args,kwargs", ACTIVATIONS, ids=[a[0] + str(a[2]) for a in ACTIVATIONS]
)
def test_activation_modules(name, args, kwargs):
    e_mod = getattr(nn, name)(*args, **kwargs)
    t_mod = getattr(torch.nn, name)(*args, **kwargs)
    assert repr(e_mod) == repr(t_mod)
    # inputs kept away from the kinks at 0, +-3 (hardswish) and the clamp bounds
    rng = np.random.default_rng(1)
    x = rng.uniform(-4, 4, size=(3, 5, 2))
    x[np.abs(x) < 0.05] += 0.1
    for kink in (-3, 3, -0.5, 1.5, 6):
        x[np.abs(x - kink) < 0.05] += 0.1
    module_parity(e_mod, t_mod, inputs=[x])
    if name not in ("Softmax", "LogSoftmax"):
        fresh = ember.tensor(x, requires_grad=True)
        assert ember.autograd.gradcheck(e_mod, [fresh], eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("ReLU", {}),
        ("LeakyReLU", {"negative_slope": 0.1}),
        ("ELU", {}),
        ("ReLU6", {}),
        ("SiLU", {}),
        ("Hardtanh", {}),
    ],
)
def test_inplace_activations(name, kwargs):
    e_mod = getattr(nn, name)(inplace=True, **kwargs)
    t_mod = getattr(torch.nn, name)(inplace=True, **kwargs)
    assert repr(e_mod) == repr(t_mod)
    x = np.random.default_rng(2).uniform(-3, 8, size=(4, 3))
    ea, ta = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    eb, tb = ea * 1.0, ta * 1.0
    eo, to = e_mod(eb), t_mod(tb)
    assert eo is eb
    np.testing.assert_allclose(eb.detach().numpy(), tb.detach().numpy(), rtol=1e-6)
    (eo * eo).sum().backward()
    (to * to).sum().backward()
    np.testing.assert_allclose(ea.grad.numpy(), ta.grad.numpy(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("num,shape", [(1, (4, 3)), (3, (2, 3, 4)), (3, (2, 3)), (1, (5,))])
def test_prelu(num, shape):
    t = torch.nn.PReLU(num, init=0.3)
    e = nn.PReLU(num, init=0.3)
    assert repr(e) == repr(t)
    module_parity(e, t, shape)
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers and input channel size"):
        nn.PReLU(4)(ember.randn(2, 3))


def test_functional_activations_check_op():
    check_op([(3, 4)], lambda x: F.relu6(x * 4), lambda x: tf.relu6(x * 4), low=-1.9, high=1.9)
    check_op([(3, 4)], F.mish, tf.mish)
    check_op([(3, 4)], lambda x: F.logsigmoid(x * 10), lambda x: tf.logsigmoid(x * 10))
    check_op([(3, 4)], F.selu, tf.selu)
    check_op([(3, 4)], lambda x: F.celu(x, 0.5), lambda x: tf.celu(x, 0.5))
    check_op([(3, 4), (4,)], F.prelu, tf.prelu)
    check_op([(2, 3), (2, 4), (5, 3, 4), (5,)], F.bilinear, tf.bilinear)
    with pytest.raises(RuntimeError, match="floating point"):
        F.mish(ember.tensor([1, 2]))


def test_dropout_statistics_scaling_and_grad():
    ember.manual_seed(0)
    m = nn.Dropout(0.3)
    assert repr(m) == repr(torch.nn.Dropout(0.3))
    x = ember.ones(200, 500, requires_grad=True)
    y = m(x)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    m.eval()
    assert m(x) is x
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.5, training=False) is x
    assert not np.any(F.dropout(x, 1.0).detach().numpy())


def test_dropout_seeded_and_generator():
    x = ember.ones(50, 50)
    ember.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    ember.manual_seed(3)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    g = ember.Generator().manual_seed(7)
    c = F.dropout(x, 0.5, generator=g).numpy()
    g.manual_seed(7)
    np.testing.assert_array_equal(
        c, F.dropout(x, 0.5, generator=ember.Generator().manual_seed(7)).numpy()
    )


def test_dropout_inplace_and_errors():
    base = ember.ones(10, 10, requires_grad=True)
    y = base * 2
    out = F.dropout(y, 0.5, inplace=True)
    assert out is y
    out.sum().backward()
    kept = y.detach().numpy() != 0
    np.testing.assert_allclose(base.grad.numpy(), kept * 4.0)
    with pytest.raises(
        ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"
    ):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="but got -0.1"):
        F.dropout(base, -0.1)


@pytest.mark.parametrize(
    "cls,shape",
    [
        (nn.Dropout1d, (4, 6, 5)),
        (nn.Dropout1d, (6, 5)),
        (nn.Dropout2d, (4, 6, 3, 3)),
        (nn.Dropout3d, (2, 6, 2, 2, 2)),
    ],
)
def test_feature_dropout_zeroes_whole_channels(cls, shape):
    ember.manual_seed(1)
    y = cls(0.5)(ember.ones(*shape)).numpy()
    lead = 2 if len(shape) in (3, 4, 5) and cls is not nn.Dropout1d or len(shape) == 3 else 1
    per_channel = y.reshape(*shape[:lead], -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert 0 < (per_channel == 0).all(-1).mean() < 1
    with pytest.raises(RuntimeError, match="Expected"):
        cls(0.5)(ember.ones(2))


def test_embedding_parity_with_repeats_and_padding():
    t = torch.nn.Embedding(7, 3, padding_idx=2)
    e = nn.Embedding(7, 3, padding_idx=2)
    assert repr(e) == repr(t)
    idx = np.array([[0, 2, 1], [1, 1, 6]], dtype=np.int64)
    module_parity(e, t, inputs=[idx], grad_input=False)
    assert not np.any(e.weight.grad.numpy()[2])
    np.testing.assert_allclose(e.weight.grad.numpy()[1].sum(), e.weight.grad.numpy()[1].sum())


def test_embedding_init_and_padding_row():
    ember.manual_seed(0)
    e = nn.Embedding(1000, 20, padding_idx=-1)
    w = e.weight.detach().numpy()
    assert e.padding_idx == 999 and not np.any(w[999])
    assert abs(w[:999].mean()) < 0.02 and abs(w[:999].std() - 1) < 0.02


def test_embedding_options():
    for kwargs in (
        {"scale_grad_by_freq": True},
        {"max_norm": 1.0},
        {"max_norm": 0.5, "norm_type": 1.0},
    ):
        t = torch.nn.Embedding(6, 4, **kwargs)
        e = nn.Embedding(6, 4, **kwargs)
        assert repr(e) == repr(t)
        idx = np.array([0, 3, 3, 5, 0, 0], dtype=np.int64)
        module_parity(e, t, inputs=[idx], grad_input=False)
        np.testing.assert_allclose(e.weight.detach().numpy(), t.weight.detach().numpy(), rtol=1e-6)


def test_embedding_from_pretrained_and_errors():
    w = ember.randn(4, 2)
    e = nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad and e.weight._array is w._array
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad
    out = e(ember.tensor([3, 0]))
    np.testing.assert_array_equal(out.numpy(), w.numpy()[[3, 0]])
    with pytest.raises(IndexError, match="index out of range in self"):
        e(ember.tensor([4]))
    with pytest.raises(
        RuntimeError, match="'indices' to have one of the following scalar types: Long, Int"
    ):
        e(ember.tensor([1.0]))
    check_op(
        [(5, 3)],
        lambda w: F.embedding(ember.tensor([[4, 0], [4, 4]]), w),
        lambda w: torch.nn.functional.embedding(torch.tensor([[4, 0], [4, 4]]), w),
    )


@pytest.mark.parametrize("num", [50, 300])  # one-hot GEMM path and sorted-layers path
def test_embedding_backward_many_repeats(num):
    idx = np.random.default_rng(3).integers(0, num, size=(6, 40))
    idx[:, ::4] = 7  # row 7 appears 60 times: past the layer-by-layer limit
    t = torch.nn.Embedding(num, 5, padding_idx=3)
    e = nn.Embedding(num, 5, padding_idx=3)
    module_parity(e, t, inputs=[idx.astype(np.int64)], grad_input=False)


@pytest.mark.parametrize(
    "e_mod,t_mod",
    [
        (nn.GLU(), torch.nn.GLU()),
        (nn.GLU(dim=1), torch.nn.GLU(dim=1)),
        (nn.Softmin(dim=2), torch.nn.Softmin(dim=2)),
        (nn.Threshold(0.2, -1.0), torch.nn.Threshold(0.2, -1.0)),
        (nn.Tanhshrink(), torch.nn.Tanhshrink()),
        (nn.Softshrink(0.3), torch.nn.Softshrink(0.3)),
        (nn.Hardshrink(0.7), torch.nn.Hardshrink(0.7)),
    ],
    ids=lambda m: repr(m),
)
def test_composite_activation_modules(e_mod, t_mod):
    assert repr(e_mod) == repr(t_mod)
    x = np.random.default_rng(4).uniform(-2, 2, size=(3, 4, 6))
    for kink in (0.2, 0.3, -0.3, 0.7, -0.7):
        x[np.abs(x - kink) < 0.02] += 0.05
    module_parity(e_mod, t_mod, inputs=[x])
    assert ember.autograd.gradcheck(e_mod, [ember.tensor(x, requires_grad=True)])
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        nn.GLU()(ember.randn(2, 3))


def test_rrelu_eval_matches_torch_and_train_slopes_in_range():
    e, t = nn.RReLU(0.1, 0.3), torch.nn.RReLU(0.1, 0.3)
    assert repr(e) == repr(t)
    module_parity(e.eval(), t.eval(), (4, 5))
    e.train()
    x = -ember.ones(2000)
    slopes = -e(x).numpy()
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and abs(slopes.mean() - 0.2) < 0.01
    pos = ember.tensor([1.0, 2.0])
    np.testing.assert_array_equal(e(pos).numpy(), [1.0, 2.0])


def test_softmax2d():
    module_parity(nn.Softmax2d(), torch.nn.Softmax2d(), (2, 3, 4, 4))
    module_parity(nn.Softmax2d(), torch.nn.Softmax2d(), (3, 2, 2))
    with pytest.raises(ValueError, match="expected input to be 3D or 4D"):
        nn.Softmax2d()(ember.randn(2, 3))


@pytest.mark.parametrize("cls", [nn.AlphaDropout, nn.FeatureAlphaDropout])
def test_alpha_dropout_keeps_selu_statistics(cls):
    ember.manual_seed(0)
    m = cls(0.2)
    assert repr(m) == repr(getattr(torch.nn, cls.__name__)(0.2))
    x = F.selu(ember.randn(400, 50, 10))  # zero mean, unit variance
    y = m(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    assert m.eval()(x) is x
    x = ember.randn(6, 4, requires_grad=True)
    y = cls(0.5).train()(x)
    y.sum().backward()
    a = ((1 - 0.5) * (1 + 0.5 * 1.7580993408473766**2)) ** -0.5
    g = x.grad.numpy()
    assert np.all(np.isclose(g, 0) | np.isclose(g, a)) and np.any(np.isclose(g, a))


@pytest.mark.parametrize(
    "name,args", [("relu", ()), ("leaky_relu", (0.2,)), ("elu", (0.5,)), ("silu", ())]
)
def test_functional_activations_accept_inplace(name, args):
    x = np.random.default_rng(5).uniform(-2, 2, size=(3, 4))
    check_op(
        None,
        lambda a: getattr(F, name)(a, *args),
        lambda a: getattr(tf, name)(a, *args),
        inputs=[x],
    )
    ea, ta = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    eb, tb = ea * 2, ta * 2
    assert getattr(F, name)(eb, *args, inplace=True) is eb
    getattr(tf, name)(tb, *args, inplace=True)
    (eb * eb).sum().backward()
    (tb * tb).sum().backward()
    np.testing.assert_allclose(ea.grad.numpy(), ta.grad.numpy(), rtol=1e-6, atol=1e-8)
