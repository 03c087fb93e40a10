"""autocast and GradScaler against PyTorch's, on CPU with bfloat16."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from ember.core import amp

RNG = np.random.default_rng(0)


def _arr(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _name(dt) -> str:
    return str(dt).rsplit(".", 1)[-1]


X2, W2, B1 = _arr(4, 6), _arr(5, 6), _arr(5)
A3, B3 = _arr(2, 4, 3), _arr(2, 3, 5)
X1D, W1D = _arr(2, 3, 9), _arr(4, 3, 3)
X2D, W2D = _arr(2, 3, 6, 6), _arr(4, 3, 3, 3)
WT2D = _arr(3, 2, 3, 3)
Q = _arr(2, 2, 4, 8)
LABELS = np.array([0, 4, 2, 1])
PROBS = np.abs(_arr(4, 6)) / 4

# (name, fn(lib, F, *tensors), input arrays); lib is ember or torch, F its functional
OPS = [
    ("matmul", lambda m, f, a, b: m.matmul(a, b), [X2, W2.T.copy()]),
    ("mm", lambda m, f, a, b: m.mm(a, b), [X2, W2.T.copy()]),
    ("bmm", lambda m, f, a, b: m.bmm(a, b), [A3, B3]),
    ("addmm", lambda m, f, c, a, b: m.addmm(c, a, b), [B1, X2, W2.T.copy()]),
    ("baddbmm", lambda m, f, c, a, b: m.baddbmm(c, a, b), [_arr(2, 4, 5), A3, B3]),
    ("linear", lambda m, f, x, w, b: f.linear(x, w, b), [X2, W2, B1]),
    ("conv1d", lambda m, f, x, w: f.conv1d(x, w), [X1D, W1D]),
    ("conv2d", lambda m, f, x, w: f.conv2d(x, w, padding=1), [X2D, W2D]),
    ("conv_transpose1d", lambda m, f, x, w: f.conv_transpose1d(x, w), [X1D, _arr(3, 2, 3)]),
    ("conv_transpose2d", lambda m, f, x, w: f.conv_transpose2d(x, w, stride=2), [X2D, WT2D]),
    (
        "sdpa",
        lambda m, f, q, k, v: f.scaled_dot_product_attention(q, k, v, is_causal=True),
        [Q, Q, Q],
    ),
    ("softmax", lambda m, f, x: f.softmax(x, dim=-1), [X2]),
    ("log_softmax", lambda m, f, x: f.log_softmax(x, dim=-1), [X2]),
    ("cumsum", lambda m, f, x: m.cumsum(x, 1), [X2]),
    ("sum", lambda m, f, x: x.sum(1), [X2]),
    ("prod", lambda m, f, x: m.prod(x, 1), [X2]),
    ("logsumexp", lambda m, f, x: m.logsumexp(x, 1), [X2]),
    ("norm", lambda m, f, x: m.norm(x), [X2]),
    ("exp", lambda m, f, x: m.exp(x), [X2]),
    ("log", lambda m, f, x: m.log(x.abs()), [X2]),
    ("pow", lambda m, f, x: x**2, [X2]),
    ("layer_norm", lambda m, f, x, w, b: f.layer_norm(x, (6,), w, b), [X2, _arr(6), _arr(6)]),
    ("group_norm", lambda m, f, x: f.group_norm(x, 1), [X2D]),
    ("rms_norm", lambda m, f, x: f.rms_norm(x, (6,)), [X2]),
    ("cross_entropy", lambda m, f, x, t: f.cross_entropy(x, t), [X2, LABELS]),
    ("cross_entropy_probs", lambda m, f, x, t: f.cross_entropy(x, t), [X2, PROBS]),
    ("nll_loss", lambda m, f, x, t: f.nll_loss(f.log_softmax(x, 1), t), [X2, LABELS]),
    ("mse_loss", lambda m, f, x, y: f.mse_loss(x, y), [X2, PROBS]),
    ("l1_loss", lambda m, f, x, y: f.l1_loss(x, y), [X2, PROBS]),
    ("smooth_l1_loss", lambda m, f, x, y: f.smooth_l1_loss(x, y), [X2, PROBS]),
    ("huber_loss", lambda m, f, x, y: f.huber_loss(x, y), [X2, PROBS]),
    ("bce", lambda m, f, x, y: f.binary_cross_entropy(m.sigmoid(x), y), [X2, PROBS]),
    ("bce_logits", lambda m, f, x, y: f.binary_cross_entropy_with_logits(x, y), [X2, PROBS]),
    ("kl_div", lambda m, f, x, y: f.kl_div(x, y, reduction="batchmean"), [X2, PROBS]),
    ("mv", lambda m, f, a, v: m.mv(a, v), [X2, _arr(6)]),
    ("einsum", lambda m, f, a, b: m.einsum("ij,kj->ik", a, b), [X2, W2]),
    ("gelu", lambda m, f, x: f.gelu(x), [X2]),
]


def _run_both(fn, arrays, in_dtype):
    e_in, t_in = [], []
    for a in arrays:
        e, t = ember.tensor(a), torch.tensor(a)
        if a.dtype.kind == "f":
            e, t = e.to(getattr(ember, in_dtype)), t.to(getattr(torch, in_dtype))
        e_in.append(e)
        t_in.append(t)
    with ember.autocast("cpu", dtype=ember.bfloat16):
        e_out = fn(ember, F, *e_in)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t_out = fn(torch, TF, *t_in)
    return e_out, t_out


@pytest.mark.parametrize("in_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name,fn,arrays", OPS, ids=[o[0] for o in OPS])
def test_output_dtype_matches_torch(name, fn, arrays, in_dtype):
    e_out, t_out = _run_both(fn, arrays, in_dtype)
    assert _name(e_out.dtype) == _name(t_out.dtype)
    tol = 2e-2 if _name(t_out.dtype) == "bfloat16" or in_dtype == "bfloat16" else 1e-4
    np.testing.assert_allclose(
        e_out.float().detach().numpy(), t_out.float().detach().numpy(), rtol=tol, atol=tol
    )


def test_gradients_reach_float32_params_in_float32():
    x, w, b = _arr(8, 6), _arr(5, 6), _arr(5)
    ew, eb = ember.tensor(w, requires_grad=True), ember.tensor(b, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    with ember.autocast("cpu"):
        out = F.linear(ember.tensor(x), ew, eb)
        assert out.dtype is ember.bfloat16
        F.cross_entropy(out, ember.tensor(LABELS.repeat(2))).backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        TF.cross_entropy(
            TF.linear(torch.tensor(x), tw, tb), torch.tensor(LABELS.repeat(2))
        ).backward()
    assert ew.grad.dtype is ember.float32 and eb.grad.dtype is ember.float32
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=3e-2, atol=3e-2)
    np.testing.assert_allclose(eb.grad.numpy(), tb.grad.numpy(), rtol=3e-2, atol=3e-2)


def test_mlp_training_with_grad_scaler_matches_torch():
    sizes = [(16, 12), (16,), (4, 16), (4,)]
    init = [_arr(*s) * 0.3 for s in sizes]
    x, y = _arr(32, 12), RNG.integers(0, 4, 32)
    ep = [ember.tensor(a, requires_grad=True) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    eopt = ember.optim.SGD(ep, lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tp, lr=0.1, momentum=0.9)
    escaler = ember.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)
    tscaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)

    def step(lib, f, params, opt, scaler, xb, yb):
        opt.zero_grad()
        with lib.autocast("cpu", dtype=lib.bfloat16):
            h = f.relu(f.linear(xb, params[0], params[1]))
            loss = f.cross_entropy(f.linear(h, params[2], params[3]), yb)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return float(loss.detach())

    for _ in range(4):
        le = step(ember, F, ep, eopt, escaler, ember.tensor(x), ember.tensor(y))
        lt = step(torch, TF, tp, topt, tscaler, torch.tensor(x), torch.tensor(y))
        assert abs(le - lt) < 2e-2
        assert escaler.get_scale() == tscaler.get_scale()
    for e, t in zip(ep, tp):
        assert e.dtype is ember.float32
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=3e-2, atol=3e-2)


def test_nested_disabled_region_and_decorator():
    x, w = ember.tensor(X2), ember.tensor(W2)
    with ember.autocast("cpu"):
        assert amp.is_autocast_enabled("cpu")
        with ember.autocast("cpu", enabled=False):
            assert not amp.is_autocast_enabled("cpu")
            assert F.linear(x, w).dtype is ember.float32
        assert F.linear(x, w).dtype is ember.bfloat16
    assert not amp.is_autocast_enabled("cpu")
    assert F.linear(x, w).dtype is ember.float32

    @ember.autocast("cpu")
    def fwd(a, b):
        return a @ b

    assert fwd(x, w.t()).dtype is ember.bfloat16


def test_other_device_type_regions_leave_cpu_tensors_alone():
    x, w = ember.tensor(X2), ember.tensor(W2)
    with ember.autocast("cuda", dtype=ember.float16):
        assert F.linear(x, w).dtype is ember.float32
        with ember.autocast("cpu"):
            assert F.linear(x, w).dtype is ember.bfloat16
            with ember.autocast("cuda", enabled=False):  # the CPU region is still active
                assert F.linear(x, w).dtype is ember.bfloat16
        assert amp.is_autocast_enabled("cuda") and not amp.is_autocast_enabled("cpu")


def test_float64_and_integer_inputs_are_not_cast():
    x64 = ember.tensor(X2.astype(np.float64))
    with ember.autocast("cpu"):
        assert (x64 @ x64.t()).dtype is ember.float64
        assert ember.cumsum(ember.tensor(LABELS), 0).dtype is ember.int64


def test_autocast_arguments_are_validated():
    with pytest.raises(ValueError, match="device_type must be 'cuda' or 'cpu', got 'tpu'"):
        ember.autocast("tpu")
    with pytest.raises(ValueError, match="float16 or bfloat16, got .*float32"):
        ember.autocast("cpu", dtype=ember.float32)
    assert amp.get_autocast_dtype("cuda") is ember.float16
    assert amp.get_autocast_dtype("cpu") is ember.bfloat16


_ATEN = {
    "cross_entropy": "cross_entropy_loss",
    "softmax": "softmax.int",
    "log_softmax": "log_softmax.int",
    "norm": "norm.Scalar",
    "pow": "pow.Tensor_Scalar",
    "conv_transpose2d": "conv_transpose2d.input",
    # ember runs a recurrent layer-direction as one op (ops/recurrent.py); torch autocasts
    # the kernels it runs there: oneDNN's LSTM layer on the CPU, the cells on CUDA
    "lstm_layer": {"cpu": "mkldnn_rnn_layer", "cuda": "lstm_cell"},
    "gru_layer": "gru_cell",
    "rnn_layer": "rnn_tanh_cell",
}


def _aten(op, device_type):
    name = _ATEN.get(op, op)
    return name[device_type] if isinstance(name, dict) else name


@pytest.mark.parametrize("device_type,key", [("cuda", "AutocastCUDA"), ("cpu", "AutocastCPU")])
def test_policy_tables_follow_torch_registrations(device_type, key):
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    table = amp._POLICY[device_type]
    for op in table:
        if (device_type, op) in (("cuda", "cross_entropy"), ("cpu", "einsum")):
            continue  # torch gets there through ops that autocast: log_softmax+nll_loss, bmm
        assert has("aten::" + _aten(op, device_type), key), op
    wired = {op for ops in amp._POLICY.values() for op in ops}
    for op in wired - set(table):
        assert not has("aten::" + _aten(op, device_type), key), op


def _sgd_with_grads(*grads):
    params = [ember.zeros(len(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = ember.tensor(np.asarray(g, dtype=np.float32))
    return params, ember.optim.SGD(params, lr=1.0)


def _torch_sgd_with_grads(*grads):
    params = [torch.zeros(len(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(np.asarray(g, dtype=np.float32))
    return params, torch.optim.SGD(params, lr=1.0)


def test_grad_scaler_scale_sequence_matches_torch():
    kw = dict(init_scale=8.0, growth_factor=2.0, backoff_factor=0.25, growth_interval=2)
    es, ts = ember.amp.GradScaler("cpu", **kw), torch.amp.GradScaler("cpu", **kw)
    pattern = [1.0, 1.0, 1.0, np.inf, 1.0, np.nan, 1.0, 1.0, 1.0]
    for v in pattern:
        grads = ([8.0, v], [16.0])
        ep, eopt = _sgd_with_grads(*grads)
        tp, topt = _torch_sgd_with_grads(*grads)
        ts.scale(torch.tensor(1.0))  # torch creates its scale tensor lazily, in scale()
        assert (es.step(eopt) is None) == (ts.step(topt) is None)
        assert es.step_was_skipped(eopt) == (not np.isfinite(v))
        for e, t in zip(ep, tp):
            np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy())
            np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy())
        es.update()
        ts.update()
        assert es.get_scale() == ts.get_scale()
        assert es.step_was_skipped(eopt) == (not np.isfinite(v))
    assert es.state_dict() == ts.state_dict()


def test_grad_scaler_scale_and_unscale_match_torch():
    es, ts = (
        ember.amp.GradScaler("cpu", init_scale=4.0),
        torch.amp.GradScaler("cpu", init_scale=4.0),
    )
    ep, eopt = _sgd_with_grads([2.0, -6.0])
    tp, topt = _torch_sgd_with_grads([2.0, -6.0])
    assert float(es.scale(ember.tensor(3.0))) == float(ts.scale(torch.tensor(3.0)))
    scaled = es.scale([ember.tensor(1.0), (ember.tensor(2.0),)])
    assert float(scaled[0]) == 4.0 and float(scaled[1][0]) == 8.0
    es.unscale_(eopt)
    ts.unscale_(topt)
    np.testing.assert_allclose(ep[0].grad.numpy(), tp[0].grad.numpy())
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
        es.unscale_(eopt)
    es.step(eopt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        es.step(eopt)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) is being called after step"):
        es.unscale_(eopt)
    es.update()
    with pytest.raises(RuntimeError, match="No inf checks were recorded"):
        es.update()
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        es.step(eopt, closure=lambda: 0.0)


def test_grad_scaler_state_dict_round_trip_and_disabled():
    a = ember.amp.GradScaler("cpu", init_scale=32.0, growth_interval=3)
    ep, eopt = _sgd_with_grads([1.0])
    a.step(eopt)
    a.update()
    b = ember.amp.GradScaler("cpu")
    b.load_state_dict(a.state_dict())
    assert (
        b.state_dict()
        == a.state_dict()
        == {
            "scale": 32.0,
            "growth_factor": 2.0,
            "backoff_factor": 0.5,
            "growth_interval": 3,
            "_growth_tracker": 1,
        }
    )
    off = ember.amp.GradScaler("cpu", enabled=False)
    loss = ember.tensor(2.0)
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {}
    with pytest.raises(RuntimeError, match="state dict is empty"):
        a.load_state_dict({})
    with pytest.raises(ValueError, match="growth_factor must be > 1"):
        ember.amp.GradScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor must be in \\(0, 1\\)"):
        ember.amp.GradScaler(backoff_factor=1.5)


def test_grad_scaler_rejects_fp16_gradients():
    p = ember.zeros(2, dtype=ember.float16, requires_grad=True)
    p.grad = ember.ones(2, dtype=ember.float16)
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        ember.amp.GradScaler("cpu").unscale_(ember.optim.SGD([p], lr=1.0))
