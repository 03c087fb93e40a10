"""Normalization and attention ops: parity with PyTorch (values, gradients, running
statistics), float64 gradchecks, masks, dropout and error messages."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from ember.core.gradcheck import gradcheck
from tests.helpers import check_op

# -- batch norm --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (3, 3, 4, 5)])
def test_batch_norm_training_updates_running_stats(shape):
    rm_e, rv_e = ember.zeros(3, dtype=ember.float64), ember.ones(3, dtype=ember.float64)
    rm_t, rv_t = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for seed in range(3):
        check_op(
            [shape, (3,), (3,)],
            lambda x, w, b: F.batch_norm(x, rm_e, rv_e, w, b, training=True, momentum=0.3),
            lambda x, w, b: TF.batch_norm(x, rm_t, rv_t, w, b, training=True, momentum=0.3),
            gradcheck_fd=False,
            seed=seed,
        )
    np.testing.assert_allclose(rm_e.numpy(), rm_t.numpy(), rtol=1e-10)
    np.testing.assert_allclose(rv_e.numpy(), rv_t.numpy(), rtol=1e-10)


@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 4, 5)])
def test_batch_norm_batch_stats_gradcheck(shape):
    check_op(
        [shape, (3,), (3,)],
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
    )
    check_op(
        [shape],
        lambda x: F.batch_norm(x, None, None, training=True, eps=1e-3),
        lambda x: TF.batch_norm(x, None, None, training=True, eps=1e-3),
    )


def test_batch_norm_eval_uses_running_stats():
    rng = np.random.default_rng(1)
    rm, rv = rng.random(3), rng.random(3) + 0.5
    check_op(
        [(2, 3, 4, 5), (3,), (3,)],
        lambda x, w, b: F.batch_norm(x, ember.tensor(rm), ember.tensor(rv), w, b),
        lambda x, w, b: TF.batch_norm(x, torch.tensor(rm), torch.tensor(rv), w, b),
    )


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training"):
        F.batch_norm(ember.randn(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        F.batch_norm(ember.randn(2, 3), ember.zeros(4), ember.ones(4))


# -- layer / rms / group norm ------------------------------------------------------------------------


@pytest.mark.parametrize("ns", [(5,), (4, 5)])
def test_layer_norm(ns):
    check_op(
        [(2, 3, 4, 5), ns, ns],
        lambda x, w, b: F.layer_norm(x, ns, w, b),
        lambda x, w, b: TF.layer_norm(x, ns, w, b),
    )
    check_op(
        [(3, 4, 5)], lambda x: F.layer_norm(x, ns, eps=0.1), lambda x: TF.layer_norm(x, ns, eps=0.1)
    )


@pytest.mark.parametrize("ns", [(5,), (4, 5)])
def test_rms_norm(ns):
    check_op(
        [(2, 3, 4, 5), ns], lambda x, w: F.rms_norm(x, ns, w), lambda x, w: TF.rms_norm(x, ns, w)
    )
    check_op(
        [(3, 4, 5)], lambda x: F.rms_norm(x, ns, eps=1e-3), lambda x: TF.rms_norm(x, ns, eps=1e-3)
    )


def test_rms_norm_default_eps_is_dtype_eps():
    x = np.zeros((2, 4), np.float32)
    x[0, 0] = 1e-5
    np.testing.assert_allclose(
        F.rms_norm(ember.tensor(x), [4]).numpy(),
        TF.rms_norm(torch.tensor(x), [4]).numpy(),
        rtol=1e-5,
    )


def test_group_norm():
    check_op(
        [(2, 6, 4, 5), (6,), (6,)],
        lambda x, w, b: F.group_norm(x, 3, w, b),
        lambda x, w, b: TF.group_norm(x, 3, w, b),
    )
    check_op([(2, 6, 7)], lambda x: F.group_norm(x, 2), lambda x: TF.group_norm(x, 2))


def test_normalize():
    check_op([(3, 4)], F.normalize, TF.normalize)
    check_op(
        [(3, 4, 2)], lambda x: F.normalize(x, p=1, dim=-1), lambda x: TF.normalize(x, p=1, dim=-1)
    )


def test_norm_errors():
    with pytest.raises(
        RuntimeError, match=r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\]"
    ):
        F.layer_norm(ember.randn(2, 3), [4])
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(ember.randn(2, 6, 4), 4)


# -- scaled dot-product attention ---------------------------------------------------------------------

sdpa, tsdpa = F.scaled_dot_product_attention, TF.scaled_dot_product_attention


def test_sdpa_basic_and_broadcast_batch():
    check_op([(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)], sdpa, tsdpa)
    check_op([(2, 3, 4, 5), (3, 6, 5), (6, 7)], sdpa, tsdpa)


@pytest.mark.parametrize("shapes", [[(4, 5), (6, 5), (6, 7)], [(2, 4, 5), (2, 4, 5), (2, 4, 5)]])
def test_sdpa_causal_and_scale(shapes):
    check_op(
        shapes,
        lambda q, k, v: sdpa(q, k, v, is_causal=True, scale=0.3),
        lambda q, k, v: tsdpa(q, k, v, is_causal=True, scale=0.3),
    )


@pytest.mark.parametrize("gqa", [False, True])
def test_sdpa_causal_long_sequence_row_blocks(gqa):
    # 130 query rows take the blockwise causal path: blocks of 64, 64 and 2 rows
    kv_heads = 1 if gqa else 2
    shapes = [(2, 2, 130, 3), (2, kv_heads, 130, 3), (2, kv_heads, 130, 4)]
    for dtype, atol in (("float64", 1e-6), ("float32", 1e-5)):
        check_op(
            shapes,
            lambda q, k, v: sdpa(q, k, v, is_causal=True, enable_gqa=gqa),
            lambda q, k, v: tsdpa(q, k, v, is_causal=True, enable_gqa=gqa),
            dtype=dtype,
            atol=atol,
            gradcheck_fd=False,
        )


def test_sdpa_causal_row_blocks_grad_of_query_only():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 128, 4)) for _ in range(3))
    eq, tq = ember.tensor(q, requires_grad=True), torch.tensor(q, requires_grad=True)
    sdpa(eq, ember.tensor(k), ember.tensor(v), is_causal=True).sum().backward()
    tsdpa(tq, torch.tensor(k), torch.tensor(v), is_causal=True).sum().backward()
    np.testing.assert_allclose(eq.grad.numpy(), tq.grad.numpy(), atol=1e-10)


def test_sdpa_bool_mask_with_fully_masked_row():
    m = np.random.default_rng(0).random((4, 6)) > 0.4
    m[1] = False  # a row that attends to nothing gives zeros, as PyTorch
    check_op(
        [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)],
        lambda q, k, v: sdpa(q, k, v, attn_mask=ember.tensor(m)),
        lambda q, k, v: tsdpa(q, k, v, attn_mask=torch.tensor(m)),
    )


def test_sdpa_float_mask_gets_gradient():
    check_op(
        [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7), (3, 4, 6)],
        lambda q, k, v, m: sdpa(q, k, v, attn_mask=m),
        lambda q, k, v, m: tsdpa(q, k, v, attn_mask=m),
    )


def test_sdpa_grouped_query_attention():
    check_op(
        [(2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 7)],
        lambda q, k, v: sdpa(q, k, v, enable_gqa=True),
        lambda q, k, v: tsdpa(q, k, v, enable_gqa=True),
    )


def test_sdpa_dropout():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 6, 5))
    eye = np.broadcast_to(np.eye(6), (2, 6, 6))  # value = identity: output = the weights
    ember.manual_seed(0)
    out = sdpa(ember.tensor(q), ember.tensor(k), ember.tensor(eye), dropout_p=0.4).numpy()
    probs = tsdpa(torch.tensor(q), torch.tensor(k), torch.tensor(eye)).numpy()
    kept = out != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(out[kept], probs[kept] / 0.6, rtol=1e-12)

    def fixed_mask(q, k, v):
        ember.manual_seed(1)
        return sdpa(q, k, v, dropout_p=0.3)

    tensors = [ember.tensor(a, requires_grad=True) for a in (q, k, rng.standard_normal((2, 6, 3)))]
    assert gradcheck(fixed_mask, tensors, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_sdpa_errors():
    q = ember.randn(2, 4, 5)
    with pytest.raises(RuntimeError, match="attn_mask should not be set when is_causal=True"):
        sdpa(q, q, q, attn_mask=ember.ones(4, 4, dtype=ember.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="mismatched shapes"):
        sdpa(q, ember.randn(2, 4, 6), q)
    with pytest.raises(RuntimeError, match="same floating dtype"):
        sdpa(q, q.double(), q)
