"""Double backward (create_graph=True) through the fused norms, attention and losses:
the first-order gradients must themselves be differentiable, as a gradient penalty
(WGAN-GP) or a meta-learning inner loop needs. Each case compares with torch, in
float64, the first-order gradients and the gradient of a penalty built from them, and
checks the gradient of the first-order gradient function by finite differences."""

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import ember
import ember.nn.functional as F
from ember.core.gradcheck import gradcheck

ATOL, RTOL = 1e-9, 1e-7


def _F(x):
    """The functional module of ``x``'s library."""
    return F if isinstance(x, ember.Tensor) else torch.nn.functional


def _first_order(lib, fn, inputs, v):
    """``fn``'s vector-Jacobian product with ``v``, differentiable (create_graph)."""
    with lib.enable_grad():  # gradcheck evaluates the function under no_grad
        out = fn(*inputs)
        grads = lib.autograd.grad(out, inputs, v, create_graph=True, allow_unused=True)
    return [g for g in grads if g is not None]


def check_double_backward(fn, arrays, torch_fn=None, *, seed=0, fd=True, wrt=None):
    r"""Run ``fn`` on ember and ``torch_fn`` (default ``fn``) on torch with float64
    inputs built from ``arrays`` (those at positions ``wrt``, default all floating ones,
    require grad). Compares the vector-Jacobian product ``g`` of the output with a random
    ``v``, and the gradients of the penalty ``sum_i sum(g_i ** 2 * u_i)`` w.r.t. every
    input; then finite-differences the function ``inputs -> g``."""
    torch_fn = torch_fn or fn
    rng = np.random.default_rng(seed)
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    e_in = [ember.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    t_in = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    e_leaves = [e_in[i] for i in wrt]
    t_leaves = [t_in[i] for i in wrt]

    def e_call(*leaves):
        full = list(e_in)
        for i, leaf in zip(wrt, leaves):
            full[i] = leaf
        return fn(*full)

    def t_call(*leaves):
        full = list(t_in)
        for i, leaf in zip(wrt, leaves):
            full[i] = leaf
        return torch_fn(*full)

    # torch's fused CPU attention kernels have no double backward; its math path has
    with sdpa_kernel(SDPBackend.MATH):
        t_out = t_call(*t_leaves)
        v = rng.standard_normal(tuple(t_out.shape))
        t_grads = _first_order(torch, t_call, t_leaves, torch.tensor(v))
    e_grads = _first_order(ember, e_call, e_leaves, ember.tensor(v))
    assert len(e_grads) == len(t_grads)
    for i, (e, t) in enumerate(zip(e_grads, t_grads)):
        np.testing.assert_allclose(
            e.detach().numpy(), t.detach().numpy(), atol=ATOL, rtol=RTOL, err_msg=f"grad {i}"
        )
    us = [rng.uniform(0.5, 1.5, size=tuple(t.shape)) for t in t_grads]
    t_pen = sum((g * g * torch.tensor(u)).sum() for g, u in zip(t_grads, us) if g.requires_grad)
    e_pen = sum((g * g * ember.tensor(u)).sum() for g, u in zip(e_grads, us) if g.requires_grad)
    assert isinstance(t_pen, torch.Tensor), "no first-order gradient depends on the inputs"
    t_gg = torch.autograd.grad(t_pen, t_leaves, allow_unused=True)
    e_gg = ember.autograd.grad(e_pen, e_leaves, allow_unused=True)
    for i, (e, t) in enumerate(zip(e_gg, t_gg)):
        if t is None or (e is None and not t.any()):  # no dependence: None or zeros
            assert e is None or not np.any(e.numpy()), f"input {wrt[i]}: torch has no grad"
            continue
        assert e is not None, f"input {wrt[i]}: ember has no second-order grad, torch does"
        np.testing.assert_allclose(
            e.numpy(), t.numpy(), atol=ATOL, rtol=RTOL, err_msg=f"second-order grad {wrt[i]}"
        )
    if fd:
        ve = ember.tensor(v)
        fresh = [ember.tensor(arrays[i], requires_grad=True) for i in wrt]
        assert gradcheck(
            lambda *xs: tuple(_first_order(ember, e_call, list(xs), ve)),
            fresh,
            eps=1e-6,
            atol=1e-5,
            rtol=1e-4,
        )


def _rand(*shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed + len(shape)).uniform(low, high, size=shape)


# -- norms ------------------------------------------------------------------------------------


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(affine):
    x, w, b = _rand(3, 4, 5), _rand(4, 5, seed=1), _rand(4, 5, seed=2)
    if affine:
        # a non-leaf input shifted off zero mean: backward rebuilds it less its mean
        check_double_backward(lambda x, w, b: _F(x).layer_norm(x * x + 3, (4, 5), w, b), [x, w, b])
    else:
        check_double_backward(lambda x: _F(x).layer_norm(x, (5,)), [x])


def test_rms_norm():
    x, w = _rand(3, 6), _rand(6, seed=1)
    check_double_backward(lambda x, w: _F(x).rms_norm(x * x - 1, [6], w, eps=1e-6), [x, w])


def test_group_norm():
    x, w, b = _rand(2, 6, 3, 2), _rand(6, seed=1), _rand(6, seed=2)
    check_double_backward(lambda x, w, b: _F(x).group_norm(x * x + 2, 3, w, b), [x, w, b])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 2)])
def test_batch_norm(training, shape):
    x, w, b = _rand(*shape), _rand(3, seed=1), _rand(3, seed=2)
    mean, var = _rand(3, seed=3), _rand(3, seed=4, low=0.5, high=2.0)

    def fn(x, w, b, mean, var):
        return _F(x).batch_norm(
            x, mean.clone(), var.clone(), w, b, training=training, momentum=0.1, eps=1e-5
        )

    check_double_backward(fn, [x, w, b, mean, var], wrt=[0, 1, 2])


# -- attention --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["plain", "causal", "bool_mask", "float_mask", "gqa"])
def test_scaled_dot_product_attention(case):
    q, k, v = _rand(2, 2, 4, 3), _rand(2, 2, 5, 3, seed=1), _rand(2, 2, 5, 3, seed=2)
    arrays, kw, wrt = [q, k, v], {}, None
    if case == "causal":
        k, v = _rand(2, 2, 4, 3, seed=1), _rand(2, 2, 4, 3, seed=2)
        arrays, kw = [q, k, v], {"is_causal": True}
    elif case == "bool_mask":
        mask = np.random.default_rng(5).uniform(size=(4, 5)) > 0.3
        mask[:, 0] = True
        arrays, wrt = [q, k, v, mask], [0, 1, 2]
    elif case == "float_mask":
        arrays = [q, k, v, _rand(2, 1, 4, 5, seed=6)]  # the mask is differentiated too
    elif case == "gqa":
        q = _rand(2, 4, 4, 3)
        arrays, kw = [q, k, v], {"enable_gqa": True}

    def fn(q, k, v, mask=None):
        return _F(q).scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)

    check_double_backward(fn, arrays, wrt=wrt)


def test_long_causal_attention_gradient_penalty():
    """Sequences long enough for the blocked causal forward (NumPy, float64)."""
    q, k, v = (_rand(1, 1, 130, 2, seed=s) for s in range(3))
    check_double_backward(
        lambda q, k, v: _F(q).scaled_dot_product_attention(q, k, v, is_causal=True),
        [q, k, v],
        fd=False,
    )


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_gradient_penalty(need_weights):
    torch.manual_seed(0)
    t_mha = torch.nn.MultiheadAttention(6, 2, batch_first=True).double()
    e_mha = ember.nn.MultiheadAttention(6, 2, batch_first=True).double()
    e_mha.load_state_dict({k: ember.tensor(v.numpy()) for k, v in t_mha.state_dict().items()})
    padding = np.zeros((2, 5), bool)
    padding[1, 3:] = True

    def fn(x, mem):
        mha = e_mha if isinstance(x, ember.Tensor) else t_mha
        lib = ember if isinstance(x, ember.Tensor) else torch
        out, _ = mha(x, mem, mem, key_padding_mask=lib.tensor(padding), need_weights=need_weights)
        return out

    check_double_backward(fn, [_rand(2, 4, 6), _rand(2, 5, 6, seed=1)], fd=False)
    # and w.r.t. the parameters, as a gradient penalty on a critic does
    x = ember.tensor(_rand(2, 4, 6), requires_grad=True)
    tx = torch.tensor(_rand(2, 4, 6), requires_grad=True)
    (gx,) = ember.autograd.grad(e_mha(x, x, x)[0].sum(), x, create_graph=True)
    with sdpa_kernel(SDPBackend.MATH):
        (tgx,) = torch.autograd.grad(t_mha(tx, tx, tx)[0].sum(), tx, create_graph=True)
    (gx * gx).sum().backward()
    (tgx * tgx).sum().backward()
    e_params = dict(e_mha.named_parameters())
    for name, p in t_mha.named_parameters():
        if p.grad is None:  # the output bias does not reach the input gradient
            assert e_params[name].grad is None, name
            continue
        assert e_params[name].grad is not None, name
        np.testing.assert_allclose(
            e_params[name].grad.numpy(), p.grad.numpy(), atol=ATOL, rtol=RTOL, err_msg=name
        )


# -- losses -----------------------------------------------------------------------------------

_PAIR_LOSSES = {
    "mse": lambda f, x, t, r: f.mse_loss(x, t, reduction=r),
    "l1": lambda f, x, t, r: f.l1_loss(x, t, reduction=r),
    "smooth_l1": lambda f, x, t, r: f.smooth_l1_loss(x, t, reduction=r, beta=0.7),
    "smooth_l1_beta0": lambda f, x, t, r: f.smooth_l1_loss(x, t, reduction=r, beta=0.0),
    "huber": lambda f, x, t, r: f.huber_loss(x, t, reduction=r, delta=0.8),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", list(_PAIR_LOSSES))
def test_pair_losses(kind, reduction):
    # the loss alone has a constant or zero second derivative in l1-like pieces:
    # multiply by x so that the penalty's gradient exercises every branch
    x, t = _rand(3, 4), _rand(3, 4, seed=1)
    check_double_backward(
        lambda x, t: (
            _PAIR_LOSSES[kind](_F(x), x * x, t, reduction) * (1 if reduction == "none" else x.sum())
        ),
        [x, t],
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(weighted):
    x, t = _rand(3, 4, low=0.05, high=0.95), _rand(3, 4, seed=1, low=0.0, high=1.0)
    w = _rand(3, 4, seed=2, low=0.5, high=1.5)

    def fn(x, t, w):
        return _F(x).binary_cross_entropy(x, t, weight=w if weighted else None) * x.sum()

    check_double_backward(fn, [x, t, w], wrt=[0, 1])


@pytest.mark.parametrize("pos_weight", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_binary_cross_entropy_with_logits(pos_weight, reduction):
    x, t = _rand(3, 4), _rand(3, 4, seed=1, low=0.0, high=1.0)
    w, pw = _rand(3, 4, seed=2, low=0.5, high=1.5), _rand(4, seed=3, low=0.5, high=2.0)

    def fn(x, t, w, pw):
        return _F(x).binary_cross_entropy_with_logits(
            x, t, weight=w, pos_weight=pw if pos_weight else None, reduction=reduction
        )

    check_double_backward(fn, [x, t, w, pw], wrt=[0, 1])


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(log_target):
    x = _rand(3, 4)
    t = _rand(3, 4, seed=1) if log_target else _rand(3, 4, seed=1, low=0.1, high=1.0)

    def fn(x, t):
        return _F(x).kl_div(x, t, reduction="batchmean", log_target=log_target) * (x * x).sum()

    check_double_backward(fn, [x, t])


def test_cosine_embedding_loss():
    x1, x2 = _rand(4, 3), _rand(4, 3, seed=1)
    y = np.array([1, -1, 1, -1])

    def fn(x1, x2, y):
        return _F(x1).cosine_embedding_loss(x1, x2, y, margin=-0.5)

    check_double_backward(fn, [x1, x2, y], wrt=[0, 1])


@pytest.mark.parametrize(
    "case", ["plain", "weight", "smoothing", "ignore", "spatial_none", "probs", "probs_smooth"]
)
def test_cross_entropy(case):
    x = _rand(4, 3)
    target = np.array([0, 2, 1, 2])
    kw, wrt = {}, [0]
    if case == "weight":
        kw["weight"] = np.array([0.5, 1.5, 1.0])
    elif case == "smoothing":
        kw.update(label_smoothing=0.2, weight=np.array([0.5, 1.5, 1.0]))
    elif case == "ignore":
        target = np.array([0, -100, 1, 2])
        kw.update(ignore_index=-100, label_smoothing=0.1)
    elif case == "spatial_none":
        x, target = _rand(2, 3, 2, 2), np.array([[[0, 1], [2, 1]], [[1, 1], [0, 2]]])
        kw["reduction"] = "none"
    elif case.startswith("probs"):
        target = np.random.default_rng(4).dirichlet(np.ones(3), size=4)
        wrt = [0, 1]
        if case == "probs_smooth":
            kw.update(label_smoothing=0.3, weight=np.array([0.5, 1.5, 1.0]))

    def fn(x, target):
        lib = ember if isinstance(x, ember.Tensor) else torch
        args = {k: lib.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        # times x: the penalty's gradient then depends on the gradient's value too;
        # a non-leaf input (x * x) but for "weight" (the input is the leaf itself)
        logits = x if case == "weight" else x * x
        return _F(x).cross_entropy(logits, target, **args) * (x * x).sum()

    check_double_backward(fn, [x, target], wrt=wrt)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction):
    x, target = _rand(2, 4, 3), np.array([[0, 3, 1], [2, -100, 3]])
    weight = np.array([0.5, 1.5, 1.0, 2.0])

    def fn(x, target):
        lib = ember if isinstance(x, ember.Tensor) else torch
        loss = _F(x).nll_loss(
            x.log_softmax(1), target, weight=lib.tensor(weight), reduction=reduction
        )
        return loss * (x * x).sum()

    check_double_backward(fn, [x, target])


# -- a gradient penalty through whole layers ----------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True])
def test_gradient_penalty_through_transformer_encoder_layer(norm_first):
    """WGAN-GP on a Transformer critic: the penalty's parameter gradients match torch."""
    torch.manual_seed(0)
    # relu (the default): Gelu has no double backward yet
    kw = {"dim_feedforward": 12, "dropout": 0.0, "norm_first": norm_first}
    t_layer = torch.nn.TransformerEncoderLayer(6, 2, **kw).double()
    e_layer = ember.nn.TransformerEncoderLayer(6, 2, **kw).double()
    e_layer.load_state_dict({k: ember.tensor(v.numpy()) for k, v in t_layer.state_dict().items()})
    x = _rand(4, 2, 6)
    mask = np.triu(np.full((4, 4), -np.inf), 1)
    penalties = []
    for lib, layer in ((torch, t_layer), (ember, e_layer)):
        xt = lib.tensor(x, requires_grad=True)
        with sdpa_kernel(SDPBackend.MATH):
            score = layer(xt, src_mask=lib.tensor(mask)).pow(2).sum()
            (g,) = lib.autograd.grad(score, xt, create_graph=True)
            penalty = ((g * g).sum().sqrt() - 1) ** 2
            penalty.backward()
        penalties.append(penalty.item())
    np.testing.assert_allclose(penalties[1], penalties[0], rtol=1e-10)
    e_params = dict(e_layer.named_parameters())
    for name, p in t_layer.named_parameters():
        np.testing.assert_allclose(
            e_params[name].grad.numpy(), p.grad.numpy(), atol=ATOL, rtol=RTOL, err_msg=name
        )
