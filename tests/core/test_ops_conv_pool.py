"""Convolutions, pad and pooling: parity with PyTorch in value and gradient, float64
finite-difference gradchecks, and the error messages at the public boundary."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from tests.helpers import check_op

# torch warns that its own 'same' padding with an even kernel makes a padded copy
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def _pair(name, **kw):
    return (lambda *a: getattr(F, name)(*a, **kw)), (lambda *a: getattr(TF, name)(*a, **kw))


# -- convolution ---------------------------------------------------------------------------

CONV2D_CASES = [
    {},
    {"stride": 2, "padding": 1},
    {"dilation": 2, "padding": (1, 2)},
    {"groups": 2, "stride": (1, 2)},
    {"padding": "same", "dilation": (1, 2)},
    {"padding": "valid"},
    {"stride": (2, 1), "padding": (0, 1)},
    {"stride": (1, 3), "dilation": (2, 1), "padding": 1},
    {"stride": 3, "groups": 4},
]


@pytest.mark.parametrize("kw", CONV2D_CASES)
def test_conv2d(kw):
    groups = kw.get("groups", 1)
    check_op([(2, 4, 7, 8), (4, 4 // groups, 3, 2), (4,)], *_pair("conv2d", **kw))


@pytest.mark.parametrize("kw", [{}, {"padding": 1, "stride": 2}, {"padding": "same"}])
def test_conv2d_unbatched_and_no_bias(kw):
    check_op([(3, 6, 5), (2, 3, 2, 2)], *_pair("conv2d", **kw))


def test_conv2d_same_even_kernel_pads_right():
    check_op([(1, 2, 5, 6), (3, 2, 4, 2)], *_pair("conv2d", padding="same"))


@pytest.mark.parametrize(
    "kw", [{}, {"stride": 2, "padding": 1}, {"dilation": 2, "padding": "same"}, {"groups": 2}]
)
def test_conv1d(kw):
    groups = kw.get("groups", 1)
    check_op([(2, 4, 9), (6, 4 // groups, 4), (6,)], *_pair("conv1d", **kw))
    check_op([(4, 9), (6, 4 // groups, 3)], *_pair("conv1d", **kw))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stride": 2, "padding": 1, "output_padding": 1},
        {"dilation": 2, "padding": (1, 2), "stride": (2, 3), "output_padding": (1, 2)},
        {"groups": 2, "stride": (1, 2)},
    ],
)
def test_conv_transpose2d(kw):
    groups = kw.get("groups", 1)
    check_op([(2, 4, 5, 6), (4, 3, 3, 2), (3 * groups,)], *_pair("conv_transpose2d", **kw))


def test_conv_transpose1d_and_unbatched():
    check_op([(2, 4, 5), (4, 3, 3), (3,)], *_pair("conv_transpose1d", stride=2, padding=1))
    check_op([(4, 5, 5), (4, 2, 3, 3)], *_pair("conv_transpose2d", stride=2))


def test_conv2d_float32_and_first_layer_without_input_grad():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 12, 12)).astype(np.float32)
    w = rng.standard_normal((5, 1, 3, 3)).astype(np.float32)
    ew = ember.tensor(w, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    (F.conv2d(ember.tensor(x), ew) ** 2).sum().backward()
    (TF.conv2d(torch.tensor(x), tw) ** 2).sum().backward()
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_conv_errors():
    x = ember.randn(1, 3, 8, 8)
    with pytest.raises(
        RuntimeError, match=r"expected input\[1, 3, 8, 8\] to have 4 channels, but got 3"
    ):
        F.conv2d(x, ember.randn(2, 4, 3, 3))
    with pytest.raises(RuntimeError, match="Expected 3D \\(unbatched\\) or 4D \\(batched\\) input"):
        F.conv2d(ember.randn(3, 8), ember.randn(2, 3, 3, 3))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        F.conv2d(x, ember.randn(2, 3, 9, 9))
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        F.conv2d(x, ember.randn(2, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(RuntimeError, match="divisible by 2 at dimension 0"):
        F.conv2d(ember.randn(1, 4, 8, 8), ember.randn(3, 2, 3, 3), groups=2)
    with pytest.raises(
        RuntimeError, match=r"Input type \(ember.float32\) and weight type \(ember.float64\)"
    ):
        F.conv2d(x, ember.randn(2, 3, 3, 3, dtype=ember.float64))
    with pytest.raises(RuntimeError, match="output padding must be smaller"):
        F.conv_transpose2d(x, ember.randn(3, 2, 3, 3), output_padding=1)


# -- pad -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pad, mode, shape",
    [
        ((1, 2), "constant", (2, 3, 4)),
        ((1, -1, 2, 0), "constant", (2, 3, 4)),
        ((1, 1, 1, 1, 1, 1), "constant", (2, 3, 4)),
        ((2, 1), "reflect", (2, 3, 4)),
        ((3, 3, 1, 2), "reflect", (2, 3, 4, 5)),
        ((2, 3), "replicate", (2, 3, 4)),
        ((1, 2, 3, 0), "replicate", (2, 3, 4, 5)),
        ((2, 1, 1, 3), "circular", (2, 3, 4, 5)),
    ],
)
def test_pad(pad, mode, shape):
    check_op([shape], lambda x: F.pad(x, pad, mode), lambda x: TF.pad(x, pad, mode))


def test_pad_value_and_errors():
    check_op(
        [(2, 3)], lambda x: F.pad(x, (1, 1), value=2.5), lambda x: TF.pad(x, (1, 1), value=2.5)
    )
    with pytest.raises(RuntimeError, match="reflect padding"):
        F.pad(ember.randn(1, 2, 3), (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="divisible by 2"):
        F.pad(ember.randn(2, 3), (1, 1, 1))
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode"):
        F.pad(ember.randn(2, 3), (1, 1), mode="wrap")


# -- pooling ----------------------------------------------------------------------------------------

MAXPOOL2D_CASES = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": (2, 3), "stride": (1, 2), "dilation": (2, 1)},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    {"kernel_size": 2, "return_indices": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "return_indices": True},
]


@pytest.mark.parametrize("kw", MAXPOOL2D_CASES)
def test_max_pool2d(kw):
    check_op([(2, 3, 8, 9)], *_pair("max_pool2d", **kw))
    check_op([(3, 7, 7)], *_pair("max_pool2d", **kw))


@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1, "return_indices": True},
        {"kernel_size": 3, "dilation": 2, "ceil_mode": True, "stride": 2},
    ],
)
def test_max_pool1d(kw):
    check_op([(2, 3, 11)], *_pair("max_pool1d", **kw))


@pytest.mark.parametrize("kw", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 1}])
def test_max_pool_ties_route_to_first(kw):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = 1.0
    check_op(None, *_pair("max_pool2d", **kw), inputs=[x], gradcheck_fd=False)


def test_max_pool_nan_wins_like_torch():
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 0, 0] = x[0, 0, 3, 2] = np.nan
    e, t = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (ye, ie), (yt, it) = (
        F.max_pool2d(e, 2, return_indices=True),
        TF.max_pool2d(t, 2, return_indices=True),
    )
    np.testing.assert_array_equal(ie.numpy(), it.numpy())
    ye.sum().backward()
    yt.sum().backward()
    np.testing.assert_array_equal(e.grad.numpy(), t.grad.numpy())


AVGPOOL2D_CASES = [
    {"kernel_size": 2},
    {"kernel_size": 2, "stride": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    {"kernel_size": (2, 3), "divisor_override": 5},
]


@pytest.mark.parametrize("kw", AVGPOOL2D_CASES)
def test_avg_pool2d(kw):
    check_op([(2, 3, 8, 9)], *_pair("avg_pool2d", **kw))
    check_op([(3, 7, 6)], *_pair("avg_pool2d", **kw))


@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 2},
        {
            "kernel_size": 3,
            "stride": 2,
            "padding": 1,
            "ceil_mode": True,
            "count_include_pad": False,
        },
    ],
)
def test_avg_pool1d(kw):
    check_op([(2, 3, 10)], *_pair("avg_pool1d", **kw))


@pytest.mark.parametrize("size", [(2, 3), 1, (3, None), (4, 4), (5, 3)])
def test_adaptive_avg_pool2d(size):
    check_op([(2, 3, 7, 8)], *_pair("adaptive_avg_pool2d", output_size=size))
    check_op([(3, 8, 6)], *_pair("adaptive_avg_pool2d", output_size=size))


def test_adaptive_avg_pool1d():
    check_op([(2, 3, 7)], *_pair("adaptive_avg_pool1d", output_size=3))
    check_op([(2, 3, 8)], *_pair("adaptive_avg_pool1d", output_size=4))


@pytest.mark.parametrize("size", [(2, 3), 1, (3, None), (4, 4), (5, 3)])
@pytest.mark.parametrize("return_indices", [False, True])
def test_adaptive_max_pool2d(size, return_indices):
    pair = _pair("adaptive_max_pool2d", output_size=size, return_indices=return_indices)
    check_op([(2, 3, 7, 8)], *pair)
    check_op([(3, 8, 6)], *pair)


def test_adaptive_max_pool1d_and_ties():
    check_op([(2, 3, 7)], *_pair("adaptive_max_pool1d", output_size=3, return_indices=True))
    pair = _pair("adaptive_max_pool2d", output_size=3, return_indices=True)
    check_op(None, *pair, inputs=[np.zeros((1, 1, 5, 5))], gradcheck_fd=False)


def test_pool_errors():
    with pytest.raises(RuntimeError, match="pad should be at most half of effective kernel size"):
        F.max_pool2d(ember.randn(1, 1, 8, 8), 2, padding=2)
    with pytest.raises(RuntimeError, match=r"Expected 3D or 4D \(batch mode\) tensor"):
        F.max_pool2d(ember.randn(8, 8), 2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        F.avg_pool2d(ember.randn(1, 1, 2, 2), 3)
    with pytest.raises(RuntimeError, match="output_size must be greater than 0"):
        F.adaptive_avg_pool2d(ember.randn(1, 1, 4, 4), (0, 2))


def test_max_pool2d_bfloat16_matches_torch():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    ours = F.max_pool2d(ember.tensor(x).bfloat16(), 2).float().numpy()
    ref = torch.nn.functional.max_pool2d(torch.tensor(x).bfloat16(), 2).float().numpy()
    np.testing.assert_array_equal(ours, ref)
