"""Every op family on CUDA against CPU, training on CUDA, autocast, GradScaler, memory
stats, streams/events, DLPack to torch.cuda and the fused kernels. Skipped (with the
reason) on machines without CuPy or without a visible GPU."""

import ml_dtypes
import numpy as np
import pytest

import ember
import ember.backends
import ember.nn as nn
import ember.nn.functional as F
from ember.core import kernels

if not ember.cuda.is_available():
    pytest.skip(ember.cuda.unavailable_reason(), allow_module_level=True)

import cupy  # noqa: E402

pytestmark = pytest.mark.gpu

TOL = {"float64": (1e-10, 1e-8), "float32": (1e-5, 1e-4), "float16": (2e-3, 2e-2)}


def _inputs(shapes, dtype, seed=0, low=-2.0, high=2.0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, size=s).astype(dtype) for s in shapes]


def _compare(fn, arrays, dtype, grad=True):
    """``fn`` on CPU and CUDA tensors made from ``arrays``: same values, same grads."""
    rtol, atol = TOL[dtype]
    results = []
    for device in ("cpu", "cuda"):
        ts = [
            ember.tensor(a, device=device, requires_grad=grad and a.dtype.kind == "f")
            for a in arrays
        ]
        out = fn(*ts)
        grads = []
        if grad and out.requires_grad:
            seed = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(out.dtype.np)
            out.backward(ember.tensor(seed, device=device))
            grads = [t.grad for t in ts if t.requires_grad]
        results.append((out, grads))
    (c_out, c_grads), (g_out, g_grads) = results
    assert g_out.device.type == "cuda" and g_out.dtype is c_out.dtype
    np.testing.assert_allclose(g_out.cpu().numpy(force=True), c_out.numpy(force=True), rtol, atol)
    for cg, gg in zip(c_grads, g_grads):
        np.testing.assert_allclose(gg.cpu().numpy(), cg.numpy(), rtol, atol)


LABELS = np.array([1, 0, 3, 2, 1, 0], dtype=np.int64)

# (name, fn, shapes); every op runs in float32 and float64
OPS = [
    ("add", lambda a, b: a + b, [(4, 5), (5,)]),
    ("mul_div", lambda a, b: a * b / (b.abs() + 1), [(4, 5), (4, 5)]),
    ("pow", lambda a: a.abs() ** 1.5, [(4, 5)]),
    ("exp_log", lambda a: (a.exp() + 1).log(), [(4, 5)]),
    ("tanh_sigmoid", lambda a: a.tanh() * a.sigmoid(), [(4, 5)]),
    ("relu", lambda a: F.relu(a), [(4, 5)]),
    ("gelu", lambda a: F.gelu(a), [(4, 5)]),
    ("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), [(4, 5)]),
    ("silu", lambda a: F.silu(a), [(4, 5)]),
    ("clamp_where", lambda a: ember.where(a > 0, a.clamp(max=1.0), -a), [(4, 5)]),
    ("softmax_last", lambda a: F.softmax(a, dim=-1), [(3, 4, 37)]),
    ("softmax_first", lambda a: F.softmax(a, dim=0), [(3, 4, 5)]),
    ("log_softmax_last", lambda a: F.log_softmax(a, dim=-1), [(6, 1500)]),
    (
        "sum_mean_var",
        lambda a: a.sum(0) + a.mean(1, keepdim=True) + a.var(1, keepdim=True),
        [(4, 5)],
    ),
    ("amax", lambda a: a.amax(dim=1), [(4, 5)]),
    ("cumsum", lambda a: ember.cumsum(a, 1), [(4, 5)]),
    ("logsumexp", lambda a: ember.logsumexp(a, 1), [(4, 5)]),
    ("matmul", lambda a, b: a @ b, [(2, 4, 5), (5, 3)]),
    ("bmm", lambda a, b: ember.bmm(a, b), [(2, 4, 5), (2, 5, 3)]),
    ("linear", lambda x, w, b: F.linear(x, w, b), [(6, 5), (3, 5), (3,)]),
    ("einsum", lambda a, b: ember.einsum("bij,bkj->bik", a, b), [(2, 3, 4), (2, 5, 4)]),
    ("conv1d", lambda x, w: F.conv1d(x, w, padding=1), [(2, 3, 9), (4, 3, 3)]),
    (
        "conv2d",
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        [(2, 3, 8, 8), (4, 3, 3, 3), (4,)],
    ),
    ("conv2d_groups", lambda x, w: F.conv2d(x, w, groups=2), [(2, 4, 6, 6), (4, 2, 3, 3)]),
    (
        "conv_transpose2d",
        lambda x, w: F.conv_transpose2d(x, w, stride=2),
        [(2, 3, 4, 4), (3, 2, 3, 3)],
    ),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2), [(2, 3, 6, 6)]),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), [(2, 3, 7, 7)]),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (5,), w, b), [(4, 5), (5,), (5,)]),
    ("rms_norm", lambda x, w: F.rms_norm(x, (5,), w), [(4, 5), (5,)]),
    ("group_norm", lambda x: F.group_norm(x, 2), [(2, 4, 3, 3)]),
    (
        "batch_norm",
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        [(4, 3, 5), (3,), (3,)],
    ),
    (
        "sdpa_causal",
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        [(2, 2, 5, 4)] * 3,
    ),
    ("mse_loss", lambda a, b: F.mse_loss(a, b), [(4, 5), (4, 5)]),
    (
        "bce_logits",
        lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid()),
        [(4, 5), (4, 5)],
    ),
    ("movement", lambda a: a.transpose(0, 1).reshape(-1)[2:9].unsqueeze(0), [(4, 5)]),
    ("cat_stack", lambda a, b: ember.cat([a, ember.stack([b, b]).sum(0)], dim=1), [(4, 5), (4, 2)]),
    ("index", lambda a: a[[0, 2, 3]][:, 1:4] * 2, [(4, 5)]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,shapes", OPS, ids=[o[0] for o in OPS])
def test_op_matches_cpu(name, fn, shapes, dtype):
    _compare(fn, _inputs(shapes, dtype), dtype)


@pytest.mark.parametrize("name,fn,shapes", OPS, ids=[o[0] for o in OPS])
def test_op_in_bfloat16_on_cuda_matches_float32_cpu(name, fn, shapes):
    """bfloat16 on CUDA (CuPy 14) against float32 on CPU from the same rounded inputs."""
    arrays = [a.astype(ml_dtypes.bfloat16) for a in _inputs(shapes, "float32")]
    results = []
    for device, dtype in (("cpu", np.float32), ("cuda", ml_dtypes.bfloat16)):
        ts = [ember.tensor(a.astype(dtype), device=device, requires_grad=True) for a in arrays]
        out = fn(*ts)
        seed = np.random.default_rng(1).standard_normal(tuple(out.shape))
        out.backward(ember.tensor(seed.astype(ml_dtypes.bfloat16).astype(dtype), device=device))
        results.append((out, [t.grad for t in ts]))
    (c_out, c_grads), (g_out, g_grads) = results
    assert g_out.dtype is ember.bfloat16 and g_out.device.type == "cuda"
    for c, g in zip([c_out, *c_grads], [g_out, *g_grads]):
        got = g.detach().cpu().float().numpy()
        want = c.detach().numpy()
        np.testing.assert_allclose(got, want, rtol=5e-2, atol=5e-2 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_class_index_ops_match_cpu(dtype):
    (x,) = _inputs([(6, 4)], dtype)
    for fn in (
        lambda a, t: F.cross_entropy(a, t, label_smoothing=0.1),
        lambda a, t: F.nll_loss(F.log_softmax(a, 1), t),
        lambda a, t: ember.gather(a, 1, t[:, None]),
        lambda a, t: F.embedding(t, a),
    ):
        _compare(fn, [x, LABELS], dtype)


def test_float16_elementwise_and_matmul_match_cpu():
    a, b = _inputs([(8, 16), (16, 4)], "float16")
    for fn in (lambda x, y: x @ y, lambda x, y: F.gelu(x) @ y, lambda x, y: F.silu(x).sum(1)):
        _compare(fn, [a, b], "float16", grad=False)


def _mlp(device, seed=0):
    ember.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(12, 32), nn.GELU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, 4)
    )
    return model.to(device)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "AdamW"])
def test_mlp_training_on_cuda_equals_cpu(opt_name):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 12)).astype(np.float32), rng.integers(0, 4, 16)
    results = []
    for device in ("cpu", "cuda"):
        model = _mlp(device)
        kw = (
            {"lr": 0.05, "momentum": 0.9}
            if opt_name == "SGD"
            else {"lr": 1e-2, "weight_decay": 0.01}
        )
        opt = getattr(ember.optim, opt_name)(model.parameters(), **kw)
        xb, yb = ember.tensor(x, device=device), ember.tensor(y, device=device)
        for _ in range(5):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        results.append([p.detach().cpu().numpy() for p in model.parameters()])
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_autocast_float16_on_cuda():
    x = ember.randn(8, 16, device="cuda")
    lin = nn.Linear(16, 4).cuda()
    with ember.autocast("cuda", dtype=ember.float16):
        out = lin(x)
        assert out.dtype is ember.float16
        assert F.softmax(out, dim=1).dtype is ember.float32
        assert out.sum().dtype is ember.float32
        assert F.layer_norm(out, (4,)).dtype is ember.float32
        assert out.exp().dtype is ember.float32
        loss = F.cross_entropy(out, ember.tensor([0, 1, 2, 3] * 2, device="cuda"))
        assert loss.dtype is ember.float32
        with pytest.raises(RuntimeError, match="unsafe to autocast"):
            F.binary_cross_entropy(out.sigmoid(), ember.ones(8, 4, device="cuda"))
        cpu_out = F.linear(x.cpu(), lin.weight.detach().cpu())
        assert cpu_out.dtype is ember.float32  # CPU tensors ignore a CUDA region
    loss.backward()
    assert lin.weight.grad.dtype is ember.float32 and lin.weight.grad.device.type == "cuda"


def test_autocast_bfloat16_on_cuda():
    x = ember.randn(8, 16, device="cuda")
    w = ember.randn(4, 16, device="cuda", requires_grad=True)
    with ember.autocast("cuda", dtype=ember.bfloat16):
        out = F.linear(x, w)
        assert out.dtype is ember.bfloat16
        loss = F.cross_entropy(out, ember.tensor([0, 1, 2, 3] * 2, device="cuda"))
    loss.backward()
    assert w.grad.dtype is ember.float32


def test_grad_scaler_with_inf_injection_on_cuda():
    p = ember.zeros(4, device="cuda", requires_grad=True)
    opt = ember.optim.SGD([p], lr=1.0)
    scaler = ember.amp.GradScaler(init_scale=1024.0, growth_interval=1)
    for bad in (False, True, False):
        opt.zero_grad()
        scaler.scale((p + 1).sum()).backward()
        if bad:
            p.grad.data[2] = float("inf")
        before = p.detach().cpu().numpy().copy()
        scaler.step(opt)
        scaler.update()
        after = p.detach().cpu().numpy()
        assert scaler.step_was_skipped(opt) is bad
        if bad:
            np.testing.assert_array_equal(after, before)
        else:
            np.testing.assert_allclose(after, before - 1.0)
    assert scaler.get_scale() == 1024.0 * 2 * 0.5 * 2


def test_memory_stats_and_empty_cache():
    ember.cuda.empty_cache()
    ember.cuda.reset_peak_memory_stats()
    base = ember.cuda.memory_allocated()
    t = ember.empty(1 << 20, device="cuda")  # 4 MiB
    assert ember.cuda.memory_allocated() >= base + 4 * (1 << 20)
    assert ember.cuda.max_memory_allocated() >= ember.cuda.memory_allocated()
    del t
    assert ember.cuda.memory_allocated() <= base
    reserved = ember.cuda.memory_reserved()
    assert reserved >= ember.cuda.memory_allocated()
    ember.cuda.empty_cache()
    assert ember.cuda.memory_reserved() <= reserved - 4 * (1 << 20)


def test_streams_and_events():
    start, end = ember.cuda.Event(enable_timing=True), ember.cuda.Event(enable_timing=True)
    side = ember.cuda.Stream()
    x = ember.randn(512, 512, device="cuda")
    side.wait_stream(ember.cuda.current_stream())
    with side:
        start.record(side)
        y = x @ x
        end.record(side)
    ember.cuda.current_stream().wait_stream(side)
    end.synchronize()
    assert end.query()
    assert start.elapsed_time(end) >= 0.0
    ember.cuda.synchronize()
    np.testing.assert_allclose(
        y.cpu().numpy(), x.cpu().numpy() @ x.cpu().numpy(), rtol=1e-3, atol=1e-2
    )


def test_dlpack_and_cuda_array_interface():
    e = ember.arange(6.0, device="cuda")
    cai = e.__cuda_array_interface__
    assert cai["data"][0] == e.data_ptr() and tuple(cai["shape"]) == (6,)
    c = cupy.asarray(e)  # zero-copy through the interface
    c[0] = 42.0
    assert float(e[0]) == 42.0
    with pytest.raises(RuntimeError, match="requires grad"):
        ember.ones(2, device="cuda", requires_grad=True).__cuda_array_interface__  # noqa: B018
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA: DLPack exchange with torch.cuda not checked")
    t = torch.from_dlpack(e)
    assert t.is_cuda and t.data_ptr() == e.data_ptr()
    t[1] = -1.0
    assert float(e[1]) == -1.0
    back = ember.from_dlpack(torch.ones(3, device="cuda"))
    assert back.device.type == "cuda" and back.tolist() == [1.0, 1.0, 1.0]


def test_allow_tf32_sets_cupy_compute_type():
    from cupy._core import _routines_linalg as linalg

    try:
        ember.backends.cuda.matmul.allow_tf32 = True
        expected = linalg.COMPUTE_TYPE_TF32
        if int(cupy.cuda.Device().compute_capability) < 80:
            expected = linalg.COMPUTE_TYPE_DEFAULT  # CuPy falls back before Ampere
        assert linalg.get_compute_type(np.float32) == expected
    finally:
        ember.backends.cuda.matmul.allow_tf32 = False
    assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT


# -- fused kernels against the NumPy reference path --------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_fused_activation_kernels_match_reference(dtype):
    (x,) = _inputs([(7, 33)], dtype, low=-5, high=5)
    g = np.cos(x)
    rtol, atol = TOL[dtype]
    xd, gd = cupy.asarray(x), cupy.asarray(g)
    for approx in ("none", "tanh"):
        t = ember.tensor(x.astype(np.float64), requires_grad=True)
        F.gelu(t, approximate=approx).backward(ember.tensor(g.astype(np.float64)))
        ref, ref_grad = F.gelu(t, approximate=approx).detach().numpy(), t.grad.numpy()
        np.testing.assert_allclose(kernels.gelu_forward(xd, approx).get(), ref, rtol, atol)
        np.testing.assert_allclose(
            kernels.gelu_backward(xd, gd, approx).get(), ref_grad, rtol, atol
        )
    t = ember.tensor(x.astype(np.float64), requires_grad=True)
    F.silu(t).backward(ember.tensor(g.astype(np.float64)))
    np.testing.assert_allclose(
        kernels.silu_forward(xd).get(), F.silu(t).detach().numpy(), rtol, atol
    )
    np.testing.assert_allclose(kernels.silu_backward(xd, gd).get(), t.grad.numpy(), rtol, atol)


@pytest.mark.parametrize("n", [1, 31, 32, 1000, 4099])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_softmax_matches_reference(n, dtype):
    (x,) = _inputs([(5, n)], dtype, low=-30, high=30)
    x[0, : (n + 1) // 2] = -np.inf  # masked positions
    rtol, atol = TOL[dtype]
    xd = cupy.asarray(x)
    assert kernels.softmax_fits(xd, 1)
    ref = F.softmax(ember.tensor(x), dim=1).numpy()
    np.testing.assert_allclose(kernels.softmax_lastdim(xd).get(), ref, rtol, atol)
    ref_log = F.log_softmax(ember.tensor(x), dim=1).numpy()
    np.testing.assert_allclose(kernels.softmax_lastdim(xd, log=True).get(), ref_log, rtol, atol)


@pytest.mark.parametrize(
    "decoupled,maximize,amsgrad",
    [(False, False, False), (True, False, False), (False, True, False), (True, False, True)],
)
def test_fused_adam_matches_cpu_optimizer(decoupled, maximize, amsgrad):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((5, 7)).astype(np.float32)
    grads = [rng.standard_normal((5, 7)).astype(np.float32) for _ in range(4)]
    results = []
    for device in ("cpu", "cuda"):
        p = ember.tensor(p0, device=device, requires_grad=True)
        cls = ember.optim.AdamW if decoupled else ember.optim.Adam
        opt = cls(
            [p], lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1, amsgrad=amsgrad, maximize=maximize
        )
        for g in grads:
            p.grad = ember.tensor(g, device=device)
            opt.step()
        results.append((p.detach().cpu().numpy(), opt.state[p]["exp_avg_sq"].cpu().numpy()))
    (cp_, cv), (gp, gv) = results
    np.testing.assert_allclose(gp, cp_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gv, cv, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [1, 33, 769, 4099])
@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_fused_norm_kernels_match_cpu(n, rms, affine):
    x, w, b = _inputs([(3, 2, n), (n,), (n,)], "float32", seed=n)
    xd = cupy.asarray(x)
    assert kernels.norm_fits(xd, 1, None, None)
    if rms:
        fn = (
            (lambda a, w: F.rms_norm(a, (n,), w, eps=1e-6))
            if affine
            else (lambda a: F.rms_norm(a, (n,), eps=1e-6))
        )
    else:
        fn = (
            (lambda a, w, b: F.layer_norm(a, (n,), w, b))
            if affine
            else (lambda a: F.layer_norm(a, (n,)))
        )
    arrays = [x, w, b][: (2 if rms else 3) if affine else 1]
    _compare(fn, arrays, "float32")
