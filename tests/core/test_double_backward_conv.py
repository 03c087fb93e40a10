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
        for k in range(0, flat.size, 3):
            values = []
            for step in (eps, -eps):
                moved = [a.copy() for a in arrays]
                moved[which].reshape(-1)[k] += step
                xs = [ember.tensor(a, requires_grad=True) for a in moved]
                values.append(_penalty(*xs, False).item())
            numerical = (values[0] - values[1]) / (2 * eps)
            np.testing.assert_allclose(grad.numpy().reshape(-1)[k], numerical, rtol=1e-4, atol=1e-5)
