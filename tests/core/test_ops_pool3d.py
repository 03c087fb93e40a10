"""Parity with torch for 3-d pooling (max, average, adaptive) and max_unpool1d/2d/3d,
functional and nn modules: values, indices, gradients, finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from tests.helpers import check_op


def _fn(x):
    return F if isinstance(x, ember.Tensor) else TF


MAX3D = [
    {"kernel_size": 2},
    {"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "padding": 1, "dilation": (1, 2, 1)},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", MAX3D)
def test_max_pool3d(kw, dtype):
    check_op([(2, 2, 5, 4, 6)], lambda x: _fn(x).max_pool3d(x, **kw), dtype=dtype)
    check_op([(2, 5, 4, 6)], lambda x: _fn(x).max_pool3d(x, return_indices=True, **kw), dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 2},
        {"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "padding": 1},
        {
            "kernel_size": 3,
            "stride": 2,
            "padding": 1,
            "ceil_mode": True,
            "count_include_pad": False,
        },
        {"kernel_size": 2, "stride": 1, "divisor_override": 3},
    ],
)
def test_avg_pool3d(kw, dtype):
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == "float32" else {}
    check_op([(2, 2, 5, 4, 6)], lambda x: _fn(x).avg_pool3d(x, **kw), dtype=dtype, **tol)
    check_op([(2, 5, 4, 6)], lambda x: _fn(x).avg_pool3d(x, **kw), dtype=dtype, **tol)


@pytest.mark.parametrize("size", [2, (3, 1, 4), (None, 2, 5)])
def test_adaptive_pool3d(size):
    check_op([(2, 2, 5, 4, 6)], lambda x: _fn(x).adaptive_avg_pool3d(x, size))
    check_op([(2, 5, 4, 6)], lambda x: _fn(x).adaptive_max_pool3d(x, size, return_indices=True))


@pytest.mark.parametrize(
    "spatial,shape,kw",
    [
        (1, (2, 3, 8), {"kernel_size": 2}),
        (1, (3, 7), {"kernel_size": 3, "stride": 3, "padding": 1}),
        (2, (2, 3, 6, 8), {"kernel_size": 2}),
        (2, (2, 3, 7, 6), {"kernel_size": (3, 2), "stride": (3, 2), "padding": (1, 0)}),
        (3, (1, 2, 4, 6, 4), {"kernel_size": 2}),
    ],
)
def test_max_unpool(spatial, shape, kw):
    def fn(x):
        f = _fn(x)
        pooled, indices = getattr(f, f"max_pool{spatial}d")(x, return_indices=True, **kw)
        return getattr(f, f"max_unpool{spatial}d")(pooled * 2, indices, **kw)

    check_op([shape], fn)


def test_max_unpool_output_size_and_modules():
    def fn(x):
        lib = ember if isinstance(x, ember.Tensor) else torch
        pooled, indices = lib.nn.MaxPool2d(2, return_indices=True)(x)
        return lib.nn.MaxUnpool2d(2)(pooled, indices, output_size=[2, 3, 5, 7])

    check_op([(2, 3, 5, 7)], fn)
    with pytest.raises(ValueError, match="invalid output_size"):
        F.max_unpool2d(
            ember.zeros(1, 1, 2, 2),
            ember.zeros(1, 1, 2, 2, dtype=ember.int64),
            2,
            output_size=(9, 9),
        )
    with pytest.raises(RuntimeError, match="invalid max index"):
        F.max_unpool1d(ember.zeros(1, 1, 2), ember.tensor([[[0, 7]]]), 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda nn: nn.MaxPool3d(2, stride=1, padding=1),
        lambda nn: nn.AvgPool3d((2, 3, 2), count_include_pad=False, padding=1),
        lambda nn: nn.AdaptiveAvgPool3d((2, None, 3)),
        lambda nn: nn.AdaptiveMaxPool3d(2),
    ],
)
def test_pool3d_modules(make):
    check_op(
        [(1, 2, 4, 5, 4)], lambda x: make(ember.nn if isinstance(x, ember.Tensor) else torch.nn)(x)
    )
    assert repr(make(ember.nn)) == repr(make(torch.nn))


def test_max_pool3d_nan_and_errors():
    x = np.zeros((1, 1, 2, 2, 2))
    x[0, 0, 1, 0, 1] = np.nan
    e, ei = F.max_pool3d(ember.tensor(x), 2, return_indices=True)
    t, ti = TF.max_pool3d(torch.tensor(x), 2, return_indices=True)
    assert np.isnan(e.numpy()).all() and (ei.numpy() == ti.numpy()).all()
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool3d(ember.zeros(1, 1, 4, 4, 4), 2, padding=2)
    with pytest.raises(RuntimeError, match="Expected 4D or 5D"):
        F.avg_pool3d(ember.zeros(4, 4, 4), 2)
