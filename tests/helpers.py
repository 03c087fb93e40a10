"""Parity helpers: run the same function on ember and PyTorch, compare values and
gradients, and check ember's gradients against finite differences in float64."""

from __future__ import annotations

import numpy as np
import torch

import ember
from ember.core.gradcheck import gradcheck


def to_numpy(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t.detach().cpu().numpy(force=True))


def check_op(
    shapes,
    fn,
    torch_fn=None,
    *,
    dtype="float64",
    low=-2.0,
    high=2.0,
    atol=1e-6,
    rtol=1e-5,
    grad=True,
    gradcheck_fd=True,
    seed=0,
    inputs=None,
):
    r"""``fn(*tensors)`` on ember and ``torch_fn`` (default: ``fn``) on torch must agree,
    in value and in the gradient of ``sum(out * v)``; float64 grads are also checked
    against central differences.

    ``shapes`` is a list of shapes (random uniform inputs in [low, high)) unless
    ``inputs`` gives the NumPy arrays themselves.
    """
    torch_fn = torch_fn or fn
    rng = np.random.default_rng(seed)
    arrays = (
        inputs
        if inputs is not None
        else [rng.uniform(low, high, size=s).astype(dtype) for s in shapes]
    )
    e_in = [ember.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    t_in = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    e_out = fn(*e_in)
    t_out = torch_fn(*t_in)
    e_outs = e_out if isinstance(e_out, tuple | list) else (e_out,)
    t_outs = t_out if isinstance(t_out, tuple | list) else (t_out,)
    assert len(e_outs) == len(t_outs)
    for e, t in zip(e_outs, t_outs):
        assert tuple(e.shape) == tuple(t.shape), f"shape {tuple(e.shape)} != torch {tuple(t.shape)}"
        np.testing.assert_allclose(to_numpy(e), to_numpy(t), atol=atol, rtol=rtol)
    if not grad:
        return
    diff_e = [o for o in e_outs if o.requires_grad]
    diff_t = [o for o in t_outs if o.requires_grad]
    if not diff_e:
        return
    vs = [rng.standard_normal(tuple(o.shape)).astype(to_numpy(o).dtype) for o in diff_t]
    ember.autograd.backward(diff_e, [ember.tensor(v) for v in vs])
    torch.autograd.backward(diff_t, [torch.tensor(v) for v in vs])
    for i, (e, t) in enumerate(zip(e_in, t_in)):
        if t.grad is None:
            assert e.grad is None or not np.any(to_numpy(e.grad)), f"input {i}: torch has no grad"
            continue
        assert e.grad is not None, f"input {i}: ember has no grad, torch does"
        np.testing.assert_allclose(
            to_numpy(e.grad), to_numpy(t.grad), atol=atol, rtol=rtol, err_msg=f"grad of input {i}"
        )
    if gradcheck_fd and dtype == "float64":
        fresh = [ember.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
        assert gradcheck(fn, fresh, eps=1e-6, atol=1e-5, rtol=1e-4)
