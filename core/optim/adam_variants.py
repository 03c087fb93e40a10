"""Adam's relatives: Adamax (infinity norm), NAdam (Nesterov momentum) and RAdam
(rectified variance)."""

from __future__ import annotations

import math

from ..backend import xp_of
from ..tensor import Tensor
from .adam import check_adam_args, update_moments
from .optimizer import (
    Optimizer,
    Params,
    as_float,
    check_hyper,
    increment_step,
    step_tensor,
    zeros_state,
)


class Adamax(Optimizer):
    r"""Adamax, Adam with the infinity norm (Kingma & Ba): ``u = max(beta2 * u, |g| + eps)``,
    ``p -= lr / (1 - beta1**t) * m / u``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 2e-3).
        betas: running-average coefficients (default: (0.9, 0.999)).
        eps: added to the norm for numerical stability (default: 1e-8).
        weight_decay: L2 penalty (default: 0).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.Adamax(model.parameters())
    """

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        check_adam_args(lr, betas, eps, weight_decay)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    _state_buffers = ("exp_avg", "exp_inf")

    def _update(self, param, grad, state, group) -> None:
        lr = as_float(group["lr"])
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        xp = xp_of(param)
        step = increment_step(state)
        g = self._regularized_grad(param, grad, group, lr)
        exp_avg, exp_inf = state["exp_avg"]._array, state["exp_inf"]._array
        tmp = self._buffer(param)
        exp_avg += xp.multiply(xp.subtract(g, exp_avg, out=tmp), 1 - beta1, out=tmp)
        exp_inf *= beta2
        norm = xp.abs(g, out=tmp)
        norm += eps
        xp.maximum(exp_inf, norm, out=exp_inf)
        update = xp.divide(exp_avg, exp_inf, out=tmp)
        update *= lr / (1 - beta1**step)
        param -= update


class NAdam(Optimizer):
    r"""NAdam, Adam with Nesterov momentum (Dozat), with PyTorch's momentum-decay schedule
    ``mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 2e-3).
        betas: running-average coefficients (default: (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default: 1e-8).
        weight_decay: weight decay coefficient (default: 0).
        momentum_decay: momentum decay (default: 4e-3).
        decoupled_weight_decay: apply weight decay as AdamW does (default: False).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.NAdam(model.parameters(), lr=1e-3)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_adam_args(lr, betas, eps, weight_decay)
        check_hyper(momentum_decay >= 0.0, f"Invalid momentum_decay value: {momentum_decay}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _init_state(self, p, state, group) -> None:  # PyTorch's order of the entries
        state["step"] = step_tensor()
        state["mu_product"] = step_tensor(1.0)
        state["exp_avg"] = zeros_state(p)
        state["exp_avg_sq"] = zeros_state(p)

    def _update(self, param, grad, state, group) -> None:
        lr = as_float(group["lr"])
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        momentum_decay = group["momentum_decay"]
        xp = xp_of(param)
        step = increment_step(state)
        g = self._regularized_grad(param, grad, group, lr)
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        mu_product_t = state["mu_product"]
        if not isinstance(mu_product_t, Tensor):
            mu_product_t = state["mu_product"] = step_tensor(float(mu_product_t))
        mu_product_t._array *= mu  # float32, as PyTorch keeps it
        mu_product = float(mu_product_t._array)
        exp_avg, exp_avg_sq = state["exp_avg"]._array, state["exp_avg_sq"]._array
        tmp = self._buffer(param)
        update_moments(xp, g, exp_avg, exp_avg_sq, beta1, beta2, tmp)
        denom = xp.divide(exp_avg_sq, 1 - beta2**step, out=tmp)
        denom = xp.sqrt(denom, out=denom)
        denom += eps
        quotient = xp.divide(g, denom, out=self._buffer(param, 2))
        quotient *= lr * (1.0 - mu) / (1.0 - mu_product)
        param -= quotient
        quotient = xp.divide(exp_avg, denom, out=quotient)
        quotient *= lr * mu_next / (1.0 - mu_product * mu_next)
        param -= quotient


class RAdam(Optimizer):
    r"""RAdam (Liu et al.): Adam whose adaptive term is switched on, with a rectification
    factor, once the variance of the adaptive learning rate is tractable (``rho_t > 5``).

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 1e-3).
        betas: running-average coefficients (default: (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default: 1e-8).
        weight_decay: weight decay coefficient (default: 0).
        decoupled_weight_decay: apply weight decay as AdamW does (default: False).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.RAdam(model.parameters())
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_adam_args(lr, betas, eps, weight_decay)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    _state_buffers = ("exp_avg", "exp_avg_sq")

    def _update(self, param, grad, state, group) -> None:
        lr = as_float(group["lr"])
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        rho_inf = 2 / (1 - beta2) - 1
        xp = xp_of(param)
        step = increment_step(state)
        g = self._regularized_grad(param, grad, group, lr)
        exp_avg, exp_avg_sq = state["exp_avg"]._array, state["exp_avg_sq"]._array
        tmp = self._buffer(param)
        update_moments(xp, g, exp_avg, exp_avg_sq, beta1, beta2, tmp)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        rho_t = rho_inf - 2 * step * beta2**step / bias_correction2
        if rho_t > 5.0:
            rect = math.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            denom = xp.sqrt(exp_avg_sq, out=tmp)
            denom += eps
            update = xp.divide(exp_avg, denom, out=tmp)
            update *= lr * rect * bias_correction2**0.5 / bias_correction1
        else:
            update = xp.multiply(exp_avg, lr / bias_correction1, out=tmp)
        param -= update
