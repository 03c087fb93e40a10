"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from .. import multi_tensor
from ..backend import xp_of
from ..tensor import wrap_array
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

    def _update_group(self, group, params) -> None:
        lr = as_float(group["lr"])
        if self._step_multi_tensor(params, group, lr):
            return
        momentum = group["momentum"]
        dampening = group["dampening"]
        weight_decay = group["weight_decay"]
        nesterov = group["nesterov"]
        maximize = group["maximize"]
        for p in params:
            param = p._array
            xp = xp_of(param)
            g = self._decayed_grad(param, p.grad._array, weight_decay, maximize)
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = g.copy()
                    state["momentum_buffer"] = wrap_array(buf)
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

    def _step_multi_tensor(self, params, group, lr) -> bool:
        """The whole group's update in one CUDA launch, when its tensors allow (CuPy
        arrays of one dtype and device, momentum buffers all new or all there)."""
        if not params:
            return False
        arrays = [p._array for p in params]
        grads = [p.grad._array for p in params]
        momentum = group["momentum"]
        bufs = [self.state[p].get("momentum_buffer") for p in params] if momentum else []
        new_bufs = bool(bufs) and all(b is None for b in bufs)
        if bufs and not new_bufs and any(b is None for b in bufs):
            return False
        if not multi_tensor.fits(arrays + grads):
            return False
        if new_bufs:  # like the params, so they fit too; the kernel writes them first
            xp = xp_of(arrays[0])
            for p, a in zip(params, arrays):
                with a.device:
                    buf = wrap_array(xp.empty_like(a))
                self.state[p]["momentum_buffer"] = buf
        buf_arrays = [self.state[p]["momentum_buffer"]._array for p in params] if momentum else []
        if buf_arrays and not new_bufs and not multi_tensor.fits(arrays + buf_arrays):
            return False
        multi_tensor.sgd_step(
            arrays,
            grads,
            buf_arrays,
            lr=lr,
            momentum=momentum,
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            init_buf=new_bufs,
        )
        for p in params:
            p._bump_version()
        return True
