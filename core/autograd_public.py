"""``ember.autograd``: the public autograd namespace.

Ops inside ember subclass the array-level ``core.autograd.Function``; users subclass
this module's ``Function``, whose ``forward``/``backward`` see Tensors, as in PyTorch.
The backward pass itself is ``core/autograd_engine.py``.
"""

from __future__ import annotations

import functools

from . import autograd as _graph
from .autograd import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .autograd_engine import backward, grad
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor

__all__ = [
    "Function",
    "GradcheckError",
    "backward",
    "enable_grad",
    "grad",
    "gradcheck",
    "inference_mode",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]


def _tensor(x):
    return Tensor._make(x, False, None, 0) if x is not None and not isinstance(x, Tensor) else x


def _array(x):
    return x._array if isinstance(x, Tensor) else x


class Function(_graph.Function):
    r"""Base class for user-defined differentiable ops.

    Subclass it with staticmethods ``forward(ctx, *args)`` and ``backward(ctx, *grads)``
    that take and return Tensors, then call ``MyOp.apply(*args)``.

    Example::

        >>> class Square(ember.autograd.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         ctx.save_for_backward(x)
        ...         return x * x
        ...     @staticmethod
        ...     def backward(ctx, grad):
        ...         (x,) = ctx.saved_tensors
        ...         return 2 * x * grad
    """

    # The user's backward is written with Tensor ops, so it can itself be differentiated.
    differentiable_backward = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        user_forward = cls.__dict__.get("forward")
        user_backward = cls.__dict__.get("backward")
        if user_forward is not None:
            fwd = user_forward.__func__ if isinstance(user_forward, staticmethod) else user_forward

            @functools.wraps(fwd)  # keeps the user's signature (ONNX export binds to it)
            def forward(ctx, *args, **kwargs):
                with _graph.no_grad():
                    out = fwd(ctx, *[_tensor(a) if _is_array(a) else a for a in args], **kwargs)
                if isinstance(out, tuple):
                    return tuple(_owned(o, args) for o in out)
                return _owned(out, args)

            cls.forward = staticmethod(forward)
        if user_backward is not None:
            bwd = (
                user_backward.__func__ if isinstance(user_backward, staticmethod) else user_backward
            )

            def backward(ctx, *grads):
                if _graph._create_graph:
                    return bwd(ctx, *grads)
                with _graph.no_grad():
                    result = bwd(ctx, *[_tensor(g) for g in grads])
                if isinstance(result, tuple):
                    return tuple(_array(g) for g in result)
                return _array(result)

            cls.backward = staticmethod(backward)

    def save_for_backward(self, *tensors):
        self._saved = tuple(_array(t) for t in tensors)

    def mark_non_differentiable(self, *tensors):
        self._non_diff = tuple(_array(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        pass  # ember always materialises missing output gradients as zeros

    @property
    def saved_tensors(self):
        return tuple(_tensor(s) for s in super().saved_tensors)


def _is_array(x) -> bool:
    return hasattr(x, "__array_interface__") or hasattr(x, "__cuda_array_interface__")


def _owned(out, args):
    """A forward that returns an input unchanged must still return a new tensor."""
    arr = _array(out)
    if any(arr is a for a in args):
        arr = arr.copy()
    return arr
