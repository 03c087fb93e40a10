"""ember's dtypes and PyTorch's type-promotion rules.

bfloat16's NumPy dtype comes from ``ml_dtypes``, whose import costs more than the rest of
``import ember``: it is imported when ``bfloat16.np`` is first read (a bfloat16 tensor is
made, or an array of that dtype is seen), not before.
"""

from __future__ import annotations

import numpy as np

# Python's numbers for isinstance (bool is an int): a tuple built once, where `int | float`
# would build a union object per call on hot paths
PYTHON_NUMBERS = (int, float)


class dtype:
    """A tensor element type; ``ember.float32`` and friends are its instances."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "_category")

    def __init__(self, name: str, np_dtype, category: int, itemsize: int | None = None):
        self.name = name
        if np_dtype is not None:  # None: made on first use (see __getattr__)
            self.np = np.dtype(np_dtype)
        self.is_floating_point = category == 2
        self.is_signed = category == 2 or (category == 1 and np.dtype(np_dtype).kind == "i")
        self.itemsize = self.np.itemsize if itemsize is None else itemsize
        self._category = category  # 0 bool, 1 integer, 2 floating

    def __getattr__(self, attr: str):
        # called only while a slot is unset: bfloat16's `np` before its first use
        if attr == "np" and self.name == "bfloat16":
            return _load_bfloat16()
        raise AttributeError(f"'ember.dtype' object has no attribute {attr!r}")

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))

    def to_real(self):
        return self


bool_ = dtype("bool", np.bool_, 0)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float16 = dtype("float16", np.float16, 2)
bfloat16 = dtype("bfloat16", None, 2, itemsize=2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
_FROM_NUMPY = {d.np: d for d in ALL if d is not bfloat16}  # bfloat16 joins when loaded
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update(half=float16, float=float32, double=float64, long=int64, int=int32, short=int16)

_default_float = float32


def _by_name(name: str) -> dtype:
    return _BY_NAME[name]


def _load_bfloat16() -> np.dtype:
    import ml_dtypes

    np_dtype = np.dtype(ml_dtypes.bfloat16)
    bfloat16.np = np_dtype
    _FROM_NUMPY[np_dtype] = bfloat16
    return np_dtype


def is_bfloat16(np_dtype: np.dtype) -> bool:
    """Whether a NumPy dtype is ml_dtypes' bfloat16 (without importing ml_dtypes)."""
    return np_dtype.kind == "V" and np_dtype.name == "bfloat16"


def from_numpy(np_dtype) -> dtype:
    try:
        return _FROM_NUMPY[np_dtype]
    except KeyError:
        np_dtype = np.dtype(np_dtype)
        d = _FROM_NUMPY.get(np_dtype)
        if d is None and is_bfloat16(np_dtype):  # an array made with ml_dtypes directly
            _load_bfloat16()
            d = bfloat16
        if d is None:
            raise TypeError(f"ember has no dtype for NumPy dtype {np_dtype}") from None
        return d


def finfo_eps(np_dtype: np.dtype) -> float:
    """Machine epsilon of a floating NumPy dtype, bfloat16 included."""
    if is_bfloat16(np_dtype):
        import ml_dtypes

        return float(ml_dtypes.finfo(np_dtype).eps)
    return float(np.finfo(np_dtype).eps)


def to_dtype(value) -> dtype:
    """Accept ember dtypes, NumPy dtypes, Python types and names like 'float32'."""
    if isinstance(value, dtype):
        return value
    if value is float:
        return _default_float
    if value is int:
        return int64
    if value is bool:
        return bool_
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    try:
        return from_numpy(np.dtype(value))
    except TypeError as err:
        raise TypeError(f"not a dtype: {value!r}") from err


def get_default_dtype() -> dtype:
    return _default_float


def set_default_dtype(d) -> None:
    global _default_float
    d = to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"default dtype must be floating point, got {d}")
    _default_float = d


def promote_types(a: dtype, b: dtype) -> dtype:
    """PyTorch's promote_types: the higher category wins outright."""
    if a is b:
        return a
    if a._category != b._category:
        return a if a._category > b._category else b
    if a._category == 2:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    return from_numpy(np.promote_types(a.np, b.np))


def scalar_dtype(value) -> dtype:
    if isinstance(value, bool | np.bool_):
        return bool_
    if isinstance(value, int | np.integer):
        return int64
    if isinstance(value, float | np.floating):
        return _default_float
    raise TypeError(f"unsupported scalar type {type(value).__name__}")


def result_type(*operands) -> dtype:
    """Result dtype of an op over tensors and Python scalars, by PyTorch's rules:
    a zero-dim tensor or scalar only raises the result's category, never its width."""
    dims = zeros = scalars = None
    for x in operands:
        array = getattr(x, "_array", None)  # a Tensor (tensor.py imports this module)
        if array is not None:
            d = from_numpy(array.dtype)
            if array.ndim:
                dims = d if dims is None else promote_types(dims, d)
            else:
                zeros = d if zeros is None else promote_types(zeros, d)
        elif x is not None:
            d = scalar_dtype(x)
            scalars = d if scalars is None else promote_types(scalars, d)
    result = dims
    for d in (zeros, scalars):
        if d is not None and (result is None or d._category > result._category):
            result = d
    return result
