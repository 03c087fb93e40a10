"""Adagrad (with learning-rate decay) and Adadelta: per-coordinate step sizes from
accumulated squared gradients."""

from __future__ import annotations

from ..backend import xp_of
from .optimizer import (
    Optimizer,
    Params,
    as_float,
    check_hyper,
    increment_step,
    step_tensor,
    zeros_state,
)


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al.), with PyTorch's update rule:

    ``clr = lr / (1 + (t - 1) * lr_decay)``, ``s += g * g``, ``p -= clr * g / (sqrt(s) + eps)``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 1e-2).
        lr_decay: learning rate decay (default: 0).
        weight_decay: L2 penalty (default: 0).
        initial_accumulator_value: starting value of the sum of squares (default: 0).
        eps: added to the denominator for numerical stability (default: 1e-10).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.Adagrad(model.parameters(), lr=0.1)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyper(lr >= 0.0, f"Invalid learning rate: {lr}")
        check_hyper(lr_decay >= 0.0, f"Invalid lr_decay value: {lr_decay}")
        check_hyper(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        check_hyper(
            initial_accumulator_value >= 0.0,
            f"Invalid initial_accumulator_value value: {initial_accumulator_value}",
        )
        check_hyper(eps >= 0.0, f"Invalid epsilon value: {eps}")
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        # As in PyTorch, parameters given here start from the constructor's value even if
        # their group sets another; groups added later start from their own.
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, self.state[p], self.defaults)

    def _init_state(self, p, state, group) -> None:
        state["step"] = step_tensor()
        state["sum"] = zeros_state(p, group["initial_accumulator_value"])

    def _update(self, param, grad, state, group) -> None:
        lr = as_float(group["lr"])
        lr_decay = group["lr_decay"]
        eps = group["eps"]
        xp = xp_of(param)
        step = increment_step(state)
        g = self._regularized_grad(param, grad, group, lr)
        clr = lr / (1 + (step - 1) * lr_decay)
        tmp = self._buffer(param)
        state_sum = state["sum"]._array
        state_sum += xp.multiply(g, g, out=tmp)
        std = xp.sqrt(state_sum, out=tmp)
        std += eps
        update = xp.divide(g, std, out=tmp)
        update *= clr
        param -= update


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler): ``v = rho * v + (1 - rho) * g * g``,
    ``delta = sqrt(u + eps) / sqrt(v + eps) * g``, ``u = rho * u + (1 - rho) * delta**2``,
    ``p -= lr * delta``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: coefficient scaling delta (default: 1.0).
        rho: running-average coefficient (default: 0.9).
        eps: added inside the square roots for numerical stability (default: 1e-6).
        weight_decay: L2 penalty (default: 0).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.Adadelta(model.parameters())
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyper(lr >= 0.0, f"Invalid learning rate: {lr}")
        check_hyper(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        check_hyper(eps >= 0.0, f"Invalid epsilon value: {eps}")
        check_hyper(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    _state_buffers = ("square_avg", "acc_delta")

    def _update(self, param, grad, state, group) -> None:
        lr = as_float(group["lr"])
        rho, eps = group["rho"], group["eps"]
        xp = xp_of(param)
        increment_step(state)
        g = self._regularized_grad(param, grad, group, lr)
        square_avg, acc_delta = state["square_avg"]._array, state["acc_delta"]._array
        tmp = self._buffer(param)
        square_avg *= rho
        square_avg += xp.multiply(xp.multiply(g, g, out=tmp), 1 - rho, out=tmp)
        std = xp.sqrt(xp.add(square_avg, eps, out=tmp), out=tmp)
        delta = xp.add(acc_delta, eps, out=self._buffer(param, 2))
        delta = xp.sqrt(delta, out=delta)
        delta /= std
        delta *= g
        acc_delta *= rho
        acc_delta += xp.multiply(xp.multiply(delta, delta, out=tmp), 1 - rho, out=tmp)
        delta *= lr
        param -= delta
