import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as F
from tests.helpers import check_op


def _lib(x):
    return ember if isinstance(x, ember.Tensor) else torch


def _idx(x, values):
    """The same integer index on x's library."""
    return _lib(x).tensor(values)


GETITEM = [
    ("int", (4, 3), lambda x: x[1]),
    ("neg_int", (4, 3), lambda x: x[-1, -2]),
    ("slice", (5, 4), lambda x: x[1:4]),
    ("slice_step", (7, 4), lambda x: x[::2, 1::2]),
    ("slice_clamped", (3, 4), lambda x: x[1:10, -10:2]),
    ("empty_slice", (3, 4), lambda x: x[2:1]),
    ("none", (3, 4), lambda x: x[None, :, None]),
    ("ellipsis", (2, 3, 4), lambda x: x[..., 1]),
    ("ellipsis_mid", (2, 3, 4), lambda x: x[1, ..., None, 2:]),
    ("int_tensor", (5, 3), lambda x: x[_idx(x, [0, 2, 4])]),
    ("int_tensor_repeats", (4, 3), lambda x: x[_idx(x, [1, 1, 3, 1])]),
    ("int_tensor_2d", (5, 3), lambda x: x[_idx(x, [[0, 1], [1, 1]])]),
    ("list", (5, 3), lambda x: x[[4, 0, 4]]),
    ("neg_index_tensor", (5, 3), lambda x: x[_idx(x, [-1, 0, -1])]),
    ("two_arrays", (4, 5), lambda x: x[_idx(x, [0, 3, 3]), _idx(x, [1, 1, 4])]),
    ("array_and_slice", (4, 5), lambda x: x[_idx(x, [2, 0, 2]), 1:4]),
    ("slice_and_array", (4, 5), lambda x: x[:, _idx(x, [4, 4, 0])]),
    ("separated_arrays", (3, 4, 5), lambda x: x[_idx(x, [0, 2]), :, _idx(x, [1, 1])]),
    ("array_broadcast", (4, 5), lambda x: x[_idx(x, [[0], [3]]), _idx(x, [1, 2, 2])]),
    ("int_and_array", (3, 4, 5), lambda x: x[1, _idx(x, [0, 0, 3])]),
    ("zero_dim_index", (4, 3), lambda x: x[_idx(x, 2)]),
    ("empty_list", (4, 3), lambda x: x[[]]),
    ("bool_mask", (3, 4), lambda x: x[x > 0]),
    ("bool_mask_rows", (4, 3), lambda x: x[_idx(x, [True, False, True, True])]),
    ("bool_mask_then_slice", (4, 3), lambda x: x[_idx(x, [True, False, True, False]), 1:]),
    ("bool_and_int", (4, 3), lambda x: x[_idx(x, [False, True, True, False]), _idx(x, [2, 2])]),
    ("bool_scalar", (2, 3), lambda x: x[True]),
    ("transposed_input", (4, 3), lambda x: x.T[_idx(x, [2, 0, 2]), ::2]),
    ("size0", (0, 3), lambda x: x[:, 1]),
    ("chained", (4, 5), lambda x: x[1:][_idx(x, [0, 0])][:, 2]),
]


@pytest.mark.parametrize("name,shape,fn", GETITEM, ids=[c[0] for c in GETITEM])
def test_getitem(name, shape, fn):
    check_op([shape], fn)


def test_basic_index_is_view_advanced_is_copy():
    x = ember.zeros(3, 4)
    v = x[1, 1:3]
    assert v._version_counter is x._version_counter
    v.fill_(2.0)
    assert x.numpy()[1].tolist() == [0, 2, 2, 0] and x._version == 1
    a = x[[1]]
    a.fill_(5.0)
    assert x.numpy().max() == 2.0 and a._version_counter is not x._version_counter


def test_getitem_errors():
    x = ember.zeros(3, 4)
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[:, ::0]
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x[3]
    with pytest.raises(IndexError, match="index -5 is out of bounds for dimension 1 with size 4"):
        x[0, -5]
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 0 with size 3"):
        x[ember.tensor([0, 7])]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="must be long, int, byte or bool"):
        x[ember.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match="only integers, slices"):
        x["a"]
    with pytest.raises(IndexError, match="boolean index did not match"):
        x[ember.tensor([True, False])]


# -- setitem ------------------------------------------------------------------------------------


def _set(key_fn, value_fn=None, value=None):
    """``y = x * 1; y[key] = value`` on either library (value from the 2nd input or a scalar)."""

    def fn(x, *rest):
        y = x * 1
        y[key_fn(x)] = value_fn(rest[0]) if value_fn else value
        return y

    return fn


SETITEM = [
    ("scalar", [(3, 4)], _set(lambda x: (1, slice(1, 3)), value=5.0)),
    ("tensor", [(3, 4), (2,)], _set(lambda x: (0, slice(2, None)), lambda v: v)),
    ("broadcast", [(3, 4), (4,)], _set(lambda x: slice(0, 2), lambda v: v)),
    ("broadcast_col", [(3, 4), (3, 1)], _set(lambda x: (Ellipsis,), lambda v: v)),
    ("int_array", [(5, 2), (3, 2)], _set(lambda x: _idx(x, [4, 0, 2]), lambda v: v)),
    ("mask_scalar", [(3, 4)], _set(lambda x: x > 0.5, value=0.0)),
    (
        "mask_tensor",
        [(4, 3), (1, 3)],
        _set(lambda x: _idx(x, [True, False, True, False]), lambda v: v),
    ),
    ("none_key", [(3,), (3,)], _set(lambda x: None, lambda v: v.unsqueeze(0))),
    ("leading_ones", [(2, 3), (1, 1, 3)], _set(lambda x: 0, lambda v: v)),
    ("leading_ones_scalar", [(2, 3), (1,)], _set(lambda x: (1, 2), lambda v: v)),
    ("int_value_grad", [(3,), ()], _set(lambda x: 1, lambda v: v * 2)),
]


@pytest.mark.parametrize("name,shapes,fn", SETITEM, ids=[c[0] for c in SETITEM])
def test_setitem(name, shapes, fn):
    check_op(shapes, fn)


def _augmented(x, v):
    y = x * 1
    y[_idx(x, [2, 0])] += v  # getitem (a copy), add, then setitem
    return y


def test_augmented_assignment_with_advanced_index():
    check_op([(3, 2), (2, 2)], _augmented)


def test_augmented_assignment_without_grad():
    x = ember.zeros(2, 3)
    x[0, 1] += 2.0
    x[:, 2] -= 1.0
    x[[1, 1]] += 1.0  # like PyTorch: repeated indices are written once, not accumulated
    np.testing.assert_array_equal(x.numpy(), [[0, 2, -1], [1, 1, 0]])


def _through_view(write):
    def fn(x, v):
        y = x * 2
        write(y, v)
        return y * x

    return fn


VIEW_WRITES = [
    ("setitem_of_view", lambda y, v: y[0].__setitem__(1, v[1])),
    ("augmented_basic", lambda y, v: y[:, 0].__iadd__(v)),
    ("transposed_view", lambda y, v: y.T.__setitem__(1, v)),
    ("inplace_op_on_view", lambda y, v: y[1].mul_(v[0])),
    ("copy_into_view", lambda y, v: y.narrow(1, 1, 2)[1].copy_(v * 3)),
    ("diagonal_view", lambda y, v: y.diagonal().sub_(v)),
    ("view_of_view", lambda y, v: y.view(6)[2:4].view(2, 1).__setitem__(0, v[0])),
    ("two_writes", lambda y, v: (y[0].mul_(v[0]), y[:, 1].add_(v))),
]


@pytest.mark.parametrize("name,write", VIEW_WRITES, ids=[c[0] for c in VIEW_WRITES])
def test_inplace_write_through_view_reaches_base_gradient(name, write):
    check_op([(2, 3), (2,)], _through_view(write))


def test_inplace_write_through_view_into_plain_buffer():
    check_op([(2,)], lambda w: _fill_buffer(w, _lib(w)))


def _fill_buffer(w, lib):
    buf = lib.zeros(2, 3, dtype=w.dtype)
    buf[1][1:] = w * w
    return buf * 2


def test_inplace_write_into_detached_alias_leaves_source_graph_alone():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    w = ember.tensor([3.0], requires_grad=True)
    d[0] = w  # d takes a graph of its own; y's stays as it was
    assert d.requires_grad and y.grad_fn.name() == "Mul"
    (y * 1).backward(ember.ones(2))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    d.backward(ember.ones(2))
    np.testing.assert_array_equal(w.grad.numpy(), [1.0])


def test_inplace_write_into_view_of_leaf_raises():
    x = ember.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf Variable that requires grad"):
        x[0:2].mul_(2)
    with pytest.raises(RuntimeError, match="view of a leaf Variable that requires grad"):
        x[1:][0] = 5.0
    np.testing.assert_array_equal(x.detach().numpy(), [1, 1, 1])  # refused before writing


def test_setitem_without_grad_writes_in_place():
    x = ember.zeros(2, 3)
    base = x._array
    x[0, 1] = 4
    x[1] = ember.tensor([1.0, 2.0, 3.0])
    x[[0, 0], [2, 2]] = 7.0
    assert x._array is base and x._version == 3
    np.testing.assert_array_equal(x.numpy(), [[0, 4, 7], [1, 2, 3]])
    v = x[1]
    v[0] = -1  # through a view: the base sees it and the version moves for both
    assert x.numpy()[1, 0] == -1 and x._version == v._version == 4
    x[1] = np.array([9, 9, 9])
    np.testing.assert_array_equal(x.numpy()[1], [9, 9, 9])


def test_setitem_value_requires_grad_into_plain_tensor():
    w = ember.tensor([2.0, 3.0], requires_grad=True)
    buf = ember.zeros(4)
    buf[1:3] = w
    assert buf.requires_grad and buf.grad_fn is not None
    (buf * ember.tensor([1.0, 10.0, 100.0, 1000.0])).backward(ember.ones(4))
    np.testing.assert_array_equal(w.grad.numpy(), [10.0, 100.0])
    np.testing.assert_array_equal(buf.detach().numpy(), [0, 2, 3, 0])


def test_setitem_errors():
    leaf = ember.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf[0] = 1.0
    with ember.no_grad():
        leaf[0] = 1.0
    assert leaf.detach().numpy()[0] == 1.0
    x = ember.zeros(3, 4)
    with pytest.raises(
        RuntimeError,
        match=r"value tensor of shape \[3\] cannot be broadcast to indexing result of shape \[4\]",
    ):
        x[0] = ember.ones(3)
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-2] = 1.0
    with pytest.raises(IndexError, match="out of bounds for dimension 0 with size 3"):
        x[5] = 1.0


def test_setitem_on_saved_tensor_raises_at_backward():
    x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.exp()  # Exp saves its output
    y[0] = 0.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward(ember.ones(3))


# -- gather / scatter / index_* -----------------------------------------------------------------

RNG = np.random.default_rng(1)
X34 = RNG.uniform(-2, 2, (3, 4))
IDX = np.array([[0, 0, 2, 2], [1, 0, 1, 1]])  # repeats on purpose


def _ops(name):
    return lambda t, *a, **k: getattr(t, name)(*a, **k)


INDEXING = [
    ("gather0", [X34, IDX], lambda x, i: x.gather(0, i)),
    ("gather1", [X34, np.array([[3, 3], [0, 1], [2, 2]])], lambda x, i: x.gather(1, i)),
    ("gather_small", [X34, np.array([[1], [3]])], lambda x, i: x.gather(-1, i)),
    ("gather_fn", [X34, IDX], lambda x, i: _lib(x).gather(x, 0, i)),
    ("gather_T", [X34, np.array([[0, 2, 2]])], lambda x, i: x.T.gather(1, i)),
    # scatter: unique targets (PyTorch leaves the winner of repeated ones unspecified)
    (
        "scatter_src",
        [X34, np.array([[2, 0, 1], [0, 1, 2]]), RNG.uniform(-1, 1, (2, 3))],
        lambda x, i, s: x.scatter(0, i, s),
    ),
    (
        "scatter_dim1",
        [X34, np.array([[3, 0], [1, 2], [0, 3]]), RNG.uniform(-1, 1, (3, 2))],
        lambda x, i, s: _lib(x).scatter(x, 1, i, s),
    ),
    ("scatter_value", [X34, IDX], lambda x, i: x.scatter(1, i, 0.5)),
    ("scatter_value_kw", [X34, IDX], lambda x, i: x.scatter(1, i, value=2.0)),
    ("scatter_add", [X34, IDX, RNG.uniform(-1, 1, (2, 4))], lambda x, i, s: x.scatter_add(0, i, s)),
    (
        "scatter_add_fn",
        [X34, IDX[:, :3], RNG.uniform(-1, 1, (2, 3))],
        lambda x, i, s: _lib(x).scatter_add(x, 1, i, s),
    ),
    ("index_select", [X34, np.array([2, 0, 2, 1])], lambda x, i: x.index_select(0, i)),
    ("index_select1", [X34, np.array([3, 3])], lambda x, i: _lib(x).index_select(x, 1, i)),
    ("index_select_T", [X34, np.array([0, 3])], lambda x, i: x.T.index_select(0, i)),
    (
        "index_add",
        [X34, np.array([0, 2, 0]), RNG.uniform(-1, 1, (3, 3))],
        lambda x, i, s: x.index_add(1, i, s),
    ),
    (
        "index_add_alpha",
        [X34, np.array([1, 1]), RNG.uniform(-1, 1, (2, 4))],
        lambda x, i, s: _lib(x).index_add(x, 0, i, s, alpha=-2.0),
    ),
    (
        "index_copy",
        [X34, np.array([2, 0]), RNG.uniform(-1, 1, (2, 4))],
        lambda x, i, s: x.index_copy(0, i, s),
    ),
    ("index_fill", [X34, np.array([1, 3])], lambda x, i: x.index_fill(1, i, -1.0)),
    (
        "take_along_dim",
        [X34, np.array([[0, 3], [1, 1], [2, 0]])],
        lambda x, i: _lib(x).take_along_dim(x, i, 1),
    ),
    ("take_along_dim_bcast", [X34, np.array([[2], [0]])], lambda x, i: x.take_along_dim(i, dim=0)),
    ("take_along_dim_flat", [X34, np.array([11, 0, 5, 5])], lambda x, i: x.take_along_dim(i)),
    ("take_along_argmax", [X34], lambda x: x.take_along_dim(_idx(x, [[1], [0], [3]]), 1)),
    ("masked_select", [X34, X34 > 0], lambda x, m: x.masked_select(m)),
    (
        "masked_select_bcast",
        [X34, np.array([True, False, False, True])],
        lambda x, m: _lib(x).masked_select(x, m),
    ),
    (
        "masked_scatter",
        [X34, X34 > 0, RNG.uniform(-1, 1, (12,))],
        lambda x, m, s: x.masked_scatter(m, s),
    ),
    ("gather_size0", [X34, np.zeros((0, 4), np.int64)], lambda x, i: x.gather(0, i)),
    ("index_select_size0", [X34, np.zeros(0, np.int64)], lambda x, i: x.index_select(1, i)),
    (
        "scatter_add_T",
        [X34.T, np.array([[2, 2, 0]]), RNG.uniform(-1, 1, (3, 1))],
        lambda x, i, s: x.scatter_add(1, i, s.T),
    ),
    (
        "index_add_noncontig",
        [X34, np.array([3, 0]), RNG.uniform(-1, 1, (2, 3))],
        lambda x, i, s: x.index_add(1, i, s.T),
    ),
    ("masked_select_none", [X34, np.zeros((3, 4), bool)], lambda x, m: x.masked_select(m)),
    ("select", [X34], lambda x: x.select(1, -2)),
    ("select_fn", [X34], lambda x: _lib(x).select(x, 0, 2)),
    ("take", [X34, np.array([[11, 0], [5, 5]])], lambda x, i: _lib(x).take(x, i)),
    ("take_T", [X34, np.array([1, 4])], lambda x, i: x.T.take(i)),
    (
        "index_put",
        [X34, np.array([0, 2]), RNG.uniform(-1, 1, (2, 4))],
        lambda x, i, v: x.index_put((i,), v),
    ),
    (
        "index_put_acc",
        [X34, np.array([0, 0, 2]), RNG.uniform(-1, 1, (3,))],
        lambda x, i, v: _lib(x).index_put(x, (i, i + 1), v, accumulate=True),
    ),
    (
        "index_put_bcast",
        [X34, np.array([1, 3]), RNG.uniform(-1, 1, (1,))],
        lambda x, i, v: x.index_put((i - 1,), v),
    ),
]


@pytest.mark.parametrize("name,inputs,fn", INDEXING, ids=[c[0] for c in INDEXING])
def test_indexing_ops(name, inputs, fn):
    check_op(None, fn, inputs=inputs)


INPLACE = [
    (
        "scatter_",
        [X34, np.array([[1, 2], [2, 0]]), RNG.uniform(-1, 1, (2, 2))],
        lambda x, i, s: (x * 1).scatter_(0, i, s),
    ),
    (
        "scatter_add_",
        [X34, IDX, RNG.uniform(-1, 1, (2, 4))],
        lambda x, i, s: (x * 1).scatter_add_(0, i, s),
    ),
    (
        "index_add_",
        [X34, np.array([0, 0]), RNG.uniform(-1, 1, (3, 2))],
        lambda x, i, s: (x * 1).index_add_(1, i, s),
    ),
    (
        "index_copy_",
        [X34, np.array([1]), RNG.uniform(-1, 1, (1, 4))],
        lambda x, i, s: (x * 1).index_copy_(0, i, s),
    ),
    ("index_fill_", [X34, np.array([0, 2])], lambda x, i: (x * 1).index_fill_(0, i, 3.0)),
    (
        "masked_scatter_",
        [X34, X34 < 0, RNG.uniform(-1, 1, (3, 4))],
        lambda x, m, s: (x * 1).masked_scatter_(m, s),
    ),
    (
        "index_put_",
        [X34, np.array([2, 2]), RNG.uniform(-1, 1, (2,))],
        lambda x, i, v: (x * 1).index_put_((i, i), v, accumulate=True),
    ),
]


@pytest.mark.parametrize("name,inputs,fn", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_variants(name, inputs, fn):
    check_op(None, fn, inputs=inputs)


def test_inplace_variants_without_grad_keep_memory():
    x = ember.zeros(2, 3)
    base = x._array
    x.scatter_(1, ember.tensor([[2], [0]]), 1.0)
    x.index_add_(0, ember.tensor([1, 1]), ember.ones(2, 3))
    assert x._array is base and x._version == 2
    np.testing.assert_array_equal(x.numpy(), [[0, 0, 1], [3, 2, 2]])


def test_scatter_reduce_add_and_larger_src():
    # PyTorch has no derivative for reduce=; ember's equals scatter_add's.
    i, s = np.array([[0, 0, 2]]), RNG.uniform(-1, 1, (2, 4))
    check_op(
        None,
        lambda x, i, s: x.scatter(0, i, s, reduce="add"),
        lambda x, i, s: x.scatter_add(0, i, s[:1, :3]),
        inputs=[X34, i, s],
        gradcheck_fd=True,
        grad=False,
    )
    x = ember.tensor(X34, requires_grad=True)
    src = ember.tensor(s, requires_grad=True)
    x.scatter(0, ember.tensor(i), src, reduce="add").backward(ember.ones(3, 4))
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((3, 4)))
    expected = np.zeros((2, 4))
    expected[0, :3] = 1  # only the part of src the index covers gets gradient
    np.testing.assert_array_equal(src.grad.numpy(), expected)


def test_scatter_scalar_into_integer_tensor():
    x = ember.zeros(2, 3, dtype=ember.int64)
    out = x.scatter(1, ember.tensor([[2], [0]]), 7).scatter_add(
        0, ember.tensor([[1, 1, 1]]), x[:1] + 1
    )
    np.testing.assert_array_equal(out.numpy(), [[0, 0, 7], [8, 1, 1]])
    assert out.dtype is ember.int64


def test_scatter_reduce_multiply_forward():
    x = ember.full((2, 3), 2.0)
    out = x.scatter(
        1, ember.tensor([[0, 0], [2, 1]]), ember.tensor([[3.0, 4.0], [5.0, 6.0]]), reduce="multiply"
    )
    np.testing.assert_array_equal(out.numpy(), [[24, 2, 2], [2, 12, 10]])


def test_repeated_index_gradients_accumulate():
    x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    i = ember.tensor([0, 0, 2, 0])
    x[i].backward(ember.tensor([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 0.0, 3.0])
    x.grad = None
    x.index_select(0, i).backward(ember.ones(4))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])
    x.grad = None
    x.gather(0, i).backward(ember.ones(4))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_double_backward_through_indexing():
    data = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    res = []
    for lib in (ember, torch):
        x = lib.tensor(data, requires_grad=True)
        y = x[lib.tensor([1, 1, 0])][:, 1:] ** 3
        (g,) = lib.autograd.grad(y, x, lib.ones(3, 2, dtype=x.dtype), create_graph=True)
        (gg,) = lib.autograd.grad(g, x, lib.ones(2, 3, dtype=x.dtype))
        res.append((g.detach().numpy(), gg.numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0])
    np.testing.assert_allclose(res[0][1], res[1][1])


def test_indexing_op_errors():
    x = ember.zeros(3, 4)
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        x.gather(1, ember.tensor([[4]]))
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x.index_select(0, ember.tensor([0, 3]))
    with pytest.raises(IndexError, match="index -1 is out of bounds for dimension 0 with size 3"):
        x.scatter_add(0, ember.tensor([[-1]]), ember.ones(1, 1))
    with pytest.raises(RuntimeError, match="Expected dtype int64 for index"):
        x.gather(0, ember.tensor([[0.0]]))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.gather(0, ember.tensor([0]))
    with pytest.raises(
        RuntimeError, match=r"Size does not match at dimension 1.*\[1, 5\].*\[3, 4\]"
    ):
        x.gather(0, ember.zeros(1, 5, dtype=ember.int64))
    with pytest.raises(IndexError, match="supposed to be a vector"):
        x.index_select(0, ember.zeros(2, 2, dtype=ember.int64))
    with pytest.raises(RuntimeError, match="no larger than src"):
        x.scatter(0, ember.zeros(2, 2, dtype=ember.int64), ember.zeros(1, 2))
    with pytest.raises(RuntimeError, match="same scalar type"):
        x.index_add(0, ember.tensor([0]), ember.zeros(1, 4, dtype=ember.float64))
    with pytest.raises(RuntimeError, match=r"source shape \[2, 4\]"):
        x.index_copy(0, ember.tensor([0]), ember.zeros(2, 4))
    with pytest.raises(RuntimeError, match="BoolTensor"):
        x.masked_select(ember.ones(3, 4))
    with pytest.raises(RuntimeError, match="not broadcastable"):
        x.masked_select(ember.ones(3, dtype=ember.bool))
    with pytest.raises(RuntimeError, match="at least 6 elements"):
        x.masked_scatter(ember.tensor([True, False, False, True]), ember.ones(1))
    with pytest.raises(
        IndexError, match=r"index 4 out of range for tensor of size \[3, 4\] at dimension 1"
    ):
        x.select(1, 4)
    with pytest.raises(IndexError, match="out of bounds for dimension 0 with size 12"):
        x.take(ember.tensor([12]))
    with pytest.raises(RuntimeError, match="same dtype as self"):
        x.index_put((ember.tensor([0]),), ember.ones(1, dtype=ember.float64))
    with pytest.raises(RuntimeError, match="same number of dimensions as src"):
        x.scatter(0, ember.zeros(1, 1, dtype=ember.int64), ember.tensor(1.0))
    with pytest.raises(RuntimeError, match="reduce argument"):
        x.scatter(0, ember.zeros(1, 1, dtype=ember.int64), 1.0, reduce="mean")


# -- nonzero / one_hot --------------------------------------------------------------------------


def test_nonzero_and_where():
    a = np.array([[0, 1.5, 0], [2, 0, -1]])
    x, t = ember.tensor(a), torch.tensor(a)
    nz = x.nonzero()
    assert nz.dtype is ember.int64
    np.testing.assert_array_equal(nz.numpy(), t.nonzero().numpy())
    for e, r in zip(ember.nonzero(x, as_tuple=True), torch.nonzero(t, as_tuple=True)):
        np.testing.assert_array_equal(e.numpy(), r.numpy())
    for e, r in zip(ember.where(x > 0), torch.where(t > 0)):
        np.testing.assert_array_equal(e.numpy(), r.numpy())
    np.testing.assert_array_equal(ember.argwhere(x).numpy(), torch.argwhere(t).numpy())
    assert ember.zeros(0, 3).nonzero().shape == (0, 2)
    assert ember.tensor(3.0).nonzero().shape == torch.tensor(3.0).nonzero().shape


def test_one_hot():
    i = np.array([[0, 2], [1, 4]])
    for n in (-1, 6):
        e = F.one_hot(ember.tensor(i), n)
        r = torch.nn.functional.one_hot(torch.tensor(i), n)
        assert e.dtype is ember.int64 and e.shape == tuple(r.shape)
        np.testing.assert_array_equal(e.numpy(), r.numpy())
    assert F.one_hot(ember.zeros(0, dtype=ember.int64), 3).shape == (0, 3)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(ember.tensor([0, 3]), 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(ember.tensor([-1, 0]))
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(ember.tensor([0.0]))
    with pytest.raises(RuntimeError, match="empty tensor"):
        F.one_hot(ember.zeros(0, dtype=ember.int64))
