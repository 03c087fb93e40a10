"""ember.onnx.export: the exported graph passes onnx.checker and onnxruntime computes what
ember computes (float32, 1e-5), also at sizes other than the traced ones (dynamic_axes)."""

import importlib.util
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.autograd import Function

onnx = pytest.importorskip("onnx", reason="ember.onnx tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ember.onnx tests need onnxruntime")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _export(model, args, names, dynamic_axes=None, **kwargs):
    f = io.BytesIO()
    ember.onnx.export(
        model, args, f, input_names=names, dynamic_axes=dynamic_axes, **kwargs
    )  # fmt: skip
    proto = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto, ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])


def _compare(session, model, *args, names):
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    got = session.run(None, feeds)
    with ember.no_grad():
        want = model(*args)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)


def _roundtrip(model, args, alt_args=None, axes=None, **kwargs):
    args = args if isinstance(args, tuple) else (args,)
    names = [f"in{i}" for i in range(len(args))]
    axes = {names[i]: dims for i, dims in (axes or {}).items()}
    model.eval()
    proto, session = _export(model, args, names, axes, **kwargs)
    _compare(session, model, *args, names=names)
    if alt_args is not None:
        alt_args = alt_args if isinstance(alt_args, tuple) else (alt_args,)
        _compare(session, model, *alt_args, names=names)
    return proto


def _train_a_little(model, x, y, steps=3):
    opt = ember.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def test_mlp_dynamic_batch_to_a_path(tmp_path):
    ember.manual_seed(0)
    model = _example("train_digits").make_model("mlp")
    _train_a_little(model, ember.randn(16, 1, 8, 8), ember.randint(0, 10, (16,)))
    model.train()  # export runs it in eval mode and leaves its mode as it was
    path = tmp_path / "mlp.onnx"
    x = ember.randn(4, 1, 8, 8)
    ember.onnx.export(model, (x,), str(path), input_names=["x"], dynamic_axes={"x": {0: "n"}})
    assert model.training and all(m.training for m in model.modules())
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert {i.name for i in proto.graph.initializer} >= {"1.weight", "2.running_mean", "6.bias"}
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "n"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    for batch in (x, ember.randn(11, 1, 8, 8)):
        _compare(session, model, batch, names=["x"])


def test_digits_cnn_file_object():
    ember.manual_seed(1)
    model = _example("train_digits").make_model("cnn")
    _train_a_little(model, ember.randn(8, 1, 8, 8), ember.randint(0, 10, (8,)))
    proto = _roundtrip(model, ember.randn(4, 1, 8, 8), ember.randn(9, 1, 8, 8), {0: {0: "b"}})
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "BatchNormalization", "MaxPool", "Gemm"} <= ops and "Dropout" not in ops


def test_char_gpt_dynamic_batch_and_length():
    ember.manual_seed(2)
    gpt = _example("char_gpt").GPT(vocab_size=23, block_size=16, d_model=32, n_head=4, n_layer=2)
    idx = ember.randint(0, 23, (2, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every size that follows batch or length stays symbolic
        _roundtrip(gpt, idx, ember.randint(0, 23, (5, 7)), {0: {0: "batch", 1: "time"}})


class EncoderBlock(nn.Module):
    def __init__(self, d=32, heads=4):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * d, d)
        )

    def forward(self, x, padding):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, key_padding_mask=padding)
        x = x + a
        return x + self.ff(self.ln2(x))


def _padding(batch, length, pad):
    mask = ember.zeros(batch, length, dtype=ember.bool)
    mask[:, length - pad :] = True
    return mask


@pytest.mark.parametrize("opset", [17, 16])
def test_transformer_encoder_block_other_batch(opset):
    ember.manual_seed(3)
    block = EncoderBlock()
    args = (ember.randn(3, 6, 32), _padding(3, 6, 1))
    alt = (ember.randn(5, 6, 32), _padding(5, 6, 2))
    proto = _roundtrip(block, args, alt, {0: {0: "b"}, 1: {0: "b"}}, opset_version=opset)
    ops = {n.op_type for n in proto.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert {"MatMul", "Softmax", "Where"} <= ops


class _Lambda(nn.Module):
    def __init__(self, fn, *modules):
        super().__init__()
        self.fn, self.layers = fn, nn.ModuleList(modules)

    def forward(self, *xs):
        return self.fn(self.layers, *xs)


def _sdpa_masks(m, x):
    q = x.view(x.shape[0], 6, 2, 4).transpose(1, 2)
    causal = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    keep = ember.ones(6, 6, dtype=ember.bool).tril()
    bias = ember.zeros(6, 6).masked_fill(~keep, float("-inf"))
    return (
        causal
        + F.scaled_dot_product_attention(q, q, q, attn_mask=keep) * 2
        + (F.scaled_dot_product_attention(q, q, q, attn_mask=bias))
    )


CASES = {
    "unary_math": (
        lambda m, x: (
            x.tanh().asin()
            + (x.tanh() * 0.5).acos()
            + x.atan()
            + x.sinh()
            + x.cosh()
            + x.asinh()
            + (x.abs() + 1).acosh()
            + (x.tanh() * 0.9).atanh()
            + (x * 0.3).tan()
            + x.erf()
            + x.erfc()
            + x.exp2()
            + x.sign()
        ),
        (3, 5),
    ),
    "interpolate_and_adaptive_pool": (
        lambda m, x: (
            F.interpolate(x, size=(7, 5), mode="bilinear")
            + F.interpolate(x, size=(7, 5), mode="nearest")
            + F.adaptive_avg_pool2d(F.interpolate(x, scale_factor=2, mode="bicubic"), (7, 5))
        ),
        (2, 3, 6, 4),
    ),
    "activations": (
        lambda m, x: (
            F.leaky_relu(x, 0.1)
            + F.elu(x)
            + F.softplus(x, beta=2)
            + F.silu(x)
            + x.sigmoid()
            + x.tanh()
            + F.gelu(x, approximate="tanh")
            + F.relu6(x)
            + F.hardswish(x)
        ),
        (4, 8),
    ),
    "softmax_family": (lambda m, x: F.log_softmax(x, dim=1) + F.softmax(x, dim=-1), (4, 8)),
    "arithmetic": (
        lambda m, x: (
            (x * 2 - 1) / (x.abs() + 1)
            + x.pow(2).sqrt().exp().log()
            - x**3
            + 3.0 / (x.abs() + 1)
            - ember.maximum(x, x.flip(1))
            + x.clamp(-0.5, 0.5)
            + (x * x + 1).rsqrt()
            + ember.minimum(x, 0.1 - x)
            + (-x).expm1()
            + x.abs().log1p()
        ),
        (4, 8),
    ),
    "compare_where": (
        lambda m, x: (
            ember.where((x > 0) & (x < 0.5), x, -x).masked_fill(x == x.amax(), 7.0)
            + (x >= 0.2).float()
            - (x.floor() + x.ceil() + x.round())
            + x.sign()
            + ((x // 0.3) + x % 0.3)
        ),
        (4, 8),
    ),
    "reductions": (
        lambda m, x: ember.stack(
            [
                x.sum(1),
                x.mean(1),
                x.amax(1),
                x.amin(dim=1),
                x.max(1).values,
                x.min(1)[0],
                x.argmax(1).float(),
                x.cumsum(1)[:, -1],
                x.var(1),
                x.logsumexp(1),
                x.norm(dim=1),
                x.norm(p=1, dim=1),
                x.norm(p=3, dim=1),
                x.topk(2, dim=1).values[:, 1],
                x.sort(1, descending=True).indices[:, 0].float(),
                x.argsort(1)[:, -1].float(),
            ],
            dim=1,
        ),  # fmt: skip
        (4, 8),
    ),
    "movement": (
        lambda m, x: ember.cat(
            [
                x.reshape(x.shape[0], 2, 4).permute(0, 2, 1).flatten(1),
                *x.chunk(2, dim=1),
                x.unsqueeze(1).squeeze(1)[:, 1:7:2],
                x[..., None][:, :3, 0],
                x.split([3, 5], 1)[1],
                x[:, 2:3].expand(-1, 4),
                x.gather(1, ember.tensor([[0, 3]]).expand(x.shape[0], 2)),
                x.t().t()[:, ember.tensor([1, 0, 5])],
                x.view(-1, 8).repeat(1, 2),
            ],
            dim=1,
        ),  # fmt: skip
        (4, 8),
    ),
    "creation_triangles": (
        lambda m, x: (
            x @ ember.ones(8, 8).triu(1)
            + x @ ember.full((8, 8), 0.5).tril()
            + ember.arange(8).float()
            + ember.zeros_like(x)
            + ember.ones(x.shape[0], 8)
        ),
        (4, 8),
    ),
    "linalg": (
        lambda m, x: (
            ember.addmm(m[0].bias, x, m[0].weight.t())
            + m[0](x)
            + x.matmul(ember.eye(8))
            + ember.einsum("bi,ij->bj", x, m[0].weight.t())
        ),
        (4, 8),
        nn.Linear(8, 8),
    ),
    "conv1d_pools": (
        lambda m, x: ember.cat(
            [
                F.max_pool1d(m[0](x), 2, padding=1),
                F.avg_pool1d(m[0](x), 3, 2, padding=1),
                F.adaptive_avg_pool1d(m[1](m[0](x)), 3),
            ],
            dim=2,
        ),  # fmt: skip
        (2, 3, 10),
        nn.Conv1d(3, 4, 3, padding=1),
        nn.ConvTranspose1d(4, 4, 3, stride=2),
    ),
    "conv2d_pools_norms": (
        lambda m, x: (
            m[3](
                F.relu(
                    m[2](
                        F.avg_pool2d(
                            m[1](m[0](x)), 3, 2, 1, ceil_mode=True, count_include_pad=False
                        )
                    )
                )
            ).flatten(1)
            + F.adaptive_avg_pool2d(m[0](x), (3, 2)).sum((2, 3)).mean(1, keepdim=True)
        ),
        (2, 3, 9, 9),
        nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3),
        nn.GroupNorm(2, 6),
        nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1),
        nn.InstanceNorm2d(4) if hasattr(nn, "InstanceNorm2d") else nn.BatchNorm2d(4),
    ),
    "attention_masks": (_sdpa_masks, (3, 48)),
    "embedding": (
        lambda m, idx: m[0](idx).sum(1) + m[0](idx[:, 0]) * (idx[:, :1] > 3).float(),
        "ints",
        nn.Embedding(10, 5),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_coverage_at_another_batch(case):
    fn, shape, *modules = CASES[case]
    ember.manual_seed(4)
    model = _Lambda(fn, *modules)
    if shape == "ints":
        args, alt = ember.randint(0, 10, (3, 4)), ember.randint(0, 10, (6, 4))
    else:
        args, alt = ember.randn(*shape), ember.randn(shape[0] + 3, *shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _roundtrip(model, args, alt, {0: {0: "batch"}})


class _Inner(nn.Module):
    def forward(self, x):
        return x.unfold(1, 2, 1)


class _Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), _Inner())

    def forward(self, x):
        return self.body(x)


def test_unsupported_op_names_the_op_and_the_module():
    with pytest.raises(ember.onnx.UnsupportedOperatorError, match=r"'Unfold'.*body\.1 \(_Inner\)"):
        ember.onnx.export(_Outer(), ember.randn(2, 4), io.BytesIO())
    from ember.core import autograd

    assert autograd._tracer is None  # the hook is off again after a failed export


def test_shape_baked_in_warns():
    # a reshape with one size that follows the batch becomes -1; a new tensor cannot
    model = _Lambda(lambda m, x: x.reshape(-1, 3) + ember.ones(x.shape[0] * 2, 3), nn.Identity())
    with pytest.warns(UserWarning, match="only works at the traced size"):
        ember.onnx.export(
            model, ember.randn(4, 6), io.BytesIO(), input_names=["x"], dynamic_axes={"x": [0]}
        )


def test_control_flow_on_a_dynamic_size_is_an_error():
    model = _Lambda(lambda m, x: x.relu() if x.shape[0] > 3 else x.sigmoid(), nn.Identity())
    with pytest.raises(ember.onnx.OnnxExporterError, match="control flow"):
        ember.onnx.export(
            model, ember.randn(4, 6), io.BytesIO(), input_names=["x"], dynamic_axes={"x": [0]}
        )
    # without dynamic axes the branch taken is traced
    _roundtrip(model, ember.randn(4, 6))


class _Scale(Function):
    @staticmethod
    def forward(ctx, x, factor):
        return x * factor

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor


@ember.onnx.register_op(_Scale)
def _scale_to_onnx(g, node):
    x = node["x"]
    return g.op("Mul", g.name(x), g.scalar(node["factor"], x.dtype))


def test_an_op_registers_its_own_translation():
    model = _Lambda(lambda m, x: _Scale.apply(m[0](x), factor=3.0), nn.Linear(3, 2))
    _roundtrip(model, ember.randn(2, 3), ember.randn(5, 3), {0: [0]})


def test_export_params_false_and_is_in_onnx_export():
    seen = []

    def fn(m, x):
        seen.append(ember.onnx.is_in_onnx_export())
        return m[0](x)

    model = _Lambda(fn, nn.Linear(3, 2))
    f = io.BytesIO()
    ember.onnx.export(model, ember.randn(2, 3), f, export_params=False, output_names=["y"])
    proto = onnx.load_from_string(f.getvalue())
    assert not proto.graph.initializer
    assert [i.name for i in proto.graph.input] == ["input_0", "layers.0.weight", "layers.0.bias"]
    assert [o.name for o in proto.graph.output] == ["y"]
    assert seen == [True] and not ember.onnx.is_in_onnx_export()


def test_bad_arguments():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="neither inputs nor outputs"):
        ember.onnx.export(model, ember.randn(2, 3), io.BytesIO(), dynamic_axes={"z": [0]})
    with pytest.raises(ValueError, match="input_names"):
        ember.onnx.export(model, ember.randn(2, 3), io.BytesIO(), input_names=["a", "b"])


def test_missing_onnx_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"ember\[onnx\]"):
        ember.onnx.export(nn.Linear(3, 2), ember.randn(2, 3), io.BytesIO())


def test_index_computed_from_the_input_stays_in_the_graph():
    # index_select hands over a reshaped array of the index tensor: still traced, not a constant
    def fn(m, x):
        idx = x[:, 0].abs().argsort()
        return x.index_select(0, idx) + x[idx]

    args = ember.tensor([[0.5, 1.0], [-0.1, 2.0], [0.3, 3.0]])
    alt = ember.tensor([[0.2, 3.0], [-0.9, 1.0], [0.1, 2.0]])
    _roundtrip(_Lambda(fn, nn.Identity()), args, alt)
    fn2 = lambda m, x: x.index_select(0, x[:, 1].long() - 1)  # noqa: E731
    _roundtrip(_Lambda(fn2, nn.Identity()), args, alt)


def test_python_values_of_traced_tensors_warn():
    # data-dependent control flow is traced as taken, with a warning where it happened
    def fn(m, x):
        return m[0](x) * 2 if x.sum() > 0 else m[0](x)

    model = _Lambda(fn, nn.Linear(3, 3))
    with pytest.warns(ember.onnx.TracerWarning, match=r"bool\(\).*<root> \(_Lambda\)"):
        ember.onnx.export(model, ember.ones(2, 3), io.BytesIO())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant's value is no warning
        ember.onnx.export(_Lambda(lambda m, x: x * ember.tensor(2.0).item(), nn.Identity()),
                          ember.ones(2, 3), io.BytesIO())  # fmt: skip


@pytest.mark.parametrize("opset", [13, 18])
def test_reductions_at_other_opsets_without_folding(opset):
    fn, shape = CASES["reductions"]
    model = _Lambda(fn, nn.Identity())
    proto = _roundtrip(
        model, ember.randn(*shape), ember.randn(7, 8), {0: [0]}, opset_version=opset,
        do_constant_folding=False,
    )  # fmt: skip
    assert proto.opset_import[0].version == opset


def test_indices_that_follow_a_dynamic_length():
    def fn(m, x):
        t = x.shape[1]
        return x[:, : t - 1] * x[:, 1:t] + x[:, t - 1 : t] + x[:, t - 2, None] + x[:, :5].sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _roundtrip(_Lambda(fn, nn.Identity()), ember.randn(2, 7), ember.randn(3, 11), {0: [0, 1]})
