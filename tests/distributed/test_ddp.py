"""DistributedDataParallel across MPI ranks (``mpiexec -n 2|3 python -m pytest --with-mpi``).

The equivalence tests train a model for 10 steps with DDP, each rank on its 1/N shard
of every batch, and train a reference copy inside each rank, in one process, on all N
shards (gradients summed over shards of the per-shard mean loss / N, which for models
without batch statistics is exactly the full-batch mean). All ranks must end with
identical parameters, equal to the reference.
"""

import numpy as np
import pytest

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
import ember.optim as optim
from ember.distributed import comm_hooks
from ember.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi(min_size=2)
STEPS = 10


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.group.WORLD


class MLP(nn.Module):
    def __init__(self, width=16, extra=False, batchnorm=False):
        super().__init__()
        self.fc1 = nn.Linear(6, width)
        self.bn = nn.BatchNorm1d(width) if batchnorm else None
        self.fc2 = nn.Linear(width, width)
        self.head = nn.Linear(width, 3)
        self.side = nn.Linear(width, 3) if extra else None  # used on some ranks only
        self.unused = nn.Linear(4, 4) if extra else None  # never used

    def forward(self, x, use_side=False):
        h = self.fc1(x)
        if self.bn is not None:
            h = self.bn(h)
        h = self.fc2(h.relu()).tanh()
        out = self.head(h)
        if use_side:
            out = out + self.side(h)
        return out


def make(model_fn, dtype, seed=0):
    ember.manual_seed(seed)
    model = model_fn().to(dtype)
    ember.manual_seed(seed)
    reference = model_fn().to(dtype)
    reference.load_state_dict(model.state_dict())
    return model, reference


def batches(dtype, n, per_rank=4, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((n * per_rank, 6))
        y = rng.standard_normal((n * per_rank, 3))
        xs = [ember.tensor(x[r * per_rank : (r + 1) * per_rank], dtype=dtype) for r in range(n)]
        ys = [ember.tensor(y[r * per_rank : (r + 1) * per_rank], dtype=dtype) for r in range(n)]
        yield xs, ys


def reference_backward(model, xs, ys, kwargs_for):
    """Sum over shards of (shard mean loss) / N; the shards in reverse so that for
    BatchNorm the module ends with the running stats rank 0 ends with."""
    n = len(xs)
    start = [b._array.copy() for b in model.buffers()]
    for r in reversed(range(n)):
        for b, value in zip(model.buffers(), start):  # every rank starts from rank 0's
            b._array[...] = value
        out = model(xs[r], **(kwargs_for or {}).get(r, {}))
        (F.mse_loss(out, ys[r]) / n).backward()


def flat_params(model):
    return np.concatenate([p._array.ravel().astype(np.float64) for p in model.parameters()])


def assert_same_everywhere_and_equal(model, reference, tol):
    mine = flat_params(model)
    everyone = [ember.zeros(mine.size, dtype=ember.float64) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, ember.from_numpy(mine))
    for other in everyone:
        np.testing.assert_array_equal(other._array, mine)  # replicas bit-identical
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p._array, q._array, rtol=tol, atol=tol, err_msg=name)


def train(ddp, model, reference, dtype, lr=0.05, no_sync_steps=0, kwargs_for=None, **opt):
    rank, n = dist.get_rank(), dist.get_world_size()
    kwargs_for = kwargs_for or {}
    opt_ddp = optim.SGD(ddp.parameters(), lr=lr, momentum=0.9, **opt)
    opt_ref = optim.SGD(reference.parameters(), lr=lr, momentum=0.9, **opt)
    micro = iter(batches(dtype, n, steps=STEPS * (no_sync_steps + 1)))
    for _ in range(STEPS):
        opt_ddp.zero_grad()
        opt_ref.zero_grad()
        for k in range(no_sync_steps + 1):
            xs, ys = next(micro)
            if k < no_sync_steps:
                with ddp.no_sync():
                    F.mse_loss(ddp(xs[rank], **kwargs_for.get(rank, {})), ys[rank]).backward()
            else:
                F.mse_loss(ddp(xs[rank], **kwargs_for.get(rank, {})), ys[rank]).backward()
            reference_backward(reference, xs, ys, kwargs_for)
        opt_ddp.step()
        opt_ref.step()


@pytest.mark.parametrize("bucket_cap_mb", [1 / 1024, 0.01, 25, 100])
@pytest.mark.parametrize("as_view", [False, True])
def test_equivalence_float64_buckets(bucket_cap_mb, as_view):
    model, reference = make(MLP, ember.float64)
    ddp = DDP(model, bucket_cap_mb=bucket_cap_mb, gradient_as_bucket_view=as_view)
    if bucket_cap_mb < 0.01:
        assert len(ddp.buckets) >= 2
    train(ddp, model, reference, ember.float64)
    assert ddp._rebuilt
    assert_same_everywhere_and_equal(model, reference, 1e-10)
    if as_view:
        for p in model.parameters():
            assert any(np.shares_memory(p.grad._array, b.buffer) for b in ddp.buckets)


def test_equivalence_batchnorm_mlp():
    model, reference = make(lambda: MLP(batchnorm=True), ember.float64)
    ddp = DDP(model, bucket_cap_mb=1 / 1024)
    train(ddp, model, reference, ember.float64)
    assert_same_everywhere_and_equal(model, reference, 1e-10)
    if dist.get_rank() == 0:  # buffers follow rank 0 (broadcast before each forward)
        for (name, b), c in zip(model.named_buffers(), reference.buffers()):
            np.testing.assert_allclose(b._array, c._array, rtol=1e-10, atol=1e-12, err_msg=name)
    assert int(model.bn.num_batches_tracked.item()) == STEPS


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        h = self.pool(self.conv1(x).relu())
        return self.fc(self.conv2(h).relu().flatten(1))


@pytest.mark.parametrize("dtype, tol", [(ember.float64, 1e-10), (ember.float32, 1e-5)])
def test_equivalence_cnn_full_batch(dtype, tol):
    """The reference here is literally one process on the full batch."""
    rank, n = dist.get_rank(), dist.get_world_size()
    model, reference = make(CNN, dtype)
    ddp = DDP(model, bucket_cap_mb=1 / 1024, gradient_as_bucket_view=True)
    opt, opt_ref = optim.SGD(ddp.parameters(), lr=0.05), optim.SGD(reference.parameters(), lr=0.05)
    rng = np.random.default_rng(3)
    for _ in range(STEPS):
        x = ember.tensor(rng.standard_normal((2 * n, 1, 8, 8)), dtype=dtype)
        y = ember.tensor(rng.integers(0, 3, 2 * n))
        opt.zero_grad()
        F.cross_entropy(ddp(x[2 * rank : 2 * rank + 2]), y[2 * rank : 2 * rank + 2]).backward()
        opt.step()
        opt_ref.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        opt_ref.step()
    assert_same_everywhere_and_equal(model, reference, tol)


def test_equivalence_float32():
    model, reference = make(MLP, ember.float32)
    ddp = DDP(model, bucket_cap_mb=1 / 1024)
    train(ddp, model, reference, ember.float32)
    assert_same_everywhere_and_equal(model, reference, 1e-5)


def test_equivalence_no_sync_accumulation():
    model, reference = make(MLP, ember.float64)
    ddp = DDP(model, bucket_cap_mb=1 / 1024)
    train(ddp, model, reference, ember.float64, no_sync_steps=2)
    assert_same_everywhere_and_equal(model, reference, 1e-10)


@pytest.mark.parametrize("static_graph", [False, True])
def test_find_unused_parameters(static_graph):
    model, reference = make(lambda: MLP(extra=True), ember.float64)
    ddp = DDP(model, find_unused_parameters=True, bucket_cap_mb=1 / 1024, static_graph=static_graph)
    side_on_rank0 = {0: {"use_side": True}}
    train(ddp, model, reference, ember.float64, kwargs_for=side_on_rank0)
    assert_same_everywhere_and_equal(model, reference, 1e-10)
    assert model.unused.weight.grad is None  # unused on every rank: left alone, like torch
    np.testing.assert_allclose(
        model.side.weight.grad._array, reference.side.weight.grad._array, 1e-10
    )


def test_unused_parameter_without_find_unused_raises_on_every_rank():
    model, _ = make(lambda: MLP(extra=True), ember.float64)
    ddp = DDP(model)
    x = ember.randn(4, 6, dtype=ember.float64)
    with pytest.raises(
        RuntimeError,
        match=r"without gradients for parameters \['side.weight', 'side.bias', 'unused.weight', 'unused.bias'\]",
    ):
        ddp(x).sum().backward()
    # the replica stays usable once the model is fixed up
    ddp2 = DDP(MLP().double(), find_unused_parameters=True)
    ddp2(x).sum().backward()


@pytest.mark.parametrize("divide_by_initial_world_size", [True, False])
def test_join_uneven_inputs(divide_by_initial_world_size):
    """Rank r has 2 + 2r batches; the reference steps on the shards of the ranks still
    training, averaged over the world (or over those ranks)."""
    rank, n = dist.get_rank(), dist.get_world_size()
    model, reference = make(lambda: MLP(batchnorm=True), ember.float64)
    ddp = DDP(model, bucket_cap_mb=1 / 1024)
    opt = optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    opt_ref = optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    steps = [2 + 2 * r for r in range(n)]
    data = list(batches(ember.float64, n, steps=max(steps)))
    with ddp.join(divide_by_initial_world_size=divide_by_initial_world_size):
        for xs, ys in data[: steps[rank]]:
            opt.zero_grad()
            F.mse_loss(ddp(xs[rank]), ys[rank]).backward()
            opt.step()
    for s, (xs, ys) in enumerate(data):
        active = [r for r in range(n) if s < steps[r]]
        opt_ref.zero_grad()
        divisor = n if divide_by_initial_world_size else len(active)
        start = [b._array.copy() for b in reference.buffers()]
        for r in reversed(active):
            for b, value in zip(reference.buffers(), start):
                b._array[...] = value
            (F.mse_loss(reference(xs[r]), ys[r]) / divisor).backward()
        opt_ref.step()
    assert_same_everywhere_and_equal(model, reference, 1e-10)


def test_join_throw_on_early_termination_raises_everywhere():
    rank = dist.get_rank()
    ddp = DDP(MLP().double())
    x = ember.randn(2, 6, dtype=ember.float64)
    with pytest.raises(RuntimeError, match="ran out of inputs early"):
        with ddp.join(throw_on_early_termination=True):
            for _ in range(1 + (rank > 0)):
                ddp(x).sum().backward()


def test_overlap_launches_buckets_during_backward():
    model, _ = make(MLP, ember.float64)
    ddp = DDP(model, bucket_cap_mb=1 / 1024)
    ready_at_launch = []

    def recording_hook(state, bucket):
        ready_at_launch.append(int(ddp._ready.sum()))
        return comm_hooks.allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, recording_hook)
    n_params = len(list(model.parameters()))
    ddp(ember.randn(4, 6, dtype=ember.float64)).sum().backward()
    # the first backward checks every rank got every gradient before reducing any
    assert ready_at_launch == [n_params] * len(ddp.buckets)
    ready_at_launch.clear()
    ddp(ember.randn(4, 6, dtype=ember.float64)).sum().backward()
    assert len(ready_at_launch) == len(ddp.buckets) > 1
    assert ready_at_launch[0] < n_params  # the first all-reduce started mid-backward
    with pytest.raises(RuntimeError, match="only be called once"):
        ddp.register_comm_hook(None, recording_hook)


@pytest.mark.parametrize("hook", [comm_hooks.fp16_compress_hook, comm_hooks.bf16_compress_hook])
def test_compression_hooks(hook):
    model, reference = make(MLP, ember.float32)
    ddp = DDP(model, bucket_cap_mb=1 / 1024)
    ddp.register_comm_hook(None, hook)
    train(ddp, model, reference, ember.float32)
    mine = flat_params(model)
    everyone = [ember.zeros(mine.size, dtype=ember.float64) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, ember.from_numpy(mine))
    for other in everyone:
        np.testing.assert_array_equal(other._array, mine)
    np.testing.assert_allclose(mine, flat_params(reference), atol=2e-2)


def test_construction_broadcasts_rank0_and_state_dict_prefix():
    rank = dist.get_rank()
    ember.manual_seed(100 + rank)  # different weights on every rank
    model = MLP()
    model.register_buffer("steps", ember.tensor([rank], dtype=ember.int64))
    ddp = DDP(model)
    ember.manual_seed(100)
    expected = MLP()
    for p, q in zip(model.parameters(), expected.parameters()):
        np.testing.assert_array_equal(p._array, q._array)
    assert int(model.steps.item()) == 0
    keys = list(ddp.state_dict())
    assert "module.fc1.weight" in keys and all(k.startswith("module.") for k in keys)
    assert {"module." + k for k in ddp.module.state_dict()} == set(keys)


def test_buffers_broadcast_before_forward():
    rank = dist.get_rank()
    model = MLP().double()
    model.register_buffer("scale", ember.ones(1, dtype=ember.float64))
    ddp = DDP(model)
    model.scale._array[...] = 10.0 + rank
    ddp(ember.randn(2, 6, dtype=ember.float64))
    assert model.scale.item() == 10.0
    with ember.no_grad():  # no sync outside training steps, like torch
        model.scale._array[...] = 20.0 + rank
        ddp(ember.randn(2, 6, dtype=ember.float64))
    assert model.scale.item() == 20.0 + rank


def test_mismatched_models_raise_on_every_rank():
    rank = dist.get_rank()
    model = MLP(width=16 if rank == 0 else 17)
    with pytest.raises(
        RuntimeError,
        match=r"rank 0 has parameter 'fc1.weight' of shape \[16, 6\].*rank 1 has parameter 'fc1.weight' of shape \[17, 6\]",
    ):
        DDP(model)
    extra = MLP(extra=rank == 1)
    with pytest.raises(RuntimeError, match="the model differs across ranks"):
        DDP(extra)


def test_arguments_validated():
    with pytest.raises(ValueError, match="bucket_cap_mb must be positive"):
        DDP(MLP(), bucket_cap_mb=0)
    with pytest.raises(TypeError, match="wraps an nn.Module"):
        DDP(lambda x: x)
