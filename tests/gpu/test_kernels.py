"""The CUDA kernels against NumPy references (float16/bfloat16 in float32 arithmetic),
bfloat16 and float16 on CUDA (tensors, matmul through cuBLAS, autocast, training steps)
and the peak-memory counter. Skipped, with the reason, without CuPy >= 14 and a GPU."""

import ml_dtypes
import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

if not ember.cuda.is_available():
    pytest.skip(ember.cuda.unavailable_reason(), allow_module_level=True)

import cupy  # noqa: E402

from ember.core import gemm, kernels, multi_tensor  # noqa: E402

pytestmark = pytest.mark.gpu

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = ["float16", "bfloat16", "float32", "float64"]
# tolerance for a result stored in each dtype (the arithmetic is float32/float64)
TOL = {"float16": (2e-3, 2e-3), "bfloat16": (1.6e-2, 1.6e-2), "float32": (1e-5, 1e-6)}
TOL["float64"] = (1e-12, 1e-12)


def _np_dtype(name):
    return BF16 if name == "bfloat16" else np.dtype(name)


def _rand(shape, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(_np_dtype(dtype))


def _close(got, want, dtype):
    rtol, atol = TOL[dtype]
    got = cupy.asnumpy(got).astype(np.float64) if not isinstance(got, np.ndarray) else got
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


# -- NumPy references ---------------------------------------------------------------------


def ref_cross_entropy(x, t, ignore_index, eps):
    x = x.astype(np.float64)
    n = x.shape[1]
    lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    valid = t != ignore_index
    picked = x[np.arange(len(t)), np.where(valid, t, 0)]
    loss = np.where(valid, lse - (1 - eps) * picked - eps / n * x.sum(1), 0.0)
    p = np.exp(x - lse[:, None])
    onehot = np.zeros_like(x)
    onehot[np.arange(len(t)), np.where(valid, t, 0)] = 1.0
    grad = (p - (1 - eps) * onehot - eps / n) * valid[:, None]
    return loss, lse, grad


def ref_sgd(p, g, buf, lr, momentum, dampening, wd, nesterov, maximize, init):
    p, g = p.astype(np.float64), g.astype(np.float64)
    g = -g if maximize else g
    g = g + wd * p
    if momentum:
        buf = g if init else momentum * buf.astype(np.float64) + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


# -- row and element-wise kernels ---------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_norm_kernels_all_dtypes(dtype):
    x = _rand((6, 300), dtype, scale=3.0)
    w, b = _rand((300,), dtype, 1), _rand((300,), dtype, 2)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(1, keepdims=True))
    _close(kernels.softmax_lastdim(cupy.asarray(x)), e / e.sum(1, keepdims=True), dtype)
    _close(
        kernels.softmax_lastdim(cupy.asarray(x), log=True),
        np.log(e / e.sum(1, keepdims=True)),
        dtype,
    )
    y, xhat, invstd = kernels.norm_forward(
        cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), 1, 1e-5, rms=False
    )
    mu, var = x64.mean(1, keepdims=True), x64.var(1, keepdims=True)
    ref_hat = (x64 - mu) / np.sqrt(var + 1e-5)
    _close(y, ref_hat * w.astype(np.float64) + b.astype(np.float64), dtype)
    assert invstd.dtype == (np.float64 if dtype == "float64" else np.float32)
    g = _rand((6, 300), dtype, 3)
    gx = kernels.norm_input_grad(cupy.asarray(g), xhat, cupy.asarray(w), invstd, rms=False)
    gw = g.astype(np.float64) * w.astype(np.float64)
    ref_gx = (
        gw - ref_hat * (gw * ref_hat).mean(1, keepdims=True) - gw.mean(1, keepdims=True)
    ) / np.sqrt(var + 1e-5)
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(
        cupy.asnumpy(gx).astype(np.float64), ref_gx, rtol=rtol * 4, atol=atol * 4
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps,ignore", [(0.0, -100), (0.1, 2)])
def test_cross_entropy_kernels_match_reference(dtype, eps, ignore):
    x = _rand((9, 37), dtype, scale=4.0)
    t = np.random.default_rng(1).integers(0, 37, 9)
    t[[1, 5]] = ignore if ignore >= 0 else -100
    loss, lse = kernels.cross_entropy_forward(cupy.asarray(x), cupy.asarray(t), ignore, eps)
    ref_loss, ref_lse, ref_grad = ref_cross_entropy(x, t, ignore, eps)
    tol = {"float64": 1e-12}.get(dtype, 2e-5)  # arithmetic precision, not storage
    np.testing.assert_allclose(cupy.asnumpy(loss), ref_loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(cupy.asnumpy(lse), ref_lse, rtol=tol, atol=tol)
    row_grad = cupy.asarray(np.linspace(0.5, 1.5, 9), dtype=lse.dtype)
    gx = kernels.cross_entropy_backward(
        cupy.asarray(x), cupy.asarray(t), lse, row_grad, ignore, eps
    )
    assert gx.dtype == x.dtype
    _close(gx, ref_grad * np.linspace(0.5, 1.5, 9)[:, None], dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_cross_entropy_op_matches_cpu(reduction):
    x = _rand((16, 10), "float32", scale=2.0)
    t = np.random.default_rng(2).integers(0, 10, 16)
    t[3] = -100
    results = []
    for device in ("cpu", "cuda"):
        xt = ember.tensor(x, device=device, requires_grad=True)
        loss = F.cross_entropy(xt, ember.tensor(t, device=device), reduction=reduction)
        loss.sum().backward()
        results.append((loss.detach().cpu().numpy(), xt.grad.cpu().numpy()))
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(ember.tensor(x, device="cuda"), ember.tensor([10] * 16, device="cuda"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernels_match_reference(dtype):
    x = _rand((64, 33), dtype)
    u = np.random.default_rng(4).random((64, 33), dtype=np.float32)
    p = 0.3
    y, mask = kernels.dropout_forward(cupy.asarray(x), cupy.asarray(u), p)
    keep = u >= p
    np.testing.assert_array_equal(cupy.asnumpy(mask), keep)
    _close(y, np.where(keep, x.astype(np.float64) / (1 - p), 0.0), dtype)
    g = _rand((64, 33), dtype, 5)
    _close(
        kernels.dropout_backward(cupy.asarray(g), mask, p),
        np.where(keep, g.astype(np.float64) / (1 - p), 0.0),
        dtype,
    )
    # through F.dropout: the kept fraction and the gradient's pattern
    xt = ember.ones(200, 100, device="cuda", requires_grad=True)
    out = F.dropout(xt, p=0.25)
    out.sum().backward()
    kept = out.detach().cpu().numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(xt.grad.cpu().numpy(), kept / 0.75, rtol=1e-6)


# -- multi-tensor kernels -----------------------------------------------------------------

SHAPES = [(7,), (33, 5), (1,), (256, 3), (2, 2, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "momentum,dampening,wd,nesterov,maximize",
    [(0.0, 0.0, 0.0, False, False), (0.9, 0.1, 0.01, False, True), (0.9, 0.0, 0.0, True, False)],
)
def test_multi_tensor_sgd_matches_reference(dtype, momentum, dampening, wd, nesterov, maximize):
    ps = [_rand(s, dtype, i) for i, s in enumerate(SHAPES)]
    gs = [_rand(s, dtype, 10 + i) for i, s in enumerate(SHAPES)]
    dp, dg = [cupy.asarray(a) for a in ps], [cupy.asarray(a) for a in gs]
    db = [cupy.empty_like(a) for a in dp] if momentum else []
    refs = [(p.astype(np.float64), None) for p in ps]
    for step in range(2):
        multi_tensor.sgd_step(
            dp, dg, db, 0.1, momentum, dampening, wd, nesterov, maximize, init_buf=step == 0
        )
        refs = [
            ref_sgd(p, g, b, 0.1, momentum, dampening, wd, nesterov, maximize, step == 0)
            for (p, b), g in zip(refs, gs)
        ]
        refs = [(p.astype(_np_dtype(dtype)).astype(np.float64), b) for p, b in refs]
    for got, (want, _) in zip(dp, refs):
        _close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_tensor_norm_scale_pack_unpack(dtype):
    arrays = [_rand(s, dtype, i, scale=3.0) for i, s in enumerate(SHAPES)]
    dev = [cupy.asarray(a) for a in arrays]
    flat64 = np.concatenate([a.astype(np.float64).ravel() for a in arrays])
    norm = multi_tensor.total_norm(dev, 2.0)
    assert norm.dtype == np.float64 and norm.shape == ()
    np.testing.assert_allclose(float(norm), np.linalg.norm(flat64), rtol=1e-12)
    np.testing.assert_allclose(
        float(multi_tensor.total_norm(dev, float("inf"))), np.abs(flat64).max(), rtol=0
    )
    flat = cupy.empty(flat64.size, dev[0].dtype)
    multi_tensor.pack(dev, flat)
    np.testing.assert_array_equal(cupy.asnumpy(flat).astype(np.float64), flat64)
    multi_tensor.unpack(flat, dev, scale=0.5)
    for got, a in zip(dev, arrays):
        _close(got, a.astype(np.float64) * 0.5, dtype)
    multi_tensor.scale_(dev, cupy.asarray(4.0))
    for got, a in zip(dev, arrays):
        _close(got, a.astype(np.float64) * 2.0, dtype)
    with pytest.raises(ValueError, match="hold"):
        multi_tensor.pack(dev, cupy.empty(3, dev[0].dtype))


def test_clip_grad_norm_on_cuda_matches_cpu():
    grads = [_rand(s, "float32", i, scale=5.0) for i, s in enumerate(SHAPES)]
    out = []
    for device in ("cpu", "cuda"):
        params = [ember.zeros(g.shape, device=device, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = ember.tensor(g, device=device)
        total = nn.utils.clip_grad_norm_(params, 1.0)
        out.append((float(total), [p.grad.cpu().numpy() for p in params]))
    (c_total, c_grads), (g_total, g_grads) = out
    np.testing.assert_allclose(g_total, c_total, rtol=1e-6)
    for c, g in zip(c_grads, g_grads):
        np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-7)


# -- bfloat16 / float16 matmul (cuBLAS, float32 accumulation) -----------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "a_shape,b_shape,transpose_b",
    [
        ((64, 96), (96, 48), False),
        ((3, 64, 96), (96, 48), False),  # folded into one 2-D GEMM
        ((2, 3, 64, 96), (2, 3, 96, 48), False),  # strided batched
        ((2, 3, 64, 96), (2, 3, 48, 96), True),  # b read transposed, no copy
        ((4, 64, 96), (1, 96, 48), False),  # one b for the batch: stride 0
        ((64, 96), (5, 96, 48), False),  # one a for the batch (a conv's weights)
        ((3, 64, 96), (2, 3, 96, 48), False),  # partial broadcast: copied
        ((2, 96, 64), (2, 96, 48), False),  # a transposed below
    ],
)
def test_half_matmul_accumulates_in_float32(dtype, a_shape, b_shape, transpose_b):
    a, b = _rand(a_shape, dtype, 1), _rand(b_shape, dtype, 2)
    da, db = cupy.asarray(a), cupy.asarray(b)
    if transpose_b:
        db, b = db.swapaxes(-1, -2), b.swapaxes(-1, -2)
    if a_shape == (2, 96, 64):  # (2, 64, 96) read transposed, no copy
        da, a = da.swapaxes(-1, -2), a.swapaxes(-1, -2)
    got = gemm.matmul(da, db)
    assert got.dtype == da.dtype
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    # float32 accumulation: the only error is the final rounding to the 16-bit type
    rel = {"float16": 2e-3, "bfloat16": 1e-2}[dtype]
    np.testing.assert_allclose(
        cupy.asnumpy(got).astype(np.float64), want, rtol=rel, atol=rel * np.abs(want).max()
    )


def test_bfloat16_tensors_ops_and_training_on_cuda():
    x = ember.randn(8, 16, device="cuda").to(ember.bfloat16)
    assert x.dtype is ember.bfloat16 and x.device.type == "cuda"
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 4))
    model = model.to("cuda", ember.bfloat16)
    y = ember.tensor([0, 1, 2, 3] * 2, device="cuda")
    opt = ember.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(p.dtype is ember.bfloat16 for p in model.parameters())
    assert losses[-1] < losses[0] * 0.5


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_training_step_matches_float32(dtype):
    """One autocast step on CUDA against the float32 CPU step: bf16 needs no scaler,
    float16 runs with a GradScaler."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 12)).astype(np.float32), rng.integers(0, 4, 32)
    low = getattr(ember, dtype)
    results = []
    for device, autocast in (("cpu", False), ("cuda", True)):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(12, 64), nn.SiLU(), nn.Linear(64, 4)).to(device)
        opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scaler = ember.amp.GradScaler(enabled=autocast and dtype == "float16")
        xb, yb = ember.tensor(x, device=device), ember.tensor(y, device=device)
        for _ in range(3):
            opt.zero_grad()
            with ember.autocast("cuda", dtype=low, enabled=autocast):
                out = model(xb)
                if autocast:
                    assert out.dtype is low
                loss = F.cross_entropy(out, yb)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        results.append([p.detach().cpu().numpy() for p in model.parameters()])
    for c, g in zip(*results):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, c, rtol=5e-2, atol=2e-2)


def test_autocast_bfloat16_op_lists():
    x = ember.randn(8, 16, device="cuda")
    w = ember.randn(4, 16, device="cuda", requires_grad=True)
    with ember.autocast("cuda", dtype=ember.bfloat16):
        out = F.linear(x, w)
        assert out.dtype is ember.bfloat16
        assert F.softmax(out, dim=1).dtype is ember.float32
        assert (out @ out.T).dtype is ember.bfloat16
        q = ember.randn(2, 2, 5, 8, device="cuda")
        assert F.scaled_dot_product_attention(q, q, q).dtype is ember.bfloat16
        loss = F.cross_entropy(out, ember.tensor([0, 1, 2, 3] * 2, device="cuda"))
        assert loss.dtype is ember.float32
    loss.backward()
    assert w.grad.dtype is ember.float32


# -- memory counter -----------------------------------------------------------------------


def test_peak_memory_counts_a_transient_allocation():
    ember.cuda.synchronize()
    ember.cuda.reset_peak_memory_stats()
    base = ember.cuda.memory_allocated()
    assert ember.cuda.max_memory_allocated() == base
    big = ember.empty(4 << 20, device="cuda")  # 16 MiB
    del big  # freed before anyone asks: only the hook saw it
    assert ember.cuda.memory_allocated() <= base
    assert ember.cuda.max_memory_allocated() >= base + (16 << 20)
    ember.cuda.reset_peak_memory_stats()
    assert ember.cuda.max_memory_allocated() < base + (16 << 20)
