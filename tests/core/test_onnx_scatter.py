"""ONNX export of the ops that write or move elements by position: index assignment
(x[key] = v), boolean-mask indexing, scatter, index_add/copy/fill, roll, repeat_interleave
and cumprod. onnxruntime must compute what ember computes, also at another batch size."""

import io
import warnings

import numpy as np
import pytest

import ember
import ember.nn as nn

onnx = pytest.importorskip("onnx", reason="ember.onnx tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ember.onnx tests need onnxruntime")


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _roundtrip(fn, args, other_args=(), dynamic=True):
    """Export fn (every input's dim 0 dynamic), check the graph and compare onnxruntime with
    ember on the traced and the other inputs; warnings are errors."""
    model = _Lambda(fn)
    names = [f"in{i}" for i in range(len(args))]
    axes = {n: {0: "batch"} for n in names} if dynamic else None
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ember.onnx.export(model, args, f, input_names=names, dynamic_axes=axes)
    onnx.checker.check_model(onnx.load_from_string(f.getvalue()), full_check=True)
    session = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for a in (args, *other_args):
        got = session.run(None, {n: t.numpy() for n, t in zip(names, a)})[0]
        with ember.no_grad():
            want = model(*a)
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


def _x(batch):
    return ember.randn(batch, 4, 5)


def _write_slices(x):
    y = x * 2
    y[0] = 5.0
    y[:, 1:3, -1] = x[:, 0:2, 0]
    return y


def _write_index_tensor(x, index):
    y = x.clone()
    y[:, index] = 0.0
    return y


def _write_mask(x):
    y = x.clone()
    y[y < 0] = 0.0
    y[x[:, 0, 0] > 0] = x[0, 0, 0]
    return y


def test_index_assignment():
    ember.manual_seed(0)
    _roundtrip(_write_slices, (_x(3),), [(_x(6),)])
    index = ember.tensor([0, 2])
    _roundtrip(_write_index_tensor, (_x(3), index), [(_x(5), ember.tensor([3, 1, 1]))])
    _roundtrip(_write_mask, (_x(3),), [(_x(6),)])


def test_index_put_accumulates_repeated_indices():
    ember.manual_seed(1)
    fn = lambda x: x.index_put((ember.tensor([0, 0, 1]),), ember.ones(3, 4, 5), accumulate=True)  # noqa: E731
    _roundtrip(fn, (_x(3),), [(_x(6),)])


def test_write_into_a_view_warns():
    def fn(x):
        y = x.clone()
        y[0][1] = 3.0  # writes through the view y[0]
        return y

    with pytest.warns(ember.onnx.TracerWarning, match="view"):
        ember.onnx.export(_Lambda(fn), (_x(2),), io.BytesIO())


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda x: x[x > 0], id="all-dims"),
        pytest.param(lambda x: x[x[:, 0, 0] > -10] * 2, id="rows"),
        pytest.param(lambda x: x[:, x[0, :, 0] > -10], id="after-a-slice"),
    ],
)
def test_boolean_mask_indexing(fn):
    ember.manual_seed(2)
    _roundtrip(fn, (_x(3),), [(_x(6),)])


def test_scatter():
    ember.manual_seed(3)

    def inputs(batch):
        return _x(batch), ember.randint(0, 4, (batch, 2, 5))

    _roundtrip(lambda x, i: x.scatter(1, i, x[:, :2] * 10), inputs(3), [inputs(5)])
    _roundtrip(lambda x, i: x.scatter(1, i, 7.0), inputs(3), [inputs(5)])
    fn = lambda x, i: x.scatter(1, i, ember.full((3, 3, 5), 2.0), reduce="multiply")  # noqa: E731
    _roundtrip(fn, inputs(3), dynamic=False)
    _roundtrip(lambda x, i: x.scatter_add(1, i, ember.ones(3, 2, 5)), inputs(3), dynamic=False)


def test_index_add_copy_fill():
    ember.manual_seed(4)
    add = lambda x: x.index_add(1, ember.tensor([0, 2, 0]), x[:, :3] * 3, alpha=2)  # noqa: E731
    _roundtrip(add, (_x(3),), [(_x(6),)])
    _roundtrip(lambda x: x.index_copy(2, ember.tensor([4, 1]), x[:, :, :2] * 3), (_x(3),))
    _roundtrip(lambda x: x.index_fill(1, ember.tensor([3]), -1.0), (_x(3),), [(_x(6),)])


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda x: x.roll(1, 0) + x.roll((-2, 3), (1, 2)), id="dims"),
        pytest.param(lambda x: x.roll(-7), id="flattened"),
    ],
)
def test_roll(fn):
    ember.manual_seed(5)
    _roundtrip(fn, (_x(3),), [(_x(6),)])


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda x: x.repeat_interleave(2, dim=1), id="int"),
        pytest.param(lambda x: x.repeat_interleave(3, dim=0), id="int-dynamic-dim"),
        pytest.param(lambda x: x.repeat_interleave(ember.tensor([1, 0, 2, 3]), dim=1), id="counts"),
        pytest.param(lambda x: x.repeat_interleave(2), id="flattened"),
    ],
)
def test_repeat_interleave(fn):
    ember.manual_seed(6)
    _roundtrip(fn, (_x(3),), [(_x(6),)])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumprod(dim):
    ember.manual_seed(7)
    _roundtrip(lambda x: x.cumprod(dim), (_x(3),), [(_x(6),)])
    _roundtrip(lambda x: x.cumprod(dim, dtype=ember.float64), (_x(3),))


def test_mask_count_is_a_symbolic_output_dim():
    # without dynamic axes both sizes come from the trace; the count still follows the data
    ember.manual_seed(8)
    f = io.BytesIO()
    ember.onnx.export(_Lambda(lambda x: x[x[:, 0] > 0] * 2), (ember.randn(3, 4),), f)
    dims = onnx.load_from_string(f.getvalue()).graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == 4
    session = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    x = np.array([[1, 2, 3, 4], [-1, 0, 0, 0], [5, 6, 7, 8]], np.float32)
    np.testing.assert_array_equal(session.run(None, {"input_0": x})[0], x[[0, 2]] * 2)
