"""``ember.cuda.is_available()`` / ``unavailable_reason()``, the NCCL probe and the errors
of CUDA requests on a host without CUDA, all on CPU: the probes run against a missing
CuPy or a fake ``cupy`` package written to a temporary directory."""

import sys
import textwrap
import warnings

import pytest

import ember
import ember.nn as nn
from ember.core import backend
from ember.distributed.backends import nccl

_FAKE_CUPY = {
    "__init__.py": """
        from . import cuda
        __version__ = "{version}"

        class _Pool:
            used = 0
            def used_bytes(self):
                return self.used
            def total_bytes(self):
                return self.used + 1024

        _pool = _Pool()

        def get_default_memory_pool():
            return _pool
    """,
    "cuda/__init__.py": """
        from . import runtime

        class MemoryHook:
            name = "MemoryHook"
            def __enter__(self):
                _hooks.append(self)
                return self

        _hooks = []

        class Device:
            def __init__(self, index=None):
                self.id = index
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return False
    """,
    "cuda/runtime.py": """
        import os

        class CUDARuntimeError(RuntimeError):
            pass

        def getDeviceCount():
            error = os.environ.get("FAKE_CUDA_ERROR")
            if error:
                raise CUDARuntimeError(error)
            return int(os.environ.get("FAKE_CUDA_DEVICES", "1"))

        def getDevice():
            return 0
    """,
    "cuda/nccl.py": """
        import warnings
        available = False
        warnings.warn(
            "\\nnccl library could not be loaded.\\n\\nReason: ImportError (libnccl.so.2)\\n"
        )
    """,
}


def _reset_probes():
    backend.cuda_unavailable_reason.cache_clear()
    backend._cupy_module = None
    nccl.unavailable_reason.cache_clear()


@pytest.fixture
def probes(monkeypatch):
    """Clean probe caches and no real CuPy modules in sys.modules, restored afterwards."""
    for name in [m for m in sys.modules if m == "cupy" or m.startswith("cupy.")]:
        monkeypatch.delitem(sys.modules, name)
    _reset_probes()
    yield monkeypatch
    _reset_probes()


@pytest.fixture
def fake_cupy(probes, tmp_path):
    """Install a fake ``cupy`` of a given version; returns its module after import."""

    def install(version="14.2.0", devices=1, error=None):
        for rel, text in _FAKE_CUPY.items():
            path = tmp_path / "cupy" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).format(version=version))
        probes.syspath_prepend(str(tmp_path))
        probes.setenv("FAKE_CUDA_DEVICES", str(devices))
        if error:
            probes.setenv("FAKE_CUDA_ERROR", error)
        else:
            probes.delenv("FAKE_CUDA_ERROR", raising=False)

    return install


def _assert_cuda_requests_raise(match):
    requests = [
        lambda: ember.zeros(2, device="cuda"),
        lambda: ember.tensor([1.0], device="cuda:1"),
        lambda: ember.ones(2).cuda(),
        lambda: ember.ones(2).to("cuda"),
        lambda: ember.ones(2).to("cuda:0", ember.float16),
        lambda: ember.randn(3, device="cuda"),
        lambda: nn.Linear(2, 2).cuda(),
        lambda: nn.Linear(2, 2).to("cuda"),
        lambda: ember.cuda.current_device(),
        lambda: ember.cuda.Event(),
    ]
    for request in requests:
        with pytest.raises(RuntimeError, match=match):
            request()


def test_without_cupy_every_cuda_request_says_why(probes):
    probes.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    assert not ember.cuda.is_available()
    reason = ember.cuda.unavailable_reason()
    assert "CuPy is not installed" in reason and "ember[cuda12]" in reason
    _assert_cuda_requests_raise("CUDA is not available: CuPy is not installed.*ember\\[cuda1")
    # queries answer without raising, as in PyTorch
    assert ember.cuda.device_count() == 0
    assert ember.cuda.memory_allocated() == ember.cuda.max_memory_allocated() == 0
    ember.cuda.reset_peak_memory_stats()
    ember.cuda.manual_seed(0)
    ember.cuda.manual_seed_all(0)
    assert ember.device("cuda").type == "cuda"  # a device object needs no CUDA
    assert ember.ones(2).to("cpu").device.type == "cpu"


def test_old_cupy_names_the_version_needed(fake_cupy):
    fake_cupy(version="13.6.0")
    reason = ember.cuda.unavailable_reason()
    assert "CuPy 13.6.0 is installed but ember needs CuPy >= 14" in reason
    _assert_cuda_requests_raise("CUDA is not available: CuPy 13.6.0 .* >= 14")


@pytest.mark.parametrize(
    "error,expected",
    [
        (
            "cudaErrorInsufficientDriver: CUDA driver version is insufficient",
            "no usable NVIDIA driver",
        ),
        ("cudaErrorNoDevice: no CUDA-capable device is detected", "no CUDA device is visible"),
        ("cudaErrorUnknown: unknown error", "the CUDA runtime failed to start"),
    ],
)
def test_runtime_errors_become_reasons(fake_cupy, error, expected):
    fake_cupy(error=error)
    reason = ember.cuda.unavailable_reason()
    assert expected in reason and error.split(":")[0] in reason
    _assert_cuda_requests_raise("CUDA is not available: " + expected)


def test_no_visible_device_mentions_cuda_visible_devices(fake_cupy, probes):
    fake_cupy(devices=0)
    probes.setenv("CUDA_VISIBLE_DEVICES", "")
    reason = ember.cuda.unavailable_reason()
    assert "no CUDA device is visible" in reason and "CUDA_VISIBLE_DEVICES=''" in reason


def test_nccl_is_not_probed_without_cuda(probes):
    probes.setitem(sys.modules, "cupy", None)
    reason = nccl.unavailable_reason()
    assert reason.startswith("CUDA is not available: CuPy is not installed")
    assert not ember.distributed.is_nccl_available()
    assert "cupy.cuda.nccl" not in sys.modules


def test_missing_nccl_is_reported_without_cupys_warning(fake_cupy):
    fake_cupy()
    assert ember.cuda.is_available() and ember.cuda.unavailable_reason() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CuPy's multi-line warning would fail the test
        reason = nccl.unavailable_reason()
    assert "could not load the NCCL library" in reason and "nvidia-nccl-cu13" in reason
    assert not ember.distributed.is_nccl_available()


def test_peak_memory_hook_tracks_the_pool(fake_cupy):
    fake_cupy()
    import cupy

    pool = cupy.get_default_memory_pool()
    assert ember.cuda.max_memory_allocated() == 0  # first use installs the hook
    (hook,) = cupy.cuda._hooks
    for used in (4096, 10_000, 2048):  # three allocations as CuPy reports them
        pool.used = used
        hook.malloc_postprocess(device_id=0, size=used, mem_size=used, mem_ptr=1, pmem_id=1)
    pool.used = 512  # frees lower the usage, not the peak
    assert ember.cuda.memory_allocated() == 512
    assert ember.cuda.memory_reserved() == 512 + 1024
    assert ember.cuda.max_memory_allocated() == 10_000
    ember.cuda.reset_peak_memory_stats()
    assert ember.cuda.max_memory_allocated() == 512
    assert backend.peak_memory_hook() is hook
