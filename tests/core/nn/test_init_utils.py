"""nn.init (statistics, fans, gains) and nn.utils (clipping, vector conversion)."""

import math

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
from ember.nn import init


def _param(*shape):
    return nn.Parameter(ember.empty(*shape))


@pytest.mark.parametrize("shape", [(3, 5), (8, 4, 3, 3), (2, 6, 7)])
def test_fans_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(
        ember.empty(*shape)
    ) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(ember.empty(3))


@pytest.mark.parametrize(
    "args",
    [
        ("linear",),
        ("conv2d",),
        ("sigmoid",),
        ("tanh",),
        ("relu",),
        ("leaky_relu",),
        ("leaky_relu", 0.2),
        ("selu",),
    ],
)
def test_calculate_gain_matches_torch(args):
    assert init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")


def _stats(t):
    a = t.detach().numpy().astype(np.float64)
    return a.mean(), a.std(), np.abs(a).max()


def test_uniform_normal_constant():
    p = _param(200, 300)
    assert init.uniform_(p, -2, 3) is p
    mean, std, _ = _stats(p)
    a = p.detach().numpy()
    assert (
        a.min() >= -2
        and a.max() < 3
        and abs(mean - 0.5) < 0.02
        and abs(std - 5 / math.sqrt(12)) < 0.02
    )
    init.normal_(p, 1.0, 0.5)
    mean, std, _ = _stats(p)
    assert abs(mean - 1) < 0.01 and abs(std - 0.5) < 0.01
    assert p.requires_grad and p.grad_fn is None
    for fn, value in ((init.zeros_, 0), (init.ones_, 1)):
        fn(p)
        assert np.all(p.detach().numpy() == value)
    init.constant_(p, 0.25)
    assert np.all(p.detach().numpy() == 0.25)


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_xavier_and_kaiming_statistics(shape):
    p = _param(*shape)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(p)
    init.xavier_uniform_(p, gain=2.0)
    bound = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    mean, std, amax = _stats(p)
    assert amax <= bound and abs(std - bound / math.sqrt(3)) < 0.02 * bound
    init.xavier_normal_(p)
    assert abs(_stats(p)[1] - math.sqrt(2 / (fan_in + fan_out))) < 0.02 * math.sqrt(
        2 / (fan_in + fan_out)
    )
    init.kaiming_uniform_(p, a=math.sqrt(5))
    bound = math.sqrt(6 / ((1 + 5) * fan_in))
    mean, std, amax = _stats(p)
    assert amax <= bound and amax > 0.98 * bound and abs(mean) < 0.02 * bound
    init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
    expected = math.sqrt(2) / math.sqrt(fan_out)
    assert abs(_stats(p)[1] - expected) < 0.03 * expected
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(p, mode="fan_avg")


def test_trunc_normal_bounds_and_stats():
    p = _param(100, 100)
    init.trunc_normal_(p, mean=0.5, std=1.0, a=-0.5, b=1.0)
    a = p.detach().numpy()
    assert a.min() >= -0.5 and a.max() <= 1.0
    ref = torch.nn.init.trunc_normal_(
        torch.empty(200, 200), mean=0.5, std=1.0, a=-0.5, b=1.0
    ).numpy()
    assert abs(a.mean() - ref.mean()) < 0.02 and abs(a.std() - ref.std()) < 0.02
    init.trunc_normal_(p, std=0.02)
    assert abs(p.detach().numpy().std() - 0.02) < 0.002


def test_orthogonal_eye_dirac():
    for shape in [(4, 6), (6, 4), (3, 2, 2)]:
        p = _param(*shape)
        init.orthogonal_(p, gain=1.5)
        flat = p.detach().numpy().reshape(shape[0], -1).astype(np.float64)
        gram = flat @ flat.T if shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(gram, 2.25 * np.eye(gram.shape[0]), atol=1e-5)
    e = _param(3, 5)
    init.eye_(e)
    np.testing.assert_array_equal(e.detach().numpy(), torch.nn.init.eye_(torch.empty(3, 5)).numpy())
    for shape, groups in [((4, 2, 3), 2), ((6, 3, 3, 3), 1), ((4, 2, 1, 3, 3), 2)]:
        d = _param(*shape)
        init.dirac_(d, groups)
        np.testing.assert_array_equal(
            d.detach().numpy(), torch.nn.init.dirac_(torch.empty(*shape), groups).numpy()
        )
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        init.eye_(_param(2, 2, 2))


def test_init_generator_and_seed_reproducible():
    p, q = _param(5, 5), _param(5, 5)
    init.kaiming_uniform_(p, generator=ember.Generator().manual_seed(1))
    init.kaiming_uniform_(q, generator=ember.Generator().manual_seed(1))
    np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    ember.manual_seed(4)
    a = nn.Linear(3, 3).weight.detach().numpy().copy()
    ember.manual_seed(4)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.detach().numpy(), a)


def test_init_sparse_zero_fraction():
    p = _param(10, 6)
    init.sparse_(p, sparsity=0.3)
    zeros_per_column = (p.detach().numpy() == 0).sum(0)
    assert np.all(zeros_per_column >= 3)


def _grad_pair(seed=0, shapes=((3, 4), (5,), (2, 2, 2))):
    r = np.random.default_rng(seed)
    grads = [r.standard_normal(s).astype(np.float32) * 3 for s in shapes]
    e_params = [nn.Parameter(ember.zeros(*s)) for s in shapes]
    t_params = [torch.nn.Parameter(torch.zeros(*s)) for s in shapes]
    for g, ep, tp in zip(grads, e_params, t_params):
        ep.grad = ember.tensor(g)
        tp.grad = torch.tensor(g)
    return e_params, t_params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, 0.5])
@pytest.mark.parametrize("max_norm", [1.0, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    e_params, t_params = _grad_pair()
    e_total = nn.utils.clip_grad_norm_(e_params, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type=norm_type)
    assert isinstance(e_total, ember.Tensor) and e_total.ndim == 0
    np.testing.assert_allclose(e_total.item(), t_total.item(), rtol=1e-5)
    for ep, tp in zip(e_params, t_params):
        np.testing.assert_allclose(ep.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_edge_cases():
    e_params, _ = _grad_pair()
    e_params.append(nn.Parameter(ember.zeros(2)))  # no grad: skipped
    nn.utils.clip_grad_norm_(e_params, 0.5)
    assert nn.utils.get_total_norm([p.grad for p in e_params[:3]]).item() == pytest.approx(
        0.5, rel=1e-4
    )
    single = nn.Parameter(ember.zeros(3))
    single.grad = ember.tensor([3.0, 4.0, 0.0])
    assert nn.utils.clip_grad_norm_(single, 1.0).item() == pytest.approx(5.0)
    assert nn.utils.clip_grad_norm_([], 1.0).item() == 0.0
    single.grad = ember.tensor([float("inf"), 1.0, 0.0])
    with pytest.raises(
        RuntimeError,
        match="The total norm of order 2.0 for gradients from `parameters` is non-finite",
    ):
        nn.utils.clip_grad_norm_(single, 1.0, error_if_nonfinite=True)


def test_clip_grad_value():
    e_params, t_params = _grad_pair(1)
    nn.utils.clip_grad_value_(e_params, 0.7)
    torch.nn.utils.clip_grad_value_(t_params, 0.7)
    for ep, tp in zip(e_params, t_params):
        np.testing.assert_array_equal(ep.grad.numpy(), tp.grad.numpy())


def test_parameters_to_vector_and_back():
    m = nn.Linear(3, 2)
    vec = nn.utils.parameters_to_vector(m.parameters())
    expected = np.concatenate([m.weight.detach().numpy().ravel(), m.bias.detach().numpy()])
    np.testing.assert_array_equal(vec.detach().numpy(), expected)
    (vec * ember.arange(8.0)).sum().backward()
    np.testing.assert_array_equal(m.weight.grad.numpy().ravel(), np.arange(6.0))
    new = ember.arange(8.0)
    nn.utils.vector_to_parameters(new, m.parameters())
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(m.bias.detach().numpy(), [6.0, 7.0])
    with pytest.raises(TypeError, match="expected ember.Tensor"):
        nn.utils.vector_to_parameters(np.zeros(8), m.parameters())
    with pytest.raises(RuntimeError, match="1-D vector of 8 elements"):
        nn.utils.vector_to_parameters(ember.zeros(7), m.parameters())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, side):
    from ember.nn.utils.rnn import pad_sequence

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, 3)) for n in (4, 1, 3)]
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    e = pad_sequence(e_in, batch_first=batch_first, padding_value=-1.0, padding_side=side)
    t = torch.nn.utils.rnn.pad_sequence(
        t_in, batch_first=batch_first, padding_value=-1.0, padding_side=side
    )
    np.testing.assert_array_equal(e.detach().numpy(), t.detach().numpy())
    w = rng.standard_normal(tuple(t.shape))
    (e * ember.tensor(w)).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    for a, b in zip(e_in, t_in):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy())
    with pytest.raises(RuntimeError, match="same trailing shape"):
        pad_sequence([ember.ones(2, 3), ember.ones(2, 4)])
