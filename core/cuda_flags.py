"""``ember.backends``: switches for the CUDA libraries, with PyTorch's names. (Not to be
confused with ``core/backend.py``, devices and array modules, nor ``distributed/backends/``,
the communication backends.)

``ember.backends.cuda.matmul.allow_tf32`` lets cuBLAS run float32 GEMMs (matmul, linear,
einsum, and the im2col GEMMs of convolutions) on TF32 tensor cores; it is off by default,
as in PyTorch. Setting it takes effect on CuPy's compute type for float32 at once when CuPy
is already loaded, and through ``CUPY_TF32`` (read at CuPy's first float32 GEMM) otherwise.
``ember.backends.cudnn`` holds ``enabled``, ``allow_tf32``, ``benchmark`` and
``deterministic`` for code that sets them; ember's convolutions do not go through cuDNN.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import numpy as np

from .backend import cupy_or_none

_PRECISIONS = ("highest", "high", "medium")


def _apply_tf32(enabled: bool) -> None:
    os.environ["CUPY_TF32"] = "1" if enabled else "0"
    linalg = sys.modules.get("cupy._core._routines_linalg")
    if linalg is None:  # CuPy not imported yet: it reads CUPY_TF32 when it first needs it
        return
    if cupy_or_none() is None:
        return
    compute_type = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT
    linalg.set_compute_type(np.float32, compute_type)


class _CuBLASMatmul:
    """``ember.backends.cuda.matmul``: ``allow_tf32`` for cuBLAS float32 GEMMs."""

    def __init__(self):
        self._allow_tf32 = False

    @property
    def allow_tf32(self) -> bool:
        return self._allow_tf32

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"allow_tf32 must be a bool, got {type(value).__name__}")
        self._allow_tf32 = value
        _apply_tf32(value)

    def __repr__(self) -> str:
        return f"<ember.backends.cuda.matmul allow_tf32={self._allow_tf32}>"


class _CudaBackend:
    """``ember.backends.cuda``."""

    def __init__(self):
        self.matmul = _CuBLASMatmul()

    def is_built(self) -> bool:
        """Whether CuPy, ember's CUDA backend, is installed."""
        return importlib.util.find_spec("cupy") is not None


class _CudnnBackend:
    """``ember.backends.cudnn``: flags with PyTorch's names and defaults."""

    def __init__(self):
        self.enabled = True
        self.allow_tf32 = True
        self.benchmark = False
        self.deterministic = False

    def is_available(self) -> bool:
        return _cudnn_module() is not None

    def version(self) -> int | None:
        lib = _cudnn_module()
        return None if lib is None else lib.getVersion()


def _cudnn_module():
    cupy = cupy_or_none()
    if cupy is None:
        return None
    try:  # CuPy's optional cuDNN binding (absent from CuPy 14 on)
        return importlib.import_module("cupy.cuda.cudnn")
    except ImportError:
        return None


cuda = _CudaBackend()
cudnn = _CudnnBackend()


def set_float32_matmul_precision(precision: str) -> None:
    r"""``"highest"`` keeps float32 GEMMs in float32; ``"high"`` and ``"medium"`` allow
    TF32 (``ember.backends.cuda.matmul.allow_tf32``), as in PyTorch.

    Example::

        >>> ember.set_float32_matmul_precision("high")
    """
    if precision not in _PRECISIONS:
        raise RuntimeError(
            f"Invalid precision {precision!r}: expected one of {', '.join(_PRECISIONS)}"
        )
    global _precision
    _precision = precision
    cuda.matmul.allow_tf32 = precision != "highest"


def get_float32_matmul_precision() -> str:
    """The last precision set (``"highest"`` once ``allow_tf32`` was turned off)."""
    if not cuda.matmul.allow_tf32:
        return "highest"
    return _precision if _precision != "highest" else "high"


_precision = "highest"
