"""Parity with torch for 3-d convolution and transposed 3-d convolution (functional and
nn modules), values and gradients, float32 and float64, and finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from tests.helpers import check_op


def _fn(x):
    return F if isinstance(x, ember.Tensor) else TF


CONV3D = [  # input shape, weight shape, kwargs
    ((2, 3, 5, 4, 6), (4, 3, 3, 2, 3), {}),
    ((1, 4, 5, 5, 4), (6, 2, 2, 3, 2), {"stride": (2, 1, 2), "padding": (1, 0, 2), "groups": 2}),
    ((2, 2, 6, 5, 5), (3, 2, 2, 2, 2), {"dilation": (2, 1, 2), "padding": 1}),
    ((2, 2, 4, 5, 3), (3, 2, 3, 2, 3), {"padding": "same"}),
    ((4, 3, 4, 3), (2, 2, 2, 2, 2), {"groups": 2}),  # unbatched
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape,w_shape,kw", CONV3D)
def test_conv3d(x_shape, w_shape, kw, dtype):
    tol = {"atol": 1e-4, "rtol": 1e-4} if dtype == "float32" else {}
    check_op(
        [x_shape, w_shape, (w_shape[0],)],
        lambda x, w, b: _fn(x).conv3d(x, w, b, **kw),
        dtype=dtype,
        gradcheck_fd=dtype == "float64" and x_shape[0] == 1,
        **tol,
    )
    check_op(
        [x_shape, w_shape],
        lambda x, w: _fn(x).conv3d(x, w, **kw),
        dtype=dtype,
        gradcheck_fd=False,
        **tol,
    )


CONV_T3D = [
    ((2, 4, 3, 2, 3), (4, 2, 2, 3, 2), {}),
    (
        (1, 4, 3, 3, 2),
        (4, 3, 3, 2, 3),
        {"stride": (2, 1, 2), "padding": (1, 0, 1), "output_padding": (1, 0, 1)},
    ),
    ((1, 4, 2, 3, 3), (4, 1, 2, 2, 2), {"groups": 2, "dilation": (1, 2, 1), "stride": 2}),
    ((4, 2, 3, 2), (4, 2, 2, 2, 2), {}),  # unbatched
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape,w_shape,kw", CONV_T3D)
def test_conv_transpose3d(x_shape, w_shape, kw, dtype):
    tol = {"atol": 1e-4, "rtol": 1e-4} if dtype == "float32" else {}
    groups = kw.get("groups", 1)
    check_op(
        [x_shape, w_shape, (w_shape[1] * groups,)],
        lambda x, w, b: _fn(x).conv_transpose3d(x, w, b, **kw),
        dtype=dtype,
        **tol,
    )


def test_conv3d_errors():
    with pytest.raises(RuntimeError, match="expected weight to be 5-dimensional"):
        F.conv3d(ember.zeros(1, 2, 3, 3, 3), ember.zeros(2, 2, 3, 3))
    with pytest.raises(RuntimeError, match="to have 4 channels, but got 2 channels"):
        F.conv3d(ember.zeros(1, 2, 3, 3, 3), ember.zeros(2, 4, 1, 1, 1))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        F.conv3d(ember.zeros(1, 2, 2, 3, 3), ember.zeros(2, 2, 3, 3, 3))


@pytest.mark.parametrize(
    "make,x_shape",
    [
        (lambda nn: nn.Conv3d(2, 4, 3, padding=1), (2, 2, 4, 5, 3)),
        (
            lambda nn: nn.Conv3d(
                2, 4, (2, 3, 1), stride=2, bias=False, padding_mode="reflect", padding=1
            ),
            (1, 2, 5, 4, 4),
        ),
        (
            lambda nn: nn.Conv3d(4, 4, 3, groups=2, padding="same", padding_mode="circular"),
            (1, 4, 3, 4, 3),
        ),
        (
            lambda nn: nn.ConvTranspose3d(4, 2, 3, stride=2, padding=1, output_padding=1),
            (1, 4, 2, 3, 2),
        ),
    ],
)
def test_conv3d_modules(make, x_shape):
    torch.manual_seed(0)
    t_mod = make(torch.nn).double()
    e_mod = make(ember.nn).double()
    e_mod.load_state_dict(
        {k: ember.tensor(v.detach().numpy()) for k, v in t_mod.state_dict().items()}
    )
    assert repr(e_mod) == repr(t_mod)
    x0 = np.random.default_rng(0).standard_normal(x_shape)
    e_x, t_x = ember.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    e_y, t_y = e_mod(e_x), t_mod(t_x)
    np.testing.assert_allclose(e_y.detach().numpy(), t_y.detach().numpy(), atol=1e-10)
    (e_y * e_y).sum().backward()
    (t_y * t_y).sum().backward()
    np.testing.assert_allclose(e_x.grad.numpy(), t_x.grad.numpy(), atol=1e-9)
    np.testing.assert_allclose(e_mod.weight.grad.numpy(), t_mod.weight.grad.numpy(), atol=1e-9)


def test_conv_transpose3d_output_size():
    m = ember.nn.ConvTranspose3d(2, 2, 3, stride=2, padding=1)
    assert m(ember.randn(1, 2, 3, 3, 3), output_size=(6, 5, 6)).shape == (1, 2, 6, 5, 6)
