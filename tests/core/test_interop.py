"""Zero-copy exchange with PyTorch and NumPy: DLPack, ``__array__``,
``__cuda_array_interface__`` (CUDA only), and ``ember.backends`` flags."""

import os

import numpy as np
import pytest
import torch

import ember
import ember.backends as backends


def test_from_dlpack_shares_memory_with_torch():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    e = ember.from_dlpack(t)
    assert e.dtype is ember.float32 and tuple(e.shape) == (2, 3)
    e.data[0, 1] = 40.0
    assert t[0, 1].item() == 40.0
    t[1, 2] = -1.0
    assert float(e[1, 2]) == -1.0


def test_torch_from_dlpack_shares_memory_with_ember():
    e = ember.arange(5, dtype=ember.int64)
    t = torch.from_dlpack(e)
    assert t.dtype is torch.int64
    t[2] = 99
    assert e.tolist() == [0, 1, 99, 3, 4]


def test_dlpack_round_trip_keeps_strides_and_dtype():
    e = ember.arange(12.0).reshape(3, 4).t()
    t = torch.from_dlpack(e)
    assert t.shape == (4, 3) and t.stride() == (1, 4)
    np.testing.assert_array_equal(t.numpy(), e.numpy())
    back = ember.from_dlpack(t)
    assert back.data_ptr() == e.data_ptr()


def test_numpy_interop():
    e = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(e)
    assert np.shares_memory(a, e.data)
    np.testing.assert_array_equal(np.asarray(e, dtype=np.int32), [[1, 2], [3, 4]])
    f = ember.from_numpy(a)
    a[0, 0] = 7.0
    assert float(f[0, 0]) == 7.0 and float(e[0, 0]) == 7.0


def test_cuda_array_interface_absent_on_cpu_like_torch():
    e, t = ember.ones(3), torch.ones(3)
    assert hasattr(e, "__cuda_array_interface__") is hasattr(t, "__cuda_array_interface__")
    assert not hasattr(e, "__cuda_array_interface__")
    with pytest.raises(AttributeError, match="non-CUDA tensor"):
        e.__cuda_array_interface__  # noqa: B018


def test_backends_flags_have_torch_defaults_and_set_cupy_tf32(monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "0")
    b, tb = backends, torch.backends
    assert b.cuda.matmul.allow_tf32 is tb.cuda.matmul.allow_tf32 is False
    assert b.cudnn.allow_tf32 is tb.cudnn.allow_tf32
    assert b.cudnn.benchmark is tb.cudnn.benchmark
    assert b.cudnn.deterministic is tb.cudnn.deterministic
    assert backends.get_float32_matmul_precision() == torch.get_float32_matmul_precision()
    try:
        b.cuda.matmul.allow_tf32 = True
        assert os.environ["CUPY_TF32"] == "1"
        assert backends.get_float32_matmul_precision() == "high"
        backends.set_float32_matmul_precision("highest")
        assert b.cuda.matmul.allow_tf32 is False and os.environ["CUPY_TF32"] == "0"
        backends.set_float32_matmul_precision("medium")
        assert b.cuda.matmul.allow_tf32 is True
    finally:
        b.cuda.matmul.allow_tf32 = False
    with pytest.raises(TypeError, match="allow_tf32 must be a bool, got int"):
        b.cuda.matmul.allow_tf32 = 1
    with pytest.raises(RuntimeError, match="Invalid precision 'low'"):
        backends.set_float32_matmul_precision("low")
    b.cudnn.benchmark = True
    assert ember.backends.cudnn.benchmark is True  # the attribute path too
    b.cudnn.benchmark = False
