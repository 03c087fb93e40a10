"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, Params, as_float, check_hyper, check_implementation_flags


class SGD(Optimizer):
    r"""Stochastic gradient descent, with PyTorch's update rule:

    ``g = grad + weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step) and ``g = g + momentum * buf`` if ``nesterov`` else
    ``g = buf``; then ``p -= lr * g`` (``+=`` with ``maximize``).

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 1e-3).
        momentum: momentum factor (default: 0).
        dampening: dampening for momentum (default: 0).
        weight_decay: L2 penalty (default: 0).
        nesterov: use Nesterov momentum (default: False).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_implementation_flags(foreach, fused, False, differentiable)
        check_hyper(lr >= 0.0, f"Invalid learning rate: {lr}")
        check_hyper(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        check_hyper(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        check_hyper(
            not nesterov or (momentum > 0 and dampening == 0),
            "Nesterov momentum requires a momentum and zero dampening",
        )
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        r"""Perform a single optimization step; ``closure`` re-evaluates the loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = as_float(group["lr"])
            momentum = group["momentum"]
            dampening = group["dampening"]
            weight_decay = group["weight_decay"]
            nesterov = group["nesterov"]
            maximize = group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                param = p._array
                xp = get_array_module(param)
                grad = p.grad._array
                g = self._decayed_grad(param, grad, weight_decay, maximize)
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = g.copy()
                        state["momentum_buffer"] = Tensor._make(buf, False, None, 0)
                    else:
                        buf = buf._array
                        buf *= momentum
                        if dampening != 0:
                            buf += xp.multiply(g, 1 - dampening, out=self._buffer(param))
                        else:
                            buf += g
                    if nesterov:
                        direction = xp.multiply(buf, momentum, out=self._buffer(param))
                        direction += g
                    else:
                        direction = buf
                else:
                    direction = g
                param -= xp.multiply(direction, lr, out=self._buffer(param))
                p._bump_version()
        return loss
