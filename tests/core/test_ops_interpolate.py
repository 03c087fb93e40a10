"""Parity with torch for F.interpolate in every mode and nn.Upsample*, values and
gradients (float32 and float64) and float64 finite differences; double backward."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from ember.core.gradcheck import gradcheck
from tests.helpers import check_op

SPATIAL = {1: (5,), 2: (4, 5), 3: (4, 3, 3)}
MODES = [  # mode, spatial dims
    ("nearest", 1),
    ("nearest", 2),
    ("nearest", 3),
    ("nearest-exact", 1),
    ("nearest-exact", 2),
    ("linear", 1),
    ("bilinear", 2),
    ("bicubic", 2),
    ("trilinear", 3),
    ("area", 1),
    ("area", 2),
    ("area", 3),
]
RESIZES = [
    {"size": 7},
    {"scale_factor": 2},
    {"scale_factor": 0.6},
    {"scale_factor": 1.7, "recompute_scale_factor": True},
]


@pytest.mark.parametrize(
    "resize", RESIZES, ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items())
)
@pytest.mark.parametrize("mode,spatial", MODES)
def test_interpolate(mode, spatial, resize):
    corners = [None] if mode.startswith("nearest") or mode == "area" else [False, True]
    for align_corners in corners:
        check_op(
            [(1, 2, *SPATIAL[spatial])],
            lambda x, a=align_corners: (F if isinstance(x, ember.Tensor) else TF).interpolate(
                x, mode=mode, align_corners=a, **resize
            ),
        )


@pytest.mark.parametrize(
    "mode,spatial", [("bilinear", 2), ("bicubic", 2), ("trilinear", 3), ("nearest", 2)]
)
def test_interpolate_float32_and_per_dim_sizes(mode, spatial):
    size = (7, 2, 4)[:spatial]
    factors = (1.5, 0.5, 2.5)[:spatial]
    for kw in ({"size": size}, {"scale_factor": factors}):
        check_op(
            [(2, 2, *SPATIAL[spatial])],
            lambda x, kw=kw: (F if isinstance(x, ember.Tensor) else TF).interpolate(
                x, mode=mode, **kw
            ),
            dtype="float32",
            atol=1e-5,
            rtol=1e-4,
        )


def test_interpolate_integer_nearest_and_infinities():
    x = np.arange(12, dtype=np.uint8).reshape(1, 1, 3, 4)
    e = F.interpolate(ember.tensor(x), scale_factor=2)
    np.testing.assert_array_equal(
        e.numpy(), TF.interpolate(torch.tensor(x), scale_factor=2).numpy()
    )
    assert e.dtype == ember.uint8
    y = np.array([[[1.0, np.inf, 3.0]]])
    np.testing.assert_array_equal(
        F.interpolate(ember.tensor(y), size=5).numpy(),
        TF.interpolate(torch.tensor(y), size=5).numpy(),
    )


def test_interpolate_errors():
    x = ember.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(NotImplementedError, match="linear mode needs 3D input"):
        F.interpolate(x, size=2, mode="linear")
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, size=2, mode="nearest", align_corners=True)
    with pytest.raises(ValueError, match="same number of spatial dimensions"):
        F.interpolate(x, size=(2, 2, 2))


def test_interpolate_double_backward():
    def penalty(lib, functional, x0):
        x = lib.tensor(x0, requires_grad=True)
        y = functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        (g,) = lib.autograd.grad((y * y * y).sum(), x, create_graph=True)
        (gg,) = lib.autograd.grad((g * g).sum(), x)
        return gg.detach().numpy()

    x0 = np.random.default_rng(0).standard_normal((1, 2, 3, 4))
    np.testing.assert_allclose(penalty(ember, F, x0), penalty(torch, TF, x0), rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda nn: nn.Upsample(scale_factor=2),
        lambda nn: nn.Upsample(size=(3, 9), mode="bilinear"),
        lambda nn: nn.Upsample(scale_factor=1.5, mode="bicubic", align_corners=True),
        lambda nn: nn.UpsamplingNearest2d(scale_factor=3),
        lambda nn: nn.UpsamplingBilinear2d(size=6),
    ],
)
def test_upsample_modules(make):
    check_op(
        [(2, 3, 4, 5)], lambda x: make(ember.nn if isinstance(x, ember.Tensor) else torch.nn)(x)
    )
    assert repr(make(ember.nn)) == repr(make(torch.nn))


@pytest.mark.parametrize("mode,spatial", MODES)
def test_interpolate_source_positions_match_torch(mode, spatial):
    # which input each output reads: PyTorch's kernels differ by mode and rank (the 2-d
    # nearest kernel special-cases equal and doubled sizes; the linear modes treat equal
    # sizes as identity even with a scale factor; bicubic does not)
    corners = [None] if mode.startswith("nearest") or mode == "area" else [False, True]
    for n in (3, 4, 7):
        for factor in (2.2, 1.3, 1.1, 0.45, 2.0):
            for axis in range(spatial):
                shape = [1, 1] + [2] * spatial
                shape[2 + axis] = n
                ramp = np.arange(n, dtype=np.float64) ** 2
                x = np.broadcast_to(
                    np.moveaxis(
                        np.broadcast_to(ramp, shape[: 2 + axis] + shape[3 + axis :] + [n]),
                        -1,
                        2 + axis,
                    ),
                    shape,
                )
                factors = [1.0] * spatial
                factors[axis] = factor
                for align_corners in corners:
                    kw = {"scale_factor": factors, "mode": mode, "align_corners": align_corners}
                    e = F.interpolate(ember.tensor(np.ascontiguousarray(x)), **kw).numpy()
                    t = TF.interpolate(torch.tensor(np.ascontiguousarray(x)), **kw).numpy()
                    np.testing.assert_allclose(e, t, err_msg=f"n={n} factor={factor} axis={axis}")


def test_nearest_3d_gradient_is_the_adjoint_of_its_forward():
    # PyTorch's 3-d nearest backward with a fractional scale factor reads the inputs of
    # size ratio in/out, unlike its forward; ember's gradient is the forward's adjoint
    x = ember.tensor(np.random.default_rng(0).standard_normal((1, 1, 2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda t: F.interpolate(t, scale_factor=(1.5, 1.0, 2.2)), [x])
