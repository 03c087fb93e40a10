"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

import numpy as np

from .. import multi_tensor
from ..backend import xp_of
from ..parallel import parallel_for
from ..tensor import wrap_array
from .optimizer import Optimizer, Params, as_float, check_hyper, check_implementation_flags


def sgd_update(param, grad, buf, init_buf: bool, scratch, *hyper) -> None:
    """One parameter's SGD update, in place (NumPy or CuPy arrays); ``buf`` is the momentum
    buffer (None without momentum), set to the gradient when ``init_buf``. ``scratch`` is
    two arrays shaped like ``param``; ``hyper`` is (lr, momentum, dampening, weight_decay,
    nesterov, maximize).

    On the CPU a large parameter is updated in flat chunks on ember's threads; the update
    is elementwise, so every thread count gives the same bits."""
    lr, momentum, dampening, weight_decay, nesterov, maximize = hyper
    xp = xp_of(param)
    arrays = (param, grad, *scratch) + (() if buf is None else (buf,))
    flat = xp is np and all(a.flags.c_contiguous for a in arrays)
    views = [a.reshape(-1) for a in arrays] if flat else arrays

    def chunk(a, e):
        part = slice(a, e) if flat else slice(None)
        p, grad, tmp, g = (v[part] for v in views[:4])
        if weight_decay != 0:
            xp.multiply(p, weight_decay, out=g)
            xp.subtract(g, grad, out=g) if maximize else xp.add(g, grad, out=g)
        elif maximize:
            xp.negative(grad, out=g)
        else:
            g = grad
        direction = g
        if buf is not None:
            b = views[4][part]
            if init_buf:
                b[...] = g
            else:
                b *= momentum
                b += xp.multiply(g, 1 - dampening, out=tmp) if dampening != 0 else g
            if nesterov:
                direction = xp.multiply(b, momentum, out=tmp)
                direction += g
            else:
                direction = b
        p -= xp.multiply(direction, lr, out=tmp)

    if flat:
        parallel_for(chunk, param.size, 1)
    else:
        chunk(0, 1)


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
        hyper = (lr, momentum, group["dampening"], group["weight_decay"])
        hyper += (group["nesterov"], group["maximize"])
        for p in params:
            param = p._array
            buf, first = None, False
            if momentum != 0:
                state = self.state[p]
                first = state.get("momentum_buffer") is None
                if first:  # buf = g on the first step
                    state["momentum_buffer"] = wrap_array(xp_of(param).empty_like(param))
                buf = state["momentum_buffer"]._array
            scratch = (self._buffer(param), self._buffer(param, 1))
            sgd_update(param, p.grad._array, buf, first, scratch, *hyper)
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
