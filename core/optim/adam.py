"""Adam and AdamW (decoupled weight decay), with AMSGrad and maximize."""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..backend import xp_of
from ..parallel import parallel_for
from .optimizer import (
    Optimizer,
    Params,
    as_float,
    check_hyper,
    check_implementation_flags,
    increment_step,
    zeros_state,
)


def check_adam_args(lr, betas, eps, weight_decay) -> None:
    check_hyper(lr >= 0.0, f"Invalid learning rate: {lr}")
    check_hyper(eps >= 0.0, f"Invalid epsilon value: {eps}")
    check_hyper(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
    check_hyper(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
    check_hyper(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")


def update_moments(xp, g, exp_avg, exp_avg_sq, beta1, beta2, tmp) -> None:
    """``exp_avg.lerp_(g, 1 - beta1)`` and ``exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g``."""
    exp_avg += xp.multiply(xp.subtract(g, exp_avg, out=tmp), 1 - beta1, out=tmp)
    exp_avg_sq *= beta2
    exp_avg_sq += xp.multiply(xp.multiply(g, g, out=tmp), 1 - beta2, out=tmp)


def adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, scratch, *hyper) -> None:
    """One parameter's Adam / AdamW update, in place (NumPy or CuPy arrays, AMSGrad when
    ``max_exp_avg_sq`` is given). ``scratch`` is two arrays shaped like ``param``.
    ``hyper`` is (lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step).

    On the CPU a large parameter is updated in flat chunks on ember's threads; the update
    is elementwise, so every thread count gives the same bits."""
    lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step = hyper
    xp = xp_of(param)
    arrays = (param, grad, exp_avg, exp_avg_sq, *scratch)
    if max_exp_avg_sq is not None:
        arrays += (max_exp_avg_sq,)
    flat = xp is np and all(a.flags.c_contiguous for a in arrays)
    views = [a.reshape(-1) for a in arrays] if flat else arrays
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5

    def chunk(a, e):
        part = slice(a, e) if flat else slice(None)
        p, grad, exp_avg, exp_avg_sq, tmp, g = (v[part] for v in views[:6])
        if weight_decay != 0 and decoupled:
            p *= 1 - lr * weight_decay
        if weight_decay != 0 and not decoupled:
            xp.multiply(p, weight_decay, out=g)
            xp.subtract(g, grad, out=g) if maximize else xp.add(g, grad, out=g)
        elif maximize:
            xp.negative(grad, out=g)
        else:
            g = grad
        update_moments(xp, g, exp_avg, exp_avg_sq, beta1, beta2, tmp)
        if max_exp_avg_sq is not None:
            max_sq = views[6][part]
            xp.maximum(max_sq, exp_avg_sq, out=max_sq)
            denom = xp.sqrt(max_sq, out=tmp)
        else:
            denom = xp.sqrt(exp_avg_sq, out=tmp)
        denom /= bias_correction2_sqrt
        denom += eps
        update = xp.divide(exp_avg, denom, out=tmp)
        update *= lr / bias_correction1
        p -= update

    if flat:
        parallel_for(chunk, param.size, 1)
    else:
        chunk(0, 1)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), with PyTorch's update rule:

    ``m = beta1 * m + (1 - beta1) * g``, ``v = beta2 * v + (1 - beta2) * g * g``,
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``; with
    ``amsgrad`` the running maximum of ``v`` replaces ``v`` in the denominator.
    ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2), or, with
    ``decoupled_weight_decay=True`` (AdamW), scales ``p`` by ``1 - lr * weight_decay``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 1e-3).
        betas: coefficients of the running averages of the gradient and its square
            (default: (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default: 1e-8).
        weight_decay: weight decay coefficient (default: 0).
        amsgrad: use the AMSGrad variant (default: False).
        maximize: maximize the objective instead of minimizing it (default: False).
        decoupled_weight_decay: apply weight decay as AdamW does (default: False).

    Example::

        >>> opt = ember.optim.Adam(model.parameters(), lr=3e-4)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_implementation_flags(foreach, fused, capturable, differentiable)
        check_adam_args(lr, betas, eps, weight_decay)
        defaults = {
            "lr": lr,
            "betas": (as_float(betas[0]), as_float(betas[1])),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    _state_buffers = ("exp_avg", "exp_avg_sq")

    def _init_state(self, p, state, group) -> None:
        super()._init_state(p, state, group)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros_state(p)

    def _update(self, param, grad, state, group) -> None:
        lr = as_float(group["lr"])
        beta1, beta2 = (as_float(b) for b in group["betas"])
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        amsgrad = group["amsgrad"]
        maximize = group["maximize"]
        decoupled = group.get("decoupled_weight_decay", False)
        xp = xp_of(param)
        step = increment_step(state)
        exp_avg = state["exp_avg"]._array
        exp_avg_sq = state["exp_avg_sq"]._array
        if xp is not np and not amsgrad:  # CUDA: one fused kernel per tensor
            kernels.adam_step(
                param,
                grad,
                exp_avg,
                exp_avg_sq,
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
                maximize,
                step,
            )
            return

        max_sq = state["max_exp_avg_sq"]._array if amsgrad else None
        scratch = (self._buffer(param), self._buffer(param, 1))
        hyper = (lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step)
        adam_update(param, grad, exp_avg, exp_avg_sq, max_sq, scratch, *hyper)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter): each step scales ``p`` by
    ``1 - lr * weight_decay`` before the Adam update.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default: 1e-3).
        betas: running-average coefficients (default: (0.9, 0.999)).
        eps: denominator term for numerical stability (default: 1e-8).
        weight_decay: decoupled weight decay coefficient (default: 1e-2).
        amsgrad: use the AMSGrad variant (default: False).
        maximize: maximize the objective instead of minimizing it (default: False).

    Example::

        >>> opt = ember.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
