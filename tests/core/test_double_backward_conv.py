"""Double backward (create_graph=True) through convolution and pooling, compared with
torch in float64: the gradient of a function of first-order gradients, and a WGAN-GP
gradient penalty on a small convnet critic."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F


def _lib(x):
    return (ember, F) if isinstance(x, ember.Tensor) else (torch, TF)


def _second_order(fn, arrays):
    """Gradients w.r.t. every input of sum(g * g) where g = d sum(fn(inputs)^2) / d inputs."""
    results = []
    for lib in (ember, torch):
        xs = [lib.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*xs)
        grads = lib.autograd.grad((out * out).sum(), xs, create_graph=True)
        penalty = sum((g * g).sum() for g in grads)
        results.append([g.detach().numpy() for g in lib.autograd.grad(penalty, xs)])
    for e, t in zip(*results):
        np.testing.assert_allclose(e, t, rtol=1e-7, atol=1e-9)


CONVS = [
    ("conv1d", (2, 4, 7), (6, 2, 3), {"stride": 2, "padding": 1, "groups": 2}),
    ("conv1d", (3, 5), (2, 3, 2), {"dilation": 2}),
    ("conv2d", (2, 3, 6, 5), (4, 3, 3, 2), {"padding": (1, 0), "stride": (1, 2)}),
    ("conv2d", (1, 4, 5, 5), (4, 2, 2, 2), {"groups": 2, "dilation": 2, "padding": "same"}),
    ("conv3d", (1, 2, 4, 3, 4), (3, 2, 2, 2, 3), {"padding": 1, "stride": (2, 1, 1)}),
    ("conv_transpose1d", (2, 4, 5), (4, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ("conv_transpose2d", (1, 4, 3, 4), (4, 1, 3, 2), {"stride": 2, "groups": 2}),
    ("conv_transpose3d", (1, 2, 2, 3, 2), (2, 3, 2, 2, 2), {"stride": (1, 2, 1), "padding": 1}),
]


@pytest.mark.parametrize("name,x_shape,w_shape,kw", CONVS)
def test_conv_double_backward(name, x_shape, w_shape, kw):
    rng = np.random.default_rng(0)
    transposed = "transpose" in name
    b_shape = (w_shape[1] * kw.get("groups", 1),) if transposed else (w_shape[0],)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, b_shape)]

    def fn(x, w, b):
        return getattr(_lib(x)[1], name)(x, w, b, **kw)

    _second_order(fn, arrays)


POOLS = [
    ("max_pool1d", (2, 3, 9), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("max_pool2d", (2, 2, 6, 5), {"kernel_size": 2}),
    ("max_pool2d", (1, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1}),
    ("max_pool3d", (1, 2, 4, 5, 4), {"kernel_size": 2, "stride": 1}),
    ("avg_pool1d", (2, 3, 9), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg_pool2d", (2, 2, 6, 6), {"kernel_size": 2}),
    (
        "avg_pool2d",
        (1, 2, 7, 6),
        {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    ),
    ("avg_pool3d", (1, 2, 4, 5, 4), {"kernel_size": 2, "stride": (1, 2, 1)}),
    ("adaptive_avg_pool1d", (2, 3, 7), {"output_size": 3}),
    ("adaptive_avg_pool2d", (2, 2, 6, 6), {"output_size": 3}),
    ("adaptive_avg_pool2d", (1, 2, 7, 5), {"output_size": (3, 2)}),
    ("adaptive_avg_pool3d", (1, 2, 4, 5, 3), {"output_size": (2, 3, 2)}),
    ("adaptive_max_pool1d", (2, 3, 7), {"output_size": 3}),
    ("adaptive_max_pool2d", (1, 2, 7, 5), {"output_size": (3, 2)}),
    ("adaptive_max_pool3d", (1, 2, 4, 5, 3), {"output_size": 2}),
]


@pytest.mark.parametrize("name,shape,kw", POOLS)
def test_pool_double_backward(name, shape, kw):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape)]
    _second_order(lambda x: getattr(_lib(x)[1], name)(x, **kw) ** 2, arrays)


def _critic(lib, nn_mod, functional):
    """A small convnet critic: conv -> leaky relu -> avg pool -> conv -> max pool -> linear."""

    class Critic(nn_mod.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn_mod.Conv2d(2, 4, 3, padding=1)
            self.conv2 = nn_mod.Conv2d(4, 4, 3, stride=2, padding=1)
            self.head = nn_mod.Linear(4, 1)

        def forward(self, x):
            h = functional.leaky_relu(self.conv1(x), 0.2)
            h = functional.avg_pool2d(h, 2)
            h = functional.leaky_relu(self.conv2(h), 0.2)
            h = functional.adaptive_max_pool2d(h, 1).flatten(1)
            return self.head(h)

    return Critic().double()


def test_wgan_gp_gradient_penalty_matches_torch():
    torch.manual_seed(0)
    t_critic = _critic(torch, torch.nn, TF)
    e_critic = _critic(ember, ember.nn, F)
    e_critic.load_state_dict(
        {k: ember.tensor(v.detach().numpy()) for k, v in t_critic.state_dict().items()}
    )
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((2, 3, 2, 8, 8))
    alpha = rng.uniform(size=(3, 1, 1, 1))
    results = []
    for lib, critic in ((ember, e_critic), (torch, t_critic)):
        mixed = lib.tensor(alpha * real + (1 - alpha) * fake, requires_grad=True)
        score = critic(mixed)
        (grad,) = lib.autograd.grad(score.sum(), mixed, create_graph=True)
        penalty = ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        loss = critic(lib.tensor(fake)).mean() - critic(lib.tensor(real)).mean() + 10 * penalty
        loss.backward()
        results.append({n: p.grad.detach().numpy() for n, p in critic.named_parameters()})
    assert results[0].keys() == results[1].keys()
    for name in results[1]:
        np.testing.assert_allclose(
            results[0][name], results[1][name], rtol=1e-6, atol=1e-9, err_msg=name
        )


def _penalty(x, w, create_graph):
    y = F.conv2d(x, w, stride=(2, 1), padding=1)
    y = F.max_pool2d(y, 2, stride=1)
    gx, gw = ember.autograd.grad((y * y * y).sum(), (x, w), create_graph=create_graph)
    return (gx * gx).sum() + (gw * gw).sum()


def test_second_order_against_finite_differences():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in ((1, 2, 5, 4), (3, 2, 2, 3))]
    inputs = [ember.tensor(a, requires_grad=True) for a in arrays]
    analytical = ember.autograd.grad(_penalty(*inputs, True), inputs)
    eps = 1e-6
    for which, grad in enumerate(analytical):
        flat = arrays[which].reshape(-1)
        for k in range(0, flat.size, 7):
            values = []
            for step in (eps, -eps):
                moved = [a.copy() for a in arrays]
                moved[which].reshape(-1)[k] += step
                xs = [ember.tensor(a, requires_grad=True) for a in moved]
                values.append(_penalty(*xs, False).item())
            numerical = (values[0] - values[1]) / (2 * eps)
            np.testing.assert_allclose(grad.numpy().reshape(-1)[k], numerical, rtol=1e-4, atol=1e-5)
