"""The op surface of issue 12 on CUDA against CPU: trigonometric and error functions,
bitwise ops, scans, scatter_reduce, interpolate, 3-d convolution and pooling, unpooling,
and double backward through convolution and pooling. Skipped (with the reason) on
machines without CuPy or without a visible GPU."""

import numpy as np
import pytest

import ember
import ember.nn.functional as F

cupy = pytest.importorskip("cupy", reason="CUDA tests need CuPy (pip install ember[cuda])")
if not ember.cuda.is_available():
    pytest.skip("no CUDA device visible to CuPy", allow_module_level=True)

pytestmark = pytest.mark.gpu

TOL = {"float64": (1e-10, 1e-8), "float32": (1e-5, 1e-4)}


def _run(fn, arrays, device, grad):
    ts = [
        ember.tensor(a, device=device, requires_grad=grad and a.dtype.kind == "f") for a in arrays
    ]
    out = fn(*ts)
    grads = []
    if grad and out.requires_grad:
        seed = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(out.dtype.np)
        out.backward(ember.tensor(seed, device=device))
        grads = [t.grad for t in ts if t.requires_grad]
    return out, grads


def _compare(fn, arrays, dtype, grad=True):
    rtol, atol = TOL.get(dtype, (0, 0))
    (c_out, c_grads), (g_out, g_grads) = (_run(fn, arrays, d, grad) for d in ("cpu", "cuda"))
    assert g_out.device.type == "cuda" and g_out.dtype is c_out.dtype
    np.testing.assert_allclose(g_out.cpu().numpy(force=True), c_out.numpy(force=True), rtol, atol)
    for cg, gg in zip(c_grads, g_grads):
        np.testing.assert_allclose(gg.cpu().numpy(), cg.numpy(), rtol, atol)


def _inputs(shapes, dtype, low=-0.9, high=0.9):
    rng = np.random.default_rng(0)
    return [rng.uniform(low, high, size=s).astype(dtype) for s in shapes]


OPS = [
    ("trig", lambda a: a.tan() + a.asin() + a.acos() + a.atan() + a.sinh() + a.cosh(), [(4, 5)]),
    ("hyperbolic_inverse", lambda a: a.asinh() + a.atanh() + (a.abs() + 1.5).acosh(), [(4, 5)]),
    ("erf_family", lambda a: a.erf() + a.erfc() + a.erfinv() + a.exp2(), [(4, 5)]),
    (
        "binary",
        lambda a, b: (
            ember.atan2(a, b)
            + ember.logaddexp(a, b)
            + ember.logaddexp2(a, b)
            + ember.copysign(a, b)
        ),
        [(4, 5), (5,)],
    ),
    ("lerp", lambda a, b, w: ember.lerp(a, b, w), [(4, 5), (4, 5), (4, 1)]),
    ("cummax_logcumsumexp", lambda a: a.cummax(1).values + a.logcumsumexp(1), [(4, 5)]),
    (
        "scatter_reduce",
        lambda a, s: a.scatter_reduce(
            0, ember.tensor([[0, 1, 0], [2, 2, 1]], device=a.device), s, "amax"
        ),
        [(3, 3), (2, 3)],
    ),
    (
        "interpolate_bicubic",
        lambda a: F.interpolate(a, scale_factor=1.7, mode="bicubic"),
        [(2, 3, 5, 6)],
    ),
    (
        "interpolate_nearest3d",
        lambda a: F.interpolate(a, size=(3, 7, 4), mode="nearest"),
        [(1, 2, 4, 5, 3)],
    ),
    (
        "conv3d",
        lambda a, w: F.conv3d(a, w, stride=(1, 2, 1), padding=1, groups=2),
        [(2, 4, 5, 6, 4), (4, 2, 3, 2, 3)],
    ),
    (
        "conv_transpose3d",
        lambda a, w: F.conv_transpose3d(a, w, stride=2, padding=1),
        [(1, 4, 3, 3, 2), (4, 2, 3, 3, 3)],
    ),
    ("max_pool3d", lambda a: F.max_pool3d(a, 3, stride=2, padding=1), [(2, 2, 5, 6, 5)]),
    (
        "avg_pool3d",
        lambda a: F.avg_pool3d(a, 2, ceil_mode=True, count_include_pad=False),
        [(2, 2, 5, 6, 5)],
    ),
    (
        "adaptive_pool3d",
        lambda a: F.adaptive_avg_pool3d(a, 2) + F.adaptive_max_pool3d(a, 2),
        [(1, 2, 5, 6, 7)],
    ),
    (
        "max_unpool2d",
        lambda a: F.max_unpool2d(*F.max_pool2d(a, 2, return_indices=True), 2),
        [(2, 3, 6, 4)],
    ),
    ("pad_negative", lambda a: F.pad(a, (-1, 2, 1, -2), mode="circular"), [(2, 3, 6, 5)]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,shapes", OPS, ids=[o[0] for o in OPS])
def test_op_on_cuda(name, fn, shapes, dtype):
    _compare(fn, _inputs(shapes, dtype), dtype)


def test_bitwise_on_cuda():
    ints = [
        np.array([[5, -3, 12], [0, 7, -8]], dtype=np.int64),
        np.array([1, 2, 3], dtype=np.int64),
    ]
    _compare(
        lambda a, b: (a & b) + (a | 3) + (6 ^ a) + (a << b) + (a >> 1) + ~a,
        ints,
        "int64",
        grad=False,
    )


def test_double_backward_on_cuda():
    x0, w0 = _inputs([(2, 3, 6, 6), (4, 3, 3, 3)], "float64")
    results = []
    for device in ("cpu", "cuda"):
        x = ember.tensor(x0, device=device, requires_grad=True)
        w = ember.tensor(w0, device=device, requires_grad=True)
        y = F.max_pool2d(F.conv2d(x, w, padding=1), 2) + F.avg_pool2d(F.conv2d(x, w, padding=1), 2)
        gx, gw = ember.autograd.grad((y * y * y).sum(), (x, w), create_graph=True)
        grads = ember.autograd.grad((gx * gx).sum() + (gw * gw).sum(), (x, w))
        results.append([g.cpu().numpy() for g in grads])
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-8, atol=1e-10)
