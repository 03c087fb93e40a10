"""Turning a list of samples into a batch (``default_collate``) and a single sample into
tensors (``default_convert``), with PyTorch's rules for every supported structure."""

from __future__ import annotations

import collections.abc
import copy
import re

import numpy as np

from ... import backend, dtypes
from ...tensor import Tensor, wrap_array

_STRING_OR_OBJECT = re.compile(r"[SaUO]")
_ERR = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _wrap(array) -> Tensor:
    return wrap_array(array)


def _as_tensor(value) -> Tensor:
    arr = np.asarray(value)
    dtypes.from_numpy(arr.dtype)  # raises TypeError for dtypes ember lacks
    return _wrap(arr)


def collate_tensor_fn(batch, *, collate_fn_map=None) -> Tensor:
    first = batch[0]
    for i, t in enumerate(batch):
        if t.shape != first.shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(first.shape)} at "
                f"entry 0 and {list(t.shape)} at entry {i}"
            )
        if t.device != first.device:
            raise RuntimeError(
                f"stack expects all tensors on one device, but got {first.device} at entry 0 "
                f"and {t.device} at entry {i}"
            )
    xp = backend.xp_of(first._array)
    dt = first._array.dtype
    if any(t._array.dtype != dt for t in batch):
        result = dtypes.result_type(*batch).np
        return _wrap(xp.stack([t._array.astype(result, copy=False) for t in batch]))
    with backend.device_context(first.device):
        return _wrap(xp.stack([t._array for t in batch]))


def collate_numpy_array_fn(batch, *, collate_fn_map=None) -> Tensor:
    elem = batch[0]
    if _STRING_OR_OBJECT.search(elem.dtype.str) is not None:
        raise TypeError(_ERR.format(elem.dtype))
    return collate([_as_tensor(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None) -> Tensor:
    return _as_tensor(np.array(batch))


def collate_float_fn(batch, *, collate_fn_map=None) -> Tensor:
    return _wrap(np.array(batch, dtype=np.float64))


def collate_int_fn(batch, *, collate_fn_map=None) -> Tensor:
    if all(isinstance(b, bool) for b in batch):
        return _wrap(np.array(batch, dtype=np.bool_))
    return _wrap(np.array(batch, dtype=np.int64))


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map: dict = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def collate(batch, *, collate_fn_map: dict | None = None):
    r"""Collate ``batch`` recursively, using ``collate_fn_map`` (type → function) for the
    leaves; Mappings, namedtuples and sequences are walked as in PyTorch."""
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type, fn in collate_fn_map.items():
            if isinstance(elem, collate_type):
                return fn(batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(
                    {k: collate([d[k] for d in batch], collate_fn_map=collate_fn_map) for k in elem}
                )
                return clone
            return elem_type(
                {k: collate([d[k] for d in batch], collate_fn_map=collate_fn_map) for k in elem}
            )
        except TypeError:
            return {k: collate([d[k] for d in batch], collate_fn_map=collate_fn_map) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(collate(list(s), collate_fn_map=collate_fn_map) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = [list(s) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return [collate(s, collate_fn_map=collate_fn_map) for s in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, s in enumerate(transposed):
                    clone[i] = collate(s, collate_fn_map=collate_fn_map)
                return clone
            return elem_type([collate(s, collate_fn_map=collate_fn_map) for s in transposed])
        except TypeError:
            return [collate(s, collate_fn_map=collate_fn_map) for s in transposed]
    raise TypeError(_ERR.format(elem_type))


def default_collate(batch):
    r"""Stack a list of samples into a batch: tensors and NumPy arrays are stacked into a
    tensor with a new first dim; Python floats become a float64 tensor, ints an int64 one,
    bools a bool one; strings stay a list; dicts, namedtuples, tuples and lists are
    collated field by field (tuples become lists, as in PyTorch).

    Example::

        >>> default_collate([(ember.zeros(3), 0), (ember.ones(3), 1)])
        [tensor([[0., 0., 0.], [1., 1., 1.]]), tensor([0, 1])]
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    r"""Turn NumPy arrays and scalars inside ``data`` into tensors, walking dicts,
    namedtuples and sequences; the ``collate_fn`` when batching is off (``batch_size=None``).

    Example::

        >>> default_convert({"x": np.zeros(2)})
        {'x': tensor([0., 0.], dtype=ember.float64)}
    """
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray | np.bool_ | np.number):
        if isinstance(data, np.ndarray) and _STRING_OR_OBJECT.search(data.dtype.str) is not None:
            return data
        return _as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({k: default_convert(v) for k, v in data.items()})
                return clone
            return elem_type({k: default_convert(v) for k, v in data.items()})
        except TypeError:
            return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, str | bytes):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
