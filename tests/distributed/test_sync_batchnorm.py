"""SyncBatchNorm: on N ranks, each with its share of the batch, outputs, input gradients,
summed parameter gradients and running statistics equal BatchNorm's on the full batch,
computed in one process on every rank (``mpiexec -n 2|3 python -m pytest --with-mpi``).
The tests without the mpi mark also run in a plain ``pytest`` (a world of one)."""

import numpy as np
import pytest

import ember
import ember.distributed as dist
import ember.nn as nn
from ember.distributed import sync_batchnorm
from ember.distributed.sync_batchnorm import SyncBatchNorm, revert_sync_batchnorm

TOL = 1e-10


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.group.WORLD


@pytest.fixture(scope="module")
def solo_group(world):
    """A group holding only this rank (every rank makes all of them, in order)."""
    mine = None
    for r in range(dist.get_world_size()):
        g = dist.new_group([r])
        if r == dist.get_rank():
            mine = g
    return mine


def _shard(array, rank, size):
    bounds = np.linspace(0, array.shape[0], size + 1).round().astype(int)
    return array[bounds[rank] : bounds[rank + 1]]


def _pair(cls, c, seed=0, **kwargs):
    """A BatchNorm with random affine parameters and a SyncBatchNorm copy of it."""
    ember.manual_seed(seed)
    ref = cls(c, **kwargs).double()
    if ref.affine:
        ref.weight._array[...] = np.random.default_rng(seed).uniform(0.5, 1.5, c)
        ref.bias._array[...] = np.random.default_rng(seed + 1).normal(size=c)
    copy = cls(c, **kwargs).double()
    copy.load_state_dict(ref.state_dict())
    return ref, SyncBatchNorm.convert_sync_batchnorm(copy)


def _close(a, b, what):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL, err_msg=what)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize(
    "cls,shape,kwargs",
    [
        (nn.BatchNorm1d, (7, 3), {}),
        (nn.BatchNorm1d, (9, 4, 5), {"momentum": None}),
        (nn.BatchNorm2d, (8, 3, 4, 3), {"affine": False}),
        (nn.BatchNorm2d, (6, 2, 3, 3), {"track_running_stats": False}),
    ],
)
def test_matches_batchnorm_on_the_full_batch(cls, shape, kwargs):
    rank, size = dist.get_rank(), dist.get_world_size()
    ref, sync = _pair(cls, shape[1], **kwargs)
    assert isinstance(sync, SyncBatchNorm)
    rng = np.random.default_rng(42)
    for step in range(3):
        full = rng.normal(loc=3.0, scale=2.0, size=shape)
        coef = rng.normal(size=shape)
        x_ref = ember.tensor(full, requires_grad=True)
        y_ref = ref(x_ref)
        (y_ref * ember.tensor(coef)).sum().backward()

        x = ember.tensor(_shard(full, rank, size).copy(), requires_grad=True)
        y = sync(x)
        (y * ember.tensor(_shard(coef, rank, size))).sum().backward()

        _close(y._array, _shard(y_ref._array, rank, size), f"output, step {step}")
        _close(x.grad._array, _shard(x_ref.grad._array, rank, size), f"input grad, step {step}")
        if ref.affine:
            for name in ("weight", "bias"):
                g = getattr(sync, name).grad
                dist.all_reduce(g)  # what DDP does (up to the 1/N of its average)
                _close(g._array, getattr(ref, name).grad._array, f"{name} grad, step {step}")
                g._array[...] = 0
        if ref.track_running_stats:
            _close(sync.running_mean._array, ref.running_mean._array, "running_mean")
            _close(sync.running_var._array, ref.running_var._array, "running_var")
            assert int(sync.num_batches_tracked) == int(ref.num_batches_tracked) == step + 1
        if ref.affine:
            ref.weight.grad._array[...] = 0
            ref.bias.grad._array[...] = 0


@pytest.mark.mpi(min_size=2)
def test_backward_matches_when_weight_is_frozen_and_float32():
    rank, size = dist.get_rank(), dist.get_world_size()
    ref, sync = _pair(nn.BatchNorm1d, 4)
    ref, sync = ref.float(), sync.float()
    sync.weight.requires_grad_(False)
    full = np.random.default_rng(1).normal(100.0, 0.5, (10, 4)).astype(np.float32)
    x_ref = ember.tensor(full, requires_grad=True)
    (ref(x_ref) ** 2).sum().backward()
    x = ember.tensor(_shard(full, rank, size).copy(), requires_grad=True)
    (sync(x) ** 2).sum().backward()
    assert sync.weight.grad is None
    np.testing.assert_allclose(
        x.grad._array, _shard(x_ref.grad._array, rank, size), rtol=1e-3, atol=1e-3
    )
    np.testing.assert_allclose(sync.running_var._array, ref.running_var._array, rtol=1e-4)


@pytest.mark.mpi(min_size=2)
def test_half_input_with_float32_parameters_reduces_in_float32():
    rank, size = dist.get_rank(), dist.get_world_size()
    ref, sync = _pair(nn.BatchNorm2d, 3)
    sync.float()
    full = np.random.default_rng(2).normal(50.0, 2.0, (6, 3, 4, 4))
    coef = np.random.default_rng(3).normal(size=full.shape)
    x_ref = ember.tensor(full, requires_grad=True)
    y_ref = ref(x_ref)
    (y_ref * ember.tensor(coef)).sum().backward()
    x = ember.tensor(_shard(full, rank, size).astype(np.float16), requires_grad=True)
    y = sync(x)
    (y * ember.tensor(_shard(coef, rank, size).astype(np.float16))).sum().backward()
    assert y.dtype == ember.float16 and x.grad.dtype == ember.float16
    assert sync.weight.grad.dtype == ember.float32
    np.testing.assert_allclose(y._array, _shard(y_ref._array, rank, size), atol=2e-2)
    np.testing.assert_allclose(x.grad._array, _shard(x_ref.grad._array, rank, size), atol=2e-2)
    np.testing.assert_allclose(sync.running_mean._array, ref.running_mean._array, rtol=1e-3)


@pytest.mark.mpi(min_size=2)
def test_too_few_values_per_channel_raises_on_every_rank():
    sync = SyncBatchNorm(3)
    x = ember.randn(1, 3) if dist.get_rank() == 0 else ember.zeros(0, 3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        sync(x)


@pytest.mark.mpi(min_size=2)
def test_a_rank_with_an_empty_batch_still_syncs():
    rank = dist.get_rank()
    ref, sync = _pair(nn.BatchNorm1d, 3)
    full = np.random.default_rng(5).normal(size=(6, 3))
    x = ember.tensor(full if rank == 0 else np.zeros((0, 3)), requires_grad=True)
    y = sync(x)
    (y * y).sum().backward()
    assert x.grad.shape == x.shape
    y_ref = ref(ember.tensor(full))
    if rank == 0:
        _close(y._array, y_ref._array, "output")
    _close(sync.running_var._array, ref.running_var._array, "running_var")


def _no_communication(*args, **kwargs):
    raise AssertionError("SyncBatchNorm communicated")


@pytest.mark.parametrize("mode", ["eval", "solo_group", "uninitialized"])
def test_no_communication_cases_equal_batchnorm(mode, solo_group, monkeypatch):
    ref, sync = _pair(nn.BatchNorm2d, 3)
    monkeypatch.setattr(sync_batchnorm, "all_reduce", _no_communication)
    if mode == "eval":
        ref(ember.randn(4, 3, 2, 2).double())  # some running statistics first
        sync.load_state_dict(ref.state_dict())
        ref.eval()
        sync.eval()
    elif mode == "solo_group":
        sync.process_group = solo_group
    else:
        monkeypatch.setattr(sync_batchnorm, "is_initialized", lambda: False)
    full = np.random.default_rng(3).normal(size=(4, 3, 2, 2))
    x_ref, x = (ember.tensor(full, requires_grad=True) for _ in range(2))
    y_ref, y = ref(x_ref), sync(x)
    (y_ref * y_ref).sum().backward()
    (y * y).sum().backward()
    _close(y._array, y_ref._array, "output")
    _close(x.grad._array, x_ref.grad._array, "input grad")
    _close(sync.weight.grad._array, ref.weight.grad._array, "weight grad")
    _close(sync.running_var._array, ref.running_var._array, "running_var")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2, momentum=0.3)
        self.head = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, affine=False))


def test_convert_and_revert_share_parameters_and_buffers():
    net = Net()
    net.eval()
    weight, running_var = net.bn.weight, net.bn.running_var
    synced = SyncBatchNorm.convert_sync_batchnorm(net)
    assert synced is net
    assert type(net.bn) is SyncBatchNorm and type(net.head[1]) is SyncBatchNorm
    assert net.bn.weight is weight and net.bn.running_var is running_var
    assert net.bn.momentum == 0.3 and not net.bn.training
    assert net.head[1].weight is None and not net.head[1].affine
    assert net.bn.process_group is None

    back = revert_sync_batchnorm(net)
    assert type(back.bn) is nn.BatchNorm2d and type(back.head[1]) is nn.BatchNorm1d
    assert back.bn.weight is weight and back.bn.running_var is running_var
    assert sorted(back.state_dict()) == sorted(Net().state_dict())

    top = SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(5))
    assert type(top) is SyncBatchNorm
    assert type(revert_sync_batchnorm(top)) is nn.BatchNorm1d


def test_revert_of_a_direct_syncbatchnorm_needs_a_class():
    sync = SyncBatchNorm(4, bias=False)
    with pytest.raises(ValueError, match="pass batchnorm_class"):
        revert_sync_batchnorm(sync)
    with pytest.raises(TypeError, match="must be a BatchNorm class"):
        revert_sync_batchnorm(sync, nn.Linear)
    bn = revert_sync_batchnorm(sync, nn.BatchNorm2d)
    assert type(bn) is nn.BatchNorm2d and bn.bias is None and bn.weight is sync.weight


def test_input_errors():
    sync = SyncBatchNorm(3)
    with pytest.raises(ValueError, match="expected at least 2D input"):
        sync(ember.randn(3))
    with pytest.raises(ValueError, match="got an input with 4 channels"):
        sync(ember.randn(2, 4))


@pytest.mark.mpi(min_size=2)
def test_ddp_training_with_syncbatchnorm_equals_full_batch_training():
    from ember.nn.parallel import DistributedDataParallel as DDP

    rank, size = dist.get_rank(), dist.get_world_size()
    ember.manual_seed(0)
    reference = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
    reference = reference.double()
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
    model = model.double()
    model.load_state_dict(reference.state_dict())
    ddp = DDP(SyncBatchNorm.convert_sync_batchnorm(model))
    opt = ember.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    ref_opt = ember.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(9)
    for _ in range(4):
        x, t = rng.normal(size=(12, 4)), rng.normal(size=(12, 2))
        for net, o, xs, ts in (
            (ddp, opt, _shard(x, rank, size), _shard(t, rank, size)),
            (reference, ref_opt, x, t),
        ):
            o.zero_grad()
            ((net(ember.tensor(xs)) - ember.tensor(ts)) ** 2).mean().backward()
            o.step()
    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values()):
        _close(p._array, q._array, name)
