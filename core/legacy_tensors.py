"""PyTorch's legacy tensor types (``torch.FloatTensor``, ``torch.LongTensor``, ...): called,
they make a CPU tensor of their dtype from data or from sizes; ``isinstance`` checks dtype
and device, as in PyTorch."""

from __future__ import annotations

from . import creation, dtypes
from .tensor import Tensor


class _LegacyTensorType(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.device.type == "cpu"

    def __call__(cls, *args, device=None):
        if device is not None and str(device) != "cpu":
            raise RuntimeError(f"legacy constructor {cls.__name__} makes CPU tensors only")
        if len(args) == 1 and not isinstance(args[0], int):
            data = args[0]
            if isinstance(data, Tensor):
                if data.dtype != cls.dtype:
                    raise TypeError(
                        f"expected {cls.dtype} (got {data.dtype}) for {cls.__name__}(tensor)"
                    )
                return data.detach()
            if isinstance(data, tuple | list) or hasattr(data, "__array__"):
                return creation.tensor(data, dtype=cls.dtype)
            raise TypeError(f"{cls.__name__}(): expected sizes or data, got {type(data).__name__}")
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise TypeError(
                f"{cls.__name__}(): expected integer sizes or one sequence of data, got {args!r}"
            )
        return creation.empty(args if args else (0,), dtype=cls.dtype)


def _legacy(name: str, dt) -> type:
    return _LegacyTensorType(name, (), {"dtype": dt, "__module__": "ember"})


FloatTensor = _legacy("FloatTensor", dtypes.float32)
DoubleTensor = _legacy("DoubleTensor", dtypes.float64)
HalfTensor = _legacy("HalfTensor", dtypes.float16)
BFloat16Tensor = _legacy("BFloat16Tensor", dtypes.bfloat16)
LongTensor = _legacy("LongTensor", dtypes.int64)
IntTensor = _legacy("IntTensor", dtypes.int32)
ShortTensor = _legacy("ShortTensor", dtypes.int16)
CharTensor = _legacy("CharTensor", dtypes.int8)
ByteTensor = _legacy("ByteTensor", dtypes.uint8)
BoolTensor = _legacy("BoolTensor", dtypes.bool_)
