"""ember.optim.LBFGS against torch.optim.LBFGS on a smooth non-convex problem, with and
without the strong-Wolfe line search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.optim as optim


def _problem(lib, x, y):
    # a Rosenbrock valley in x plus a least-squares term coupling y to x
    return (
        ((1 - x[:-1]) ** 2).sum()
        + 10 * ((x[1:] - x[:-1] * x[:-1]) ** 2).sum()
        + ((y - 0.5 * x[:3]) ** 2).sum()
    )


def _closure(lib, opt, x, y):
    def closure():
        opt.zero_grad()
        loss = _problem(lib, x, y)
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"line_search_fn": "strong_wolfe"},
        {"lr": 0.5, "max_iter": 5, "history_size": 3},
        {"line_search_fn": "strong_wolfe", "history_size": 4, "max_iter": 7, "max_eval": 9},
    ],
)
def test_matches_torch(kwargs, dtype):
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1.5, 1.5, 5).astype(dtype)
    y0 = rng.uniform(-1, 1, 3).astype(dtype)
    ex, ey = ember.tensor(x0, requires_grad=True), ember.tensor(y0, requires_grad=True)
    tx, ty = torch.tensor(x0, requires_grad=True), torch.tensor(y0, requires_grad=True)
    e_opt, t_opt = optim.LBFGS([ex, ey], **kwargs), torch.optim.LBFGS([tx, ty], **kwargs)
    e_close, t_close = _closure(ember, e_opt, ex, ey), _closure(torch, t_opt, tx, ty)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-9, "atol": 1e-10}
    for _ in range(4):
        e_loss, t_loss = e_opt.step(e_close), t_opt.step(t_close)
        np.testing.assert_allclose(float(e_loss.item()), float(t_loss.item()), **tol)
        np.testing.assert_allclose(ex._array, tx.detach().numpy(), **tol)
        np.testing.assert_allclose(ey._array, ty.detach().numpy(), **tol)
    e_state, t_state = e_opt.state[ex], t_opt.state[tx]
    assert e_state["func_evals"] == t_state["func_evals"]
    assert e_state["n_iter"] == t_state["n_iter"]
    assert len(e_state["old_dirs"]) == len(t_state["old_dirs"])


def test_state_dict_round_trip_and_errors():
    x0 = np.array([-1.2, 1.0, 0.5, -0.3, 0.8])
    y0 = np.zeros(3)
    a = [ember.tensor(x0, requires_grad=True), ember.tensor(y0, requires_grad=True)]
    b = [ember.tensor(x0, requires_grad=True), ember.tensor(y0, requires_grad=True)]
    opt_a = optim.LBFGS(a, max_iter=4, line_search_fn="strong_wolfe")
    opt_b = optim.LBFGS(b, max_iter=4, line_search_fn="strong_wolfe")
    opt_a.step(_closure(ember, opt_a, *a))
    opt_b.step(_closure(ember, opt_b, *b))
    resumed = [ember.tensor(p._array, requires_grad=True) for p in b]
    opt_c = optim.LBFGS(resumed, max_iter=4, line_search_fn="strong_wolfe")
    opt_c.load_state_dict(opt_b.state_dict())
    opt_a.step(_closure(ember, opt_a, *a))
    opt_c.step(_closure(ember, opt_c, *resumed))
    for p, q in zip(a, resumed):
        np.testing.assert_array_equal(p._array, q._array)

    w = ember.tensor([1.0], requires_grad=True)
    v = ember.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        optim.LBFGS([{"params": [w]}, {"params": [v]}])
    with pytest.raises(ValueError, match="only 'strong_wolfe' is supported"):
        optim.LBFGS([w], line_search_fn="armijo")
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.LBFGS([w], lr=-1)
