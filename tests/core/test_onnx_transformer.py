"""ONNX export of nn.TransformerEncoder and nn.Transformer: onnx.checker passes and
onnxruntime computes what ember computes (float32, 1e-5), at batch sizes and sequence
lengths other than the traced ones (dynamic_axes), with causal and key padding masks."""

import io
import warnings

import numpy as np
import pytest

import ember
import ember.nn as nn

onnx = pytest.importorskip("onnx", reason="ember.onnx tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ember.onnx tests need onnxruntime")


def _roundtrip(model, args, dynamic_axes, other_args):
    """Export (inputs in0, in1, ...; dynamic_axes by input position), check the graph, and
    compare onnxruntime with ember on the traced and the other inputs."""
    model.eval()
    names = [f"in{i}" for i in range(len(args))]
    f = io.BytesIO()
    axes = {names[i]: dims for i, dims in dynamic_axes.items()}
    ember.onnx.export(model, args, f, input_names=names, dynamic_axes=axes)
    onnx.checker.check_model(onnx.load_from_string(f.getvalue()), full_check=True)
    session = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for a in (args, *other_args):
        got = session.run(None, {n: t.numpy() for n, t in zip(names, a)})[0]
        with ember.no_grad():
            want = model(*a)
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def _encoder(batch_first=True, **kw):
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=batch_first, **kw)
    return nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16), enable_nested_tensor=False)


@pytest.mark.parametrize(
    "batch_first,kw",
    [(True, {}), (False, {"norm_first": True, "activation": "gelu"})],
    ids=["post-norm", "pre-norm-gelu-seq-first"],
)
def test_encoder_dynamic_batch_and_length(batch_first, kw):
    ember.manual_seed(0)
    model = _encoder(batch_first, **kw)
    batch_dim, seq_dim = (0, 1) if batch_first else (1, 0)

    def x(batch, length):
        return ember.randn(batch, length, 16) if batch_first else ember.randn(length, batch, 16)

    axes = {0: {batch_dim: "batch", seq_dim: "length"}}
    _roundtrip(model, (x(3, 3),), axes, [(x(2, 6),), (x(5, 1),)])


class _CausalEncoder(nn.Module):
    def __init__(self, is_causal):
        super().__init__()
        self.encoder = _encoder()
        self.is_causal = is_causal

    def forward(self, x):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.encoder(x, mask=mask, is_causal=self.is_causal)


@pytest.mark.parametrize("is_causal", [True, False])
def test_encoder_causal_mask_follows_the_length(is_causal):
    ember.manual_seed(1)
    axes = {0: {0: "batch", 1: "length"}}
    other = [(ember.randn(3, 7, 16),)]
    with warnings.catch_warnings():
        # without is_causal, the encoder asks (bool()) whether the mask is causal; export
        # warns that the answer is traced as taken, which holds at every length here
        warnings.simplefilter("ignore", ember.onnx.TracerWarning)
        _roundtrip(_CausalEncoder(is_causal), (ember.randn(2, 5, 16),), axes, other)


class _PaddedEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = _encoder()

    def forward(self, x, padding):
        return self.encoder(x, src_key_padding_mask=padding)


def test_encoder_key_padding_mask_input():
    ember.manual_seed(2)

    def inputs(lengths, length):
        padding = ember.tensor([[t >= n for t in range(length)] for n in lengths])
        return ember.randn(len(lengths), length, 16), padding

    axes = {0: {0: "batch", 1: "length"}, 1: {0: "batch", 1: "length"}}
    _roundtrip(_PaddedEncoder(), inputs([5, 3], 5), axes, [inputs([7, 6, 2], 7)])


def test_encoder_decoder_transformer():
    ember.manual_seed(3)
    model = nn.Transformer(16, 4, 2, 2, 32, dropout=0.1, batch_first=True)
    axes = {0: {0: "batch", 1: "source"}, 1: {0: "batch", 1: "target"}}
    other = [(ember.randn(3, 7, 16), ember.randn(3, 2, 16))]
    _roundtrip(model, (ember.randn(2, 5, 16), ember.randn(2, 4, 16)), axes, other)
