"""``Parameter`` and ``Buffer``: tensors that a ``Module`` registers when assigned."""

from __future__ import annotations

import copy

import numpy as np

from .. import dtypes
from ..tensor import Tensor, wrap_array


def _source_array(data):
    if data is None:
        return np.empty((0,), dtypes.get_default_dtype().np), None
    if isinstance(data, Tensor):
        return data._array, data
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        return data, None
    raise TypeError(f"expected a Tensor or array as data, got {type(data).__name__}")


class Parameter(Tensor):
    r"""A tensor that is a module parameter: assigning one as a ``Module`` attribute
    registers it in ``parameters()``. It shares memory with ``data``.

    Args:
        data: the tensor (or array) to wrap; an empty tensor when omitted.
        requires_grad: whether the parameter requires gradient. Default: ``True``.

    Example::

        >>> w = nn.Parameter(ember.randn(3, 4))
    """

    def __init__(self, data=None, requires_grad: bool = True):
        array, source = _source_array(data)
        self._init(array, False, None, 0)
        if source is not None:
            self._version_counter = source._version_counter
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(wrap_array(self._array.copy()), self.requires_grad)
        if self.grad is not None:
            result.grad = copy.deepcopy(self.grad, memo)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self._array, self.requires_grad, self.grad))


def _rebuild_parameter(data, requires_grad, grad):
    p = Parameter(wrap_array(data), requires_grad)
    if grad is not None:
        p.grad = grad
    return p


class Buffer(Tensor):
    r"""A tensor that is module state but not a parameter (BatchNorm's running mean):
    assigning one as a ``Module`` attribute registers it in ``buffers()``.

    Args:
        data: the tensor (or array) to wrap; an empty tensor when omitted.
        persistent: whether the buffer is part of the module's ``state_dict``.
            Default: ``True``.

    Example::

        >>> self.running_mean = nn.Buffer(ember.zeros(4))
    """

    def __init__(self, data=None, *, persistent: bool = True):
        array, source = _source_array(data)
        self._init(array, False, None, 0)
        if source is not None:
            self._version_counter = source._version_counter
            if source.requires_grad:
                self.requires_grad_(True)
        self.persistent = persistent

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = Buffer(wrap_array(self._array.copy()), persistent=self.persistent)
        result.requires_grad = self.requires_grad
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        return (_rebuild_buffer, (self._array, self.requires_grad, self.persistent))


def _rebuild_buffer(data, requires_grad, persistent):
    b = Buffer(wrap_array(data), persistent=persistent)
    b.requires_grad = requires_grad
    return b
