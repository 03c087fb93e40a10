import numpy as np
import pytest
import torch

import ember
from tests.helpers import check_op

# (name, shapes, fn); fn runs unchanged on ember and torch tensors
CASES = [
    ("reshape", [(2, 3, 4)], lambda x: x.reshape(4, -1)),
    ("reshape_tuple", [(2, 3, 4)], lambda x: x.reshape((6, 2, 2))),
    (
        "reshape_fn",
        [(2, 6)],
        lambda x: (ember if isinstance(x, ember.Tensor) else torch).reshape(x, (3, 4)),
    ),
    ("reshape_transposed", [(3, 4)], lambda x: x.transpose(0, 1).reshape(-1)),
    ("reshape_0d", [()], lambda x: x.reshape(1, 1)),
    ("reshape_size0", [(0, 3)], lambda x: x.reshape(3, 0)),
    ("view", [(2, 3, 4)], lambda x: x.view(-1, 4)),
    ("view_as", [(2, 6), (3, 4)], lambda x, y: x.view_as(y) * y),
    ("reshape_as", [(2, 6), (4, 3)], lambda x, y: x.reshape_as(y) + y),
    ("transpose", [(2, 3, 4)], lambda x: x.transpose(0, 2)),
    ("transpose_neg", [(2, 3, 4)], lambda x: x.transpose(-1, -2)),
    ("swapaxes", [(2, 3)], lambda x: x.swapaxes(0, 1)),
    ("swapdims", [(2, 3)], lambda x: x.swapdims(1, 0)),
    ("permute", [(2, 3, 4)], lambda x: x.permute(2, 0, 1)),
    ("permute_tuple", [(2, 3, 4)], lambda x: x.permute((1, 2, 0))),
    ("T", [(3, 4)], lambda x: x.T),
    ("mT", [(2, 3, 4)], lambda x: x.mT),
    ("t", [(3, 4)], lambda x: x.t()),
    ("t_1d", [(3,)], lambda x: x.t()),
    ("squeeze_all", [(1, 3, 1, 2)], lambda x: x.squeeze()),
    ("squeeze_dim", [(1, 3, 1, 2)], lambda x: x.squeeze(2)),
    ("squeeze_dim_noop", [(1, 3, 1, 2)], lambda x: x.squeeze(1)),
    ("squeeze_tuple", [(1, 3, 1, 2)], lambda x: x.squeeze((0, -2))),
    ("unsqueeze", [(3, 2)], lambda x: x.unsqueeze(1)),
    ("unsqueeze_end", [(3, 2)], lambda x: x.unsqueeze(-1)),
    ("unsqueeze_0d", [()], lambda x: x.unsqueeze(0)),
    ("expand", [(3, 1)], lambda x: x.expand(2, 3, 4)),
    ("expand_minus1", [(3, 1)], lambda x: x.expand(-1, 5)),
    ("expand_tuple", [(1,)], lambda x: x.expand((2, 3))),
    ("expand_as", [(1, 4), (3, 4)], lambda x, y: x.expand_as(y) * y),
    ("broadcast_to", [(4,)], lambda x: x.broadcast_to((2, 4))),
    ("expand_size0", [(1, 3)], lambda x: x.expand(0, 3)),
    ("flatten", [(2, 3, 4)], lambda x: x.flatten()),
    ("flatten_range", [(2, 3, 4, 2)], lambda x: x.flatten(1, 2)),
    ("flatten_0d", [()], lambda x: x.flatten()),
    ("unflatten", [(2, 12)], lambda x: x.unflatten(1, (3, -1))),
    ("narrow", [(5, 4)], lambda x: x.narrow(0, 1, 3)),
    ("narrow_neg", [(5, 4)], lambda x: x.narrow(-1, -3, 2)),
    ("contiguous", [(3, 4)], lambda x: x.T.contiguous()),
    ("chunk", [(7, 2)], lambda x: x.chunk(3)),
    ("chunk_dim", [(2, 6)], lambda x: x.chunk(4, dim=1)),
    ("split_int", [(5, 3)], lambda x: x.split(2)),
    ("split_list", [(2, 6)], lambda x: x.split([1, 3, 2], dim=1)),
    ("split_partial_use", [(6, 2)], lambda x: x.split(2)[1] * 3),
    ("tensor_split", [(7, 2)], lambda x: x.tensor_split(3)),
    ("tensor_split_idx", [(7, 2)], lambda x: x.tensor_split([1, 4])),
    ("unbind", [(3, 2)], lambda x: x.unbind(1)),
    ("unbind_partial", [(3, 2)], lambda x: x.unbind(0)[2]),
    ("iter", [(3, 2)], lambda x: tuple(x)),
    ("repeat", [(2, 3)], lambda x: x.repeat(2, 1, 3)),
    ("repeat_same", [(2, 3)], lambda x: x.repeat(2, 2)),
    ("repeat_zero", [(2, 3)], lambda x: x.repeat(0, 2)),
    ("flip", [(2, 3, 4)], lambda x: x.flip(0, 2)),
    ("flip_tuple", [(2, 3)], lambda x: x.flip((-1,))),
    ("fliplr", [(2, 3)], lambda x: x.fliplr()),
    ("roll", [(3, 4)], lambda x: x.roll(1, 1)),
    ("roll_multi", [(3, 4)], lambda x: x.roll((1, -2), (0, 1))),
    ("roll_flat", [(3, 4)], lambda x: x.roll(5)),
    ("tril", [(4, 5)], lambda x: x.tril()),
    ("tril_diag", [(2, 4, 4)], lambda x: x.tril(-1)),
    ("triu", [(4, 5)], lambda x: x.triu(1)),
    ("movedim", [(2, 3, 4)], lambda x: x.movedim(0, -1)),
    ("movedim_multi", [(2, 3, 4, 5)], lambda x: x.movedim((0, 1), (2, 0))),
    ("moveaxis", [(2, 3, 4)], lambda x: x.moveaxis(2, 0)),
    ("diagonal", [(3, 4)], lambda x: x.diagonal()),
    ("diagonal_offset", [(3, 4)], lambda x: x.diagonal(1)),
    ("diagonal_neg_dims", [(2, 3, 4)], lambda x: x.diagonal(-1, 2, 1)),
    ("diagonal_batched", [(2, 3, 3)], lambda x: x.diagonal(0, -2, -1)),
    ("diagonal_empty", [(2, 3)], lambda x: x.diagonal(5)),
    ("chain_noncontig", [(4, 6)], lambda x: x.T[1:5].reshape(2, -1).permute(1, 0).flatten()),
]


@pytest.mark.parametrize("name,shapes,fn", CASES, ids=[c[0] for c in CASES])
def test_parity_and_gradcheck(name, shapes, fn):
    check_op(shapes, fn)


def _lib(x):
    return ember if isinstance(x, ember.Tensor) else torch


JOINS = [
    ("cat", [(2, 3), (4, 3)], lambda x, y: _lib(x).cat([x, y])),
    ("cat_dim", [(2, 3), (2, 1), (2, 2)], lambda x, y, z: _lib(x).cat((x, y, z), dim=-1)),
    ("cat_size0", [(0, 3), (2, 3)], lambda x, y: _lib(x).cat([x, y])),
    ("cat_legacy_empty", [(0,), (2, 3)], lambda x, y: _lib(x).cat([x, y])),
    ("cat_single", [(2, 3)], lambda x: _lib(x).cat([x], 1)),
    ("concat", [(2, 3), (2, 3)], lambda x, y: _lib(x).concat([x, y], dim=1)),
    ("concatenate", [(2,), (3,)], lambda x, y: _lib(x).concatenate([x, y])),
    ("cat_transposed", [(3, 2), (3, 3)], lambda x, y: _lib(x).cat([x.T, y.T])),
    ("cat_same_input", [(2, 2)], lambda x: _lib(x).cat([x, x * 2, x])),
    ("stack", [(2, 3), (2, 3)], lambda x, y: _lib(x).stack([x, y])),
    ("stack_dim", [(2, 3), (2, 3)], lambda x, y: _lib(x).stack([x, y], dim=2)),
    ("stack_neg", [(2, 3), (2, 3)], lambda x, y: _lib(x).stack([x, y], -2)),
    ("hstack", [(2, 3), (2, 1)], lambda x, y: _lib(x).hstack([x, y])),
    ("hstack_1d", [(2,), (3,)], lambda x, y: _lib(x).hstack([x, y])),
    ("vstack", [(3,), (2, 3)], lambda x, y: _lib(x).vstack([x, y])),
    ("fn_transpose", [(2, 3)], lambda x: _lib(x).transpose(x, 0, 1)),
    ("fn_permute", [(2, 3)], lambda x: _lib(x).permute(x, (1, 0))),
    ("fn_squeeze", [(1, 3)], lambda x: _lib(x).squeeze(x, 0)),
    ("fn_unsqueeze", [(3,)], lambda x: _lib(x).unsqueeze(x, 0)),
    ("fn_flatten", [(2, 3)], lambda x: _lib(x).flatten(x)),
    ("fn_narrow", [(4, 3)], lambda x: _lib(x).narrow(x, 1, 0, 2)),
    ("fn_chunk", [(4, 3)], lambda x: _lib(x).chunk(x, 2)),
    ("fn_split", [(4, 3)], lambda x: _lib(x).split(x, [1, 3])),
    ("fn_unbind", [(4, 3)], lambda x: _lib(x).unbind(x, 1)),
    ("fn_flip", [(4, 3)], lambda x: _lib(x).flip(x, (0,))),
    ("fn_roll", [(4, 3)], lambda x: _lib(x).roll(x, 1, 0)),
    ("fn_tril", [(3, 3)], lambda x: _lib(x).tril(x, 1)),
    ("fn_triu", [(3, 3)], lambda x: _lib(x).triu(x)),
    ("fn_movedim", [(2, 3)], lambda x: _lib(x).movedim(x, 0, 1)),
    ("fn_broadcast_to", [(3,)], lambda x: _lib(x).broadcast_to(x, (2, 3))),
    ("fn_reshape_kw", [(2, 3)], lambda x: _lib(x).reshape(x, shape=(3, 2))),
    ("fn_permute_kw", [(2, 3)], lambda x: _lib(x).permute(x, dims=(1, 0))),
    ("fn_flip_kw", [(2, 3)], lambda x: _lib(x).flip(x, dims=(0, 1))),
    ("tile", [(2, 3)], lambda x: x.tile((2, 1, 2))),
    ("tile_short", [(2, 3)], lambda x: _lib(x).tile(x, (2,))),
    ("repeat_interleave", [(2, 3)], lambda x: x.repeat_interleave(2, dim=1)),
    ("repeat_interleave_flat", [(2, 3)], lambda x: _lib(x).repeat_interleave(x, 3)),
    (
        "repeat_interleave_tensor",
        [(3, 2)],
        lambda x: x.repeat_interleave(_lib(x).tensor([2, 0, 3]), dim=0),
    ),
    (
        "repeat_interleave_neg_dim",
        [(2, 3)],
        lambda x: x.repeat_interleave(_lib(x).tensor([2]), dim=-1),
    ),
    ("diag_1d", [(3,)], lambda x: _lib(x).diag(x)),
    ("diag_1d_offset", [(3,)], lambda x: _lib(x).diag(x, -2)),
    ("diag_2d", [(3, 4)], lambda x: _lib(x).diag(x, 1)),
    ("diag_method", [(4, 3)], lambda x: x.diag(-1)),
    ("unfold", [(7, 2)], lambda x: x.unfold(0, 3, 2)),
    ("unfold_overlap", [(2, 6)], lambda x: x.unfold(-1, 4, 1)),
    ("unfold_full", [(2, 3)], lambda x: x.unfold(1, 3, 5)),
    ("meshgrid_ij", [(2,), (3,)], lambda x, y: _lib(x).meshgrid(x, y, indexing="ij")),
    ("meshgrid_xy", [(2,), (3,), (4,)], lambda x, y, z: _lib(x).meshgrid(x, y, z, indexing="xy")),
    ("meshgrid_list", [(2,), ()], lambda x, y: _lib(x).meshgrid([x, y], indexing="ij")),
    ("fn_diagonal", [(3, 3)], lambda x: _lib(x).diagonal(x, 1)),
    ("fn_unflatten", [(6,)], lambda x: _lib(x).unflatten(x, 0, (2, 3))),
]


@pytest.mark.parametrize("name,shapes,fn", JOINS, ids=[c[0] for c in JOINS])
def test_functional_forms(name, shapes, fn):
    check_op(shapes, fn)


def test_cat_promotes_dtypes():
    a = ember.tensor([1, 2])
    b = ember.tensor([0.5], dtype=ember.float64)
    c = ember.tensor([True])
    out = ember.cat([a, b, c])
    assert out.dtype is ember.float64
    np.testing.assert_array_equal(out.numpy(), [1, 2, 0.5, 1])
    assert ember.cat([a, c]).dtype is ember.int64
    h = ember.tensor([1.0], dtype=ember.float16)
    assert ember.stack([h, ember.tensor([2.0])]).dtype is ember.float32


def test_cat_gradient_through_promotion():
    x = ember.tensor([1.0, 2.0], dtype=ember.float32, requires_grad=True)
    y = ember.tensor([3.0], dtype=ember.float64, requires_grad=True)
    out = ember.cat([x, y])
    out.backward(ember.tensor([1.0, 2.0, 3.0], dtype=ember.float64))
    assert x.grad.dtype is ember.float32 and y.grad.dtype is ember.float64
    np.testing.assert_array_equal(x.grad.numpy(), [1, 2])
    np.testing.assert_array_equal(y.grad.numpy(), [3])


# -- memory sharing and versions ----------------------------------------------------------------

VIEWS = [
    lambda x: x.view(6, 4),
    lambda x: x.reshape(-1),
    lambda x: x.transpose(0, 1),
    lambda x: x.permute(2, 1, 0),
    lambda x: x.T,
    lambda x: x.unsqueeze(0),
    lambda x: x[:1].squeeze(0),
    lambda x: x.flatten(1),
    lambda x: x.narrow(1, 1, 2),
    lambda x: x.split(1)[1],
    lambda x: x.chunk(2, 2)[0],
    lambda x: x.unbind(2)[3],
    lambda x: x.movedim(0, 2),
    lambda x: x.unflatten(2, (2, 2)),
    lambda x: x.view_as(x),
    lambda x: x.contiguous(),
    lambda x: x.diagonal(0, 0, 2),
]


@pytest.mark.parametrize("k", range(len(VIEWS)))
def test_views_share_memory_and_version(k):
    x = ember.zeros(2, 3, 4)
    v = VIEWS[k](x)
    assert v._version_counter is x._version_counter
    v.mul_(0).add_(7)
    assert x.numpy().sum() == 7 * v.numel()
    assert x._version == v._version == 2


def test_reshape_copies_only_when_needed():
    x = ember.arange(12.0).reshape(3, 4)
    assert np.shares_memory(x.reshape(4, 3).numpy(), x.numpy())
    y = x.T.reshape(-1)
    assert not np.shares_memory(y.numpy(), x.numpy())
    assert y._version_counter is not x._version_counter
    np.testing.assert_array_equal(y.numpy(), np.arange(12.0).reshape(3, 4).T.reshape(-1))


def test_contiguous_copies_non_contiguous():
    x = ember.arange(6.0).reshape(2, 3)
    assert x.contiguous() is x
    c = x.T.contiguous()
    assert c.is_contiguous() and not np.shares_memory(c.numpy(), x.numpy())


def test_tensor_from_fortran_array_is_contiguous():
    # regression: ember.tensor kept NumPy's memory order (gradcheck then perturbed a copy)
    t = ember.tensor(np.ones((3, 4)).T)
    assert t.is_contiguous() and t._array.flags.c_contiguous


def test_from_numpy_shares_through_views():
    a = np.zeros((2, 3))
    t = ember.from_numpy(a)
    t.T[2, 1] = 5.0
    t.view(6)[0] = 1.0
    assert a[1, 2] == 5.0 and a[0, 0] == 1.0


def test_view_of_non_contiguous_raises():
    x = ember.arange(12.0).reshape(3, 4).T
    with pytest.raises(RuntimeError, match="view size is not compatible.*reshape"):
        x.view(12)
    assert x.view(4, 3).shape == (4, 3)  # same shape is always a view
    e = ember.arange(4.0).expand(3, 4)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        e.view(12)
    assert e.view(3, 2, 2)._version_counter is e._version_counter  # splitting a dim is fine


def test_view_dtype():
    x = ember.tensor([1.0, 2.0])
    y = x.view(ember.int32)
    assert y.shape == (2,) and y.dtype is ember.int32
    assert y._version_counter is x._version_counter
    with pytest.raises(RuntimeError, match="element size"):
        x.view(ember.float64)


def test_modifying_saved_view_input_raises_at_backward():
    x = ember.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * 1
    v = y.T
    out = v * v
    y.add_(1)  # v shares y's version counter; Mul saved v
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward(ember.ones(2, 2))


def test_flip_and_roll_copy():
    x = ember.arange(4.0)
    f = x.flip(0)
    r = x.roll(1)
    x.add_(10)
    np.testing.assert_array_equal(f.numpy(), [3, 2, 1, 0])
    np.testing.assert_array_equal(r.numpy(), [3, 0, 1, 2])


def test_expanded_tensor_refuses_writes():
    x = ember.zeros(3).expand(2, 3)
    with pytest.raises(RuntimeError, match="single memory location"):
        x[0, 0] = 1.0


def test_double_backward_through_views():
    x = ember.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=ember.float64, requires_grad=True)
    tx = torch.tensor(x.numpy(force=True), requires_grad=True)
    outs = []
    for lib, t in ((ember, x), (torch, tx)):
        y = t.T.reshape(3, 2).unsqueeze(0).expand(2, 3, 2)
        y = lib.cat([y, y.flip(2)], 1)[..., 1:]
        y = lib.stack(y.repeat(1, 1, 2).roll(1, 0).split(3, 1), 0).tril().diagonal(0, -2, -1)
        y = y.permute(2, 0, 1).unbind(1)[1].narrow(0, 0, 1)
        z = y * y * y
        v = lib.ones(z.shape, dtype=t.dtype)
        (g,) = lib.autograd.grad(z, t, v, create_graph=True)
        (gg,) = lib.autograd.grad(g, t, lib.ones(g.shape, dtype=t.dtype))
        outs.append((g.detach().numpy(), gg.numpy()))
    np.testing.assert_allclose(outs[0][0], outs[1][0])
    np.testing.assert_allclose(outs[0][1], outs[1][1])


# -- errors ---------------------------------------------------------------------------------------


def test_shape_errors():
    x = ember.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        x.reshape(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.view(-1, -1)
    with pytest.raises(RuntimeError, match="invalid shape dimension -3"):
        x.reshape(-3, 2)
    with pytest.raises(TypeError, match="sequence of ints"):
        x.reshape(2.0, 3)
    with pytest.raises(IndexError, match=r"range of \[-2, 1\], but got 2"):
        x.transpose(0, 2)
    with pytest.raises(IndexError, match=r"range of \[-3, 2\], but got 3"):
        x.unsqueeze(3)
    with pytest.raises(RuntimeError, match="duplicate dims"):
        x.permute(0, 0)
    with pytest.raises(RuntimeError, match="does not match the length"):
        x.permute(0)
    with pytest.raises(
        RuntimeError, match=r"expanded size of the tensor \(4\) must match the existing size \(3\)"
    ):
        x.expand(2, 4)
    with pytest.raises(RuntimeError, match="leading, non-existing dimension"):
        x.expand(-1, 2, 3)
    with pytest.raises(RuntimeError, match="must be greater or equal"):
        x.expand(3)
    with pytest.raises(
        RuntimeError, match=r"start \(2\) \+ length \(2\) exceeds dimension size \(3\)"
    ):
        x.narrow(1, 2, 2)
    with pytest.raises(RuntimeError, match="sum exactly to 3"):
        x.split([1, 1], dim=1)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        ember.zeros(3).tril()
    with pytest.raises(RuntimeError, match="can not be smaller"):
        x.repeat(2)
    with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
        x.flatten(1, 0)
    with pytest.raises(RuntimeError, match="dims has duplicates"):
        x.flip(0, -2)
    with pytest.raises(RuntimeError, match="t\\(\\) expects a tensor with <= 2 dimensions"):
        ember.zeros(2, 2, 2).t()
    with pytest.raises(RuntimeError, match="chunks"):
        x.chunk(0)


def test_reorder_errors():
    x = ember.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"repeats.size\(0\) = 2 and input.size\(1\) = 3"):
        x.repeat_interleave(ember.tensor([1, 2]), dim=1)
    with pytest.raises(RuntimeError, match="can not be negative"):
        x.repeat_interleave(-1)
    with pytest.raises(RuntimeError, match="Supports 1D or 2D tensors. Got 3D"):
        ember.diag(ember.zeros(2, 2, 2))


def test_join_errors_show_shapes():
    with pytest.raises(RuntimeError, match=r"except in dimension 0.*\[2, 3\], \[2, 4\]"):
        ember.cat([ember.zeros(2, 3), ember.zeros(2, 4)])
    with pytest.raises(RuntimeError, match=r"\[2, 3\], \[3\]"):
        ember.cat([ember.zeros(2, 3), ember.zeros(3)])
    with pytest.raises(RuntimeError, match="zero-dimensional tensor"):
        ember.cat([ember.zeros(()), ember.zeros(())])
    with pytest.raises(RuntimeError, match="non-empty"):
        ember.cat([])
    with pytest.raises(TypeError, match="element 1 is list"):
        ember.cat([ember.zeros(2), [1.0]])
    with pytest.raises(
        RuntimeError, match=r"equal size, but got \[2\] at entry 0 and \[3\] at entry 1"
    ):
        ember.stack([ember.zeros(2), ember.zeros(3)])
    with pytest.raises(IndexError, match="Dimension out of range"):
        ember.stack([ember.zeros(2)], dim=2)
