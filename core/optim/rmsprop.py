"""RMSprop, optionally centered and with momentum."""

from __future__ import annotations

from ..backend import xp_of
from .optimizer import (
    Optimizer,
    Params,
    as_float,
    check_hyper,
    increment_step,
    zeros_state,
)


class RMSprop(Optimizer):
    r"""RMSprop (Hinton), with PyTorch's update rule:

    ``v = alpha * v + (1 - alpha) * g * g``; ``avg = sqrt(v - mean_g**2) + eps`` when
    ``centered`` (``mean_g`` the running average of ``g``), else ``sqrt(v) + eps``; then
    ``buf = momentum * buf + g / avg`` and ``p -= lr * buf`` with momentum, or
    ``p -= lr * g / avg`` without.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 1e-2).
        alpha: smoothing constant (default: 0.99).
        eps: added to the denominator for numerical stability (default: 1e-8).
        weight_decay: L2 penalty (default: 0).
        momentum: momentum factor (default: 0).
        centered: normalize by an estimate of the gradient's variance (default: False).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyper(lr >= 0.0, f"Invalid learning rate: {lr}")
        check_hyper(eps >= 0.0, f"Invalid epsilon value: {eps}")
        check_hyper(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        check_hyper(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        check_hyper(alpha >= 0.0, f"Invalid alpha value: {alpha}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    _state_buffers = ("square_avg",)

    def _init_state(self, p, state, group) -> None:
        super()._init_state(p, state, group)
        if group["momentum"] > 0:
            state["momentum_buffer"] = zeros_state(p)
        if group["centered"]:
            state["grad_avg"] = zeros_state(p)

    def _update(self, param, grad, state, group) -> None:
        lr = as_float(group["lr"])
        alpha = group["alpha"]
        eps = group["eps"]
        momentum = group["momentum"]
        centered = group["centered"]
        xp = xp_of(param)
        increment_step(state)
        g = self._regularized_grad(param, grad, group, lr)

        tmp = self._buffer(param)
        square_avg = state["square_avg"]._array
        square_avg *= alpha
        square_avg += xp.multiply(xp.multiply(g, g, out=tmp), 1 - alpha, out=tmp)
        if centered:
            grad_avg = state["grad_avg"]._array
            grad_avg += xp.multiply(xp.subtract(g, grad_avg, out=tmp), 1 - alpha, out=tmp)
            avg = xp.multiply(grad_avg, grad_avg, out=tmp)
            avg = xp.sqrt(xp.subtract(square_avg, avg, out=tmp), out=tmp)
        else:
            avg = xp.sqrt(square_avg, out=tmp)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]._array
            buf *= momentum
            buf += xp.divide(g, avg, out=tmp)
            param -= xp.multiply(buf, lr, out=tmp)
        else:
            update = xp.divide(g, avg, out=tmp)
            update *= lr
            param -= update
