"""Convolution, pooling, optimizer updates and gradient clipping on ember's CPU threads:
the same bits on 2 and 3 threads as on one (work forced to split into many chunks), and
PyTorch's values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

import ember
import ember.core.nn.utils.clip_grad as clip_grad
import ember.core.parallel as parallel
from ember import nn
from ember.nn import functional as F


@pytest.fixture
def threads():
    """``run(fn, n)`` calls ``fn`` on ``n`` threads with every parallel loop split as
    finely as it allows; the thread count is restored afterwards."""
    before = ember.get_num_threads()

    def run(fn, n):
        saved = parallel.MIN_CHUNK_ELEMENTS
        parallel.MIN_CHUNK_ELEMENTS = 1 if n > 1 else saved
        ember.set_num_threads(n)
        try:
            return fn()
        finally:
            parallel.MIN_CHUNK_ELEMENTS = saved

    yield run
    ember.set_num_threads(before)


def _same_on_all_thread_counts(threads, fn, exact=True):
    """``fn()`` (a list of arrays) on 1, 2 and 3 threads; returns the 1-thread result."""
    ref = threads(fn, 1)
    for n in (2, 3):
        got = threads(fn, n)
        for a, b in zip(ref, got):
            if exact:
                np.testing.assert_array_equal(a, b, err_msg=f"{n} threads")
            else:
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=f"{n} threads")
    return ref


def _grads_of(fn, arrays, torch_lib=False):
    """Output and input gradients of ``sum(fn(*inputs) * v)`` with a fixed ``v``."""
    lib = torch if torch_lib else ember
    inputs = [lib.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    v = np.random.default_rng(7).standard_normal(tuple(out.shape)).astype(arrays[0].dtype)
    (out * lib.tensor(v)).sum().backward()
    return [out.detach().numpy()] + [t.grad.numpy() for t in inputs]


CONVS = [
    # (batch, in, out, size, kernel, kwargs): flat and strided layouts, channels-last
    # input gradient, groups, padding, dilation, blocks of several images (batch 35)
    (5, 3, 8, (9, 9), (3, 3), {}),
    (7, 8, 4, (8, 10), (3, 2), {"padding": 1}),
    (3, 4, 6, (9, 9), (3, 3), {"stride": 2, "padding": (1, 2)}),
    (5, 4, 6, (10, 10), (3, 3), {"dilation": 2, "groups": 2}),
    (35, 2, 3, (6, 6), (3, 3), {"padding": 1}),
    (33, 1, 4, (7, 7), (2, 2), {"stride": (1, 2)}),
]


@pytest.mark.parametrize("n, c, o, size, kernel, kw", CONVS)
def test_conv2d_threads_match_one_thread_and_torch(threads, n, c, o, size, kernel, kw):
    rng = np.random.default_rng(0)
    groups = kw.get("groups", 1)
    x = rng.standard_normal((n, c, *size)).astype(np.float32)
    w = rng.standard_normal((o, c // groups, *kernel)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    ours = _same_on_all_thread_counts(
        threads, lambda: _grads_of(lambda *t: F.conv2d(*t, **kw), [x, w, b])
    )
    ref = _grads_of(lambda *t: torch.nn.functional.conv2d(*t, **kw), [x, w, b], torch_lib=True)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4)


def test_conv1d_float64_threads_match_torch(threads):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((9, 4, 23)), rng.standard_normal((6, 4, 5))
    ours = _same_on_all_thread_counts(
        threads, lambda: _grads_of(lambda *t: F.conv1d(*t, padding=2), [x, w])
    )
    ref = _grads_of(lambda *t: torch.nn.functional.conv1d(*t, padding=2), [x, w], torch_lib=True)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)


def test_conv_restores_the_blas_thread_count(threads):
    x = ember.randn(8, 3, 10, 10)
    w = ember.randn(4, 3, 3, 3)
    threads(lambda: F.conv2d(x, w), 2)
    assert all(lib["num_threads"] == 2 for lib in threadpool_info() if lib["user_api"] == "blas")


POOLS = [
    (lambda t, lib: lib.nn.functional.max_pool2d(t, 2), False),
    (lambda t, lib: lib.nn.functional.max_pool2d(t, 3, 2, padding=1, ceil_mode=True), False),
    (lambda t, lib: lib.nn.functional.max_pool2d(t, (2, 3), dilation=(2, 1)), False),
    (lambda t, lib: lib.nn.functional.avg_pool2d(t, 2), False),
    (lambda t, lib: lib.nn.functional.avg_pool2d(t, 3, 2, 1, count_include_pad=False), False),
    (lambda t, lib: lib.nn.functional.avg_pool2d(t, 3, 1, 1, ceil_mode=True), True),
    (lambda t, lib: lib.nn.functional.max_pool1d(t.flatten(2), 3, 2), False),
    (lambda t, lib: lib.nn.functional.avg_pool1d(t.flatten(2), 4, 3, 1), True),
]


@pytest.mark.parametrize("pool, transposed", POOLS)
def test_pool_threads_match_one_thread_and_torch(threads, pool, transposed):
    # transposed: a non-contiguous input, split over images instead of planes
    x = np.random.default_rng(2).standard_normal((5, 3, 12, 12)).astype(np.float32)

    def fn(t):
        return pool(t.transpose(2, 3) if transposed else t, ember)

    ours = _same_on_all_thread_counts(threads, lambda: _grads_of(fn, [x]))
    ref = _grads_of(
        lambda t: pool(t.transpose(2, 3) if transposed else t, torch), [x], torch_lib=True
    )
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-6)


def test_max_pool_indices_and_nan_on_threads(threads):
    x = np.random.default_rng(3).standard_normal((3, 5, 8, 8)).astype(np.float32)
    x[1, 2, 3, 4] = np.nan

    def fn():
        y, idx = F.max_pool2d(ember.tensor(x), 2, return_indices=True)
        return [y.numpy(), idx.numpy()]

    ours = _same_on_all_thread_counts(threads, fn)
    y, idx = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(ours[0], y.numpy())
    np.testing.assert_array_equal(ours[1], idx.numpy())


OPTIMIZERS = [
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "maximize": True, "weight_decay": 0.05}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "maximize": True}),
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.02}),
]


def _trajectory(lib, name, kwargs, values, grads):
    params = [lib.tensor(v.copy(), requires_grad=True) for v in values]
    opt = getattr(lib.optim, name)(params, **kwargs)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = lib.tensor(g)
        opt.step()
    return [p.detach().numpy().copy() for p in params]


@pytest.mark.parametrize("name, kwargs", OPTIMIZERS)
def test_optimizer_threads_match_one_thread_and_torch(threads, name, kwargs):
    rng = np.random.default_rng(4)
    shapes = [(37, 29), (7,), (5, 4, 3)]
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    ours = _same_on_all_thread_counts(
        threads, lambda: _trajectory(ember, name, kwargs, values, grads)
    )
    ref = _trajectory(torch, name, kwargs, values, grads)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)


def test_optimizer_non_contiguous_parameter_on_threads(threads):
    # a parameter that is a transposed view cannot be updated in flat chunks
    base = np.random.default_rng(5).standard_normal((9, 11)).astype(np.float32)

    def run(lib):
        p = lib.tensor(base.copy()).t().requires_grad_()
        opt = lib.optim.Adam([p], lr=0.1)
        p.grad = lib.tensor(base.T.copy() * 0.5)
        opt.step()
        return [p.detach().numpy().copy()]

    ours = _same_on_all_thread_counts(threads, lambda: run(ember))
    np.testing.assert_allclose(ours[0], run(torch)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("norm_type", [2.0, float("inf"), 1.0, 3.0])
def test_clip_grad_norm_threads_match_one_thread_and_torch(threads, monkeypatch, norm_type):
    monkeypatch.setattr(clip_grad, "_NORM_BLOCK", 50)  # several blocks per gradient
    rng = np.random.default_rng(6)
    shapes = [(17, 13), (3,), (120,), (2, 2, 31)]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads[1][:] = 0

    def run(lib):
        params = [lib.zeros(s, requires_grad=True) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = lib.tensor(g)
        total = lib.nn.utils.clip_grad_norm_(params, 0.5, norm_type=norm_type)
        return [np.asarray(total.item())] + [p.grad.numpy().copy() for p in params]

    ours = _same_on_all_thread_counts(threads, lambda: run(ember))
    for a, r in zip(ours, run(torch)):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-7)


def test_cnn_training_steps_on_threads_match_torch(threads):
    """The benchmark's convnet (smaller) for three Adam steps, batch 9."""

    def run(lib):
        lib.manual_seed(0)
        model = lib.nn.Sequential(
            lib.nn.Conv2d(1, 8, 3),
            lib.nn.ReLU(),
            lib.nn.Conv2d(8, 16, 3),
            lib.nn.ReLU(),
            lib.nn.MaxPool2d(2),
            lib.nn.Flatten(),
            lib.nn.Linear(16 * 5 * 5, 10),
        )
        return model

    t_model = run(torch)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((9, 1, 14, 14)).astype(np.float32)
    y = rng.integers(0, 10, 9)

    def train(lib, model):
        opt = lib.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(3):
            opt.zero_grad()
            lib.nn.functional.cross_entropy(model(lib.tensor(x)), lib.tensor(y)).backward()
            opt.step()
        return [p.detach().numpy().copy() for p in model.parameters()]

    start = {k: v.detach().numpy() for k, v in t_model.state_dict().items()}

    def ours():
        model = run(ember)
        model.load_state_dict({k: ember.tensor(v) for k, v in start.items()})
        return train(ember, model)

    got = _same_on_all_thread_counts(threads, ours, exact=False)
    for a, r in zip(got, train(torch, t_model)):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)


def test_conv_module_odd_batch_backward_on_threads(threads):
    conv = nn.Conv2d(3, 5, 3, padding=1)
    x = np.random.default_rng(9).standard_normal((11, 3, 7, 7)).astype(np.float32)

    def fn():
        conv.zero_grad()
        inp = ember.tensor(x, requires_grad=True)
        out = conv(inp)
        (out * out).sum().backward()
        return [inp.grad.numpy(), conv.weight.grad.numpy(), conv.bias.grad.numpy()]

    _same_on_all_thread_counts(threads, fn)


@pytest.mark.parametrize(
    "kwargs",
    [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": (1, 2, 1)}],
)
def test_max_pool3d_threads_match_one_thread_and_torch(threads, kwargs):
    x = np.random.default_rng(10).standard_normal((3, 5, 6, 7, 8)).astype(np.float32)

    def run(lib):
        t = lib.tensor(x, requires_grad=True)
        y, idx = lib.nn.functional.max_pool3d(t, return_indices=True, **kwargs)
        y.sum().backward()
        return [y.detach().numpy(), idx.numpy(), t.grad.numpy()]

    ours = _same_on_all_thread_counts(threads, lambda: run(ember))
    for a, r in zip(ours, run(torch)):
        np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize(
    "n, kw",
    [(5, {"stride": 2, "padding": 1, "output_padding": 1}), (35, {"groups": 2, "dilation": 2})],
)
def test_conv_transpose2d_threads_match_one_thread_and_torch(threads, n, kw):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3 * kw.get("groups", 1)).astype(np.float32)
    ours = _same_on_all_thread_counts(
        threads, lambda: _grads_of(lambda *t: F.conv_transpose2d(*t, **kw), [x, w, b])
    )
    ref = _grads_of(
        lambda *t: torch.nn.functional.conv_transpose2d(*t, **kw), [x, w, b], torch_lib=True
    )
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4)
