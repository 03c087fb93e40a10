"""PyTorch idioms from real training scripts, written as those scripts write them, run on
ember and (where it can) on torch with the same numbers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import ember


@pytest.fixture(params=["ember", "torch"])
def lib(request):
    return ember if request.param == "ember" else torch


def _np(t):
    return t.detach().cpu().numpy()


# -- Tensor.data ------------------------------------------------------------------------------


def test_hand_written_sgd_through_data_matches_torch():
    # the polynomial-regression tutorial's update: p.data.add_(p.grad, alpha=-lr)
    results = []
    for lib in (ember, torch):
        lib.manual_seed(0)
        x = lib.tensor(np.linspace(-1, 1, 50).reshape(-1, 1), dtype=lib.float64)
        y = 0.5 + 2 * x - x**3
        w = lib.tensor(np.full((4, 1), 0.1), dtype=lib.float64, requires_grad=True)
        b = lib.zeros(1, dtype=lib.float64, requires_grad=True)
        feats = lib.cat([x**i for i in range(1, 5)], 1)
        losses = []
        for _ in range(30):
            loss = ((feats @ w + b - y) ** 2).mean()
            loss.backward()
            for p in (w, b):
                p.data.add_(p.grad.data, alpha=-0.1)
                p.grad.data.zero_()
            losses.append(f"{loss:.10f}")
        results.append((losses, _np(w)))
    assert results[0][0] == results[1][0]
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)


def test_data_is_a_detached_alias_sharing_memory(lib):
    p = lib.ones(3, requires_grad=True)
    d = p.data
    assert isinstance(d, lib.Tensor) and not d.requires_grad and d.grad_fn is None
    d.mul_(4)
    assert p.tolist() == [4.0, 4.0, 4.0] and p.requires_grad
    p.data.zero_()
    p.data.copy_(lib.tensor([1.0, 2.0, 3.0]))
    snapshot = p.data.clone()
    p.data[0] = 9.0
    assert snapshot.tolist() == [1.0, 2.0, 3.0] and p.tolist() == [9.0, 2.0, 3.0]
    assert p.data.cpu().numpy().tolist() == [9.0, 2.0, 3.0]


def test_changes_through_data_are_not_seen_by_autograd_but_detach_s_are(lib):
    x = lib.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()  # saves its output
    y.data.zero_()  # not recorded: backward uses the zeros, as in PyTorch
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    z = x.exp()
    z.detach().zero_()  # shares the version counter: backward must refuse
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_assigning_data_swaps_storage_and_keeps_identity(lib):
    layer = (ember.nn if lib is ember else torch.nn).Linear(3, 2)
    weight = layer.weight
    layer.weight.data = lib.zeros(5, 3)
    assert layer.weight is weight and tuple(layer.weight.shape) == (5, 3)
    assert isinstance(layer.weight, (ember.nn if lib is ember else torch.nn).Parameter)
    assert layer.weight.requires_grad and float(layer.weight.detach().sum()) == 0.0
    with pytest.raises(TypeError):
        layer.weight.data = np.zeros((5, 3))


def test_evaluation_loop_idiom_torch_max_of_outputs_data(lib):
    outputs = lib.tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.1]], requires_grad=True) * 2
    labels = lib.tensor([1, 2])
    _, predicted = lib.max(outputs.data, 1)
    correct = (predicted == labels).sum().item()
    assert predicted.tolist() == [1, 0] and correct == 1
    assert outputs.data.max(1)[1].tolist() == [1, 0]
    assert outputs.data.size(0) == 2


# -- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [".4f", "+.2f", ".3e", "", ">10.1f"])
def test_format_of_a_zero_dim_tensor_matches_torch(spec):
    assert format(ember.tensor(3.14159), spec) == format(torch.tensor(3.14159), spec)
    loss = ember.tensor([0.25, 0.75], requires_grad=True).mean()
    assert f"{loss:.4f}" == "0.5000"
    assert "{:+.2f}".format(ember.tensor(2.0)) == "+2.00"  # noqa: UP032  (str.format idiom)


def test_format_of_a_vector_needs_an_empty_spec_as_in_torch():
    for lib in (ember, torch):
        with pytest.raises(TypeError, match="unsupported format string"):
            f"{lib.tensor([1.5]):.2f}"
    assert f"{ember.tensor([1.5, 2.0])}" == str(ember.tensor([1.5, 2.0]))


# -- names real scripts use -------------------------------------------------------------------


def test_legacy_tensor_constructors_match_torch():
    for name in ("LongTensor", "FloatTensor", "DoubleTensor", "IntTensor", "BoolTensor"):
        e, t = getattr(ember, name), getattr(torch, name)
        data = [1, 0, 2]
        assert str(e(data).dtype).split(".")[-1] == str(t(data).dtype).split(".")[-1]
        assert e(data).tolist() == t(data).tolist()
        assert tuple(e(2, 3).shape) == tuple(t(2, 3).shape) == (2, 3)
        assert isinstance(e(data), e) and isinstance(e(data), ember.Tensor)
    assert not isinstance(ember.zeros(2), ember.LongTensor)
    assert ember.ByteTensor([255]).dtype == ember.uint8
    with pytest.raises(TypeError):
        ember.FloatTensor("abc")


def test_compile_returns_the_model_and_says_so_once(caplog):
    model = ember.nn.Linear(2, 2)
    with caplog.at_level(logging.INFO, logger="ember"):
        assert ember.compile(model) is model
        assert ember.compile(model, mode="max-autotune") is model

        @ember.compile
        def f(x):
            return x + 1

        @ember.compile(fullgraph=True)
        def g(x):
            return x * 2

    assert f(ember.tensor(1.0)).item() == 2.0 and g(ember.tensor(1.0)).item() == 2.0
    assert sum("runs eagerly" in r.message for r in caplog.records) <= 1


def test_thread_count_is_shared_with_the_blas():
    from threadpoolctl import threadpool_info

    before = ember.get_num_threads()
    try:
        ember.set_num_threads(1)
        assert ember.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        ember.set_num_threads(before)
    with pytest.raises(ValueError, match="positive integer"):
        ember.set_num_threads(0)


def test_matmul_precision_round_trips():
    before = ember.get_float32_matmul_precision()
    try:
        for precision in ("high", "medium", "highest"):
            ember.set_float32_matmul_precision(precision)
            assert ember.get_float32_matmul_precision() == precision
    finally:
        ember.set_float32_matmul_precision(before)


def test_accelerator_on_a_host_without_one():
    if ember.cuda.is_available():
        pytest.skip("this host has CUDA")
    assert ember.accelerator.is_available() is torch.accelerator.is_available() is False
    assert ember.accelerator.current_accelerator() is None
    assert ember.accelerator.device_count() == 0
    ember.accelerator.synchronize()
    with pytest.raises(RuntimeError, match="none is available"):
        ember.accelerator.current_device_index()


def test_cuda_names_on_a_host_without_cuda():
    if ember.cuda.is_available():
        pytest.skip("this host has CUDA")
    ember.cuda.manual_seed(0)  # silently nothing, as in PyTorch
    ember.cuda.manual_seed_all(0)
    assert ember.cuda.is_bf16_supported() is False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = ember.cuda.amp.GradScaler()
        with ember.cuda.amp.autocast():
            pass
    messages = [str(w.message) for w in caught]
    assert any("ember.cuda.amp.GradScaler(args...)` is deprecated" in m for m in messages)
    assert any("ember.cuda.amp.autocast(args...)` is deprecated" in m for m in messages)
    assert any("CUDA is not available.  Disabling." in m for m in messages)
    assert not scaler.is_enabled()
    from ember.cuda.amp import GradScaler, autocast  # noqa: F401  (the import path works)


def _spawned_worker(rank, directory, fail_rank):
    if rank == fail_rank:
        raise ValueError(f"rank {rank} failed on purpose")
    with open(os.path.join(directory, f"{rank}.txt"), "w") as f:
        f.write(str(rank * 10))


def test_multiprocessing_spawn_runs_each_rank_and_fails_as_a_group(tmp_path):
    ember.multiprocessing.spawn(_spawned_worker, args=(str(tmp_path), -1), nprocs=2)
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == ["0", "10"]
    with pytest.raises(ember.multiprocessing.ProcessRaisedException, match="failed on purpose"):
        ember.multiprocessing.spawn(_spawned_worker, args=(str(tmp_path), 1), nprocs=2)
    assert ember.multiprocessing.Queue is not None  # the standard library's names too


# -- quiet and random as PyTorch --------------------------------------------------------------


def _run(code: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, timeout=60
    )


def test_numpy_float_warnings_stay_inside_ember_ops():
    code = (
        "import ember, numpy\n"
        "x = ember.zeros(2)\n"
        "print(ember.log(x).tolist(), (ember.ones(1) / 0).tolist(), ember.exp(x + 1e4).tolist())\n"
        "numpy.log(numpy.zeros(1))\n"  # the user's own NumPy keeps its warnings
    )
    result = _run(code, "-W", "error::RuntimeWarning")
    assert result.stdout.startswith("[-inf, -inf] [inf] [inf, inf]"), result.stderr
    assert "RuntimeWarning: divide by zero encountered in log" in result.stderr
    assert "ember" not in result.stderr.split("RuntimeWarning")[0].splitlines()[-1]


def test_numpy_float_warnings_stay_inside_ember_ops_under_pytest(tmp_path):
    # pytest runs its collection and each test inside warnings.catch_warnings, which drops
    # filters added there: a suite run with warnings as errors must still pass, as on torch
    (tmp_path / "test_user.py").write_text(
        "import ember, numpy, pytest\n"
        "def test_ops():\n"
        "    x = ember.zeros(2, requires_grad=True)\n"
        "    ember.log(x).sum().backward()\n"
        "    assert ember.exp(x + 1e4).tolist() == [float('inf')] * 2\n"
        "def test_again():\n"
        "    assert (ember.ones(1) / 0).tolist() == [float('inf')]\n"
        "def test_after_the_test_turns_every_warning_into_an_error():\n"
        "    import warnings\n"
        "    x = ember.zeros(1) + 0\n"
        "    warnings.simplefilter('error')\n"
        "    assert ember.log(x).tolist() == [float('-inf')]\n"
        "def test_users_numpy_still_warns():\n"
        "    with pytest.warns(RuntimeWarning, match='divide by zero'):\n"
        "        numpy.log(numpy.zeros(1))\n"
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-W", "error::RuntimeWarning", "test_user.py"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "4 passed" in result.stdout


def test_unseeded_runs_differ_and_manual_seed_repeats():
    unseeded = {_run("import ember; print(ember.rand(4).tolist())").stdout for _ in range(2)}
    assert len(unseeded) == 2
    code = "import ember; ember.manual_seed(3); print(ember.rand(4).tolist(), ember.initial_seed())"
    seeded = {_run(code).stdout for _ in range(2)}
    assert len(seeded) == 1 and seeded.pop().strip().endswith(" 3")


def test_malloc_tuning_is_applied_once_and_can_be_turned_off():
    from ember.core import allocator

    if allocator.platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    assert allocator.tune({}) is True
    assert allocator.tune({"EMBER_MALLOC_TUNING": "0"}) is False
    assert allocator.tune({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False


def test_numpy_huge_page_advice_follows_pytorch_default():
    from ember.core import allocator

    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        from numpy.core.multiarray import _set_madvise_hugepage
    before = _set_madvise_hugepage(False)
    try:
        assert allocator.huge_pages({}) is False
        assert _set_madvise_hugepage(False) is False
        assert allocator.huge_pages({"C10_THP_MEM_ALLOC_ENABLE": "1"}) is True
        assert _set_madvise_hugepage(True) is True
        assert allocator.huge_pages({"C10_THP_MEM_ALLOC_ENABLE": "yes"}) is False
        assert allocator.huge_pages({"EMBER_MALLOC_TUNING": "0"}) is None
        assert _set_madvise_hugepage(True) is False  # left as it was
    finally:
        _set_madvise_hugepage(before)
    out = _run(
        "import ember, numpy; ember.zeros(1); "
        "from numpy._core.multiarray import _set_madvise_hugepage as s; print(s(True))"
    )
    assert out.stdout.strip() == "False"  # ember's first use turned it off


def test_stride_of_views_matches_torch():
    base = np.arange(24.0).reshape(2, 3, 4)
    for view in (
        lambda t: t,
        lambda t: t.transpose(0, 2),
        lambda t: t[:, 1:, ::2],
        lambda t: t[0, :, 1:2].expand(3, 5),
        lambda t: t.permute(1, 0, 2)[1],
    ):
        got, want = view(ember.tensor(base)), view(torch.tensor(base))
        assert got.stride() == want.stride()
        assert [got.stride(d) for d in range(-got.dim(), got.dim())] == [
            want.stride(d) for d in range(-want.dim(), want.dim())
        ]
    with pytest.raises(IndexError, match=r"range of \[-3, 2\], but got 3"):
        ember.tensor(base).stride(3)
