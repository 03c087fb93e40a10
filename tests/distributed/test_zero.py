"""ZeroRedundancyOptimizer (``mpiexec -n 2|3 python -m pytest --with-mpi``): with the same
gradients on every rank (as after DDP), it matches the plain optimizer exactly, keeps
about 1/N of the state per rank, and its checkpoints load at another world size. The
tests without the mpi mark also run in a plain ``pytest`` (a world of one)."""

import numpy as np
import pytest

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.optim as optim
from ember.distributed.optim import ZeroRedundancyOptimizer

mpi = pytest.mark.mpi(min_size=2)


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


def make_model(seed=0):
    ember.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 2)
    ).double()


def copy_of(model):
    other = make_model(seed=123)
    other.load_state_dict(model.state_dict())
    return other


def batch(step):
    """The same batch on every rank: gradients agree everywhere, as after DDP."""
    rng = np.random.default_rng(1000 + step)
    return ember.tensor(rng.normal(size=(8, 5))), ember.tensor(rng.normal(size=(8, 2)))


def train(model, opt, steps, start=0, scheduler=None):
    for step in range(start, start + steps):
        x, y = batch(step)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def owner_ranks(zero):
    return [zero._owner[id(p)] for g in zero.param_groups for p in g["params"]]


def assert_same(model, reference):
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_array_equal(p._array, q._array, err_msg=name)


def assert_same_on_all_ranks(model):
    mine = [p._array.copy() for p in model.parameters()]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    for theirs in everyone:
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)


OPTIMIZERS = [
    (optim.Adam, {"lr": 0.01, "weight_decay": 0.01}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
]


@mpi
@pytest.mark.parametrize("bucket_view", [False, True])
@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS)
def test_matches_the_plain_optimizer_with_a_scheduler(cls, kwargs, bucket_view):
    model = make_model()
    reference = copy_of(model)
    zero = ZeroRedundancyOptimizer(
        model.parameters(), cls, parameters_as_bucket_view=bucket_view, **kwargs
    )
    plain = cls(reference.parameters(), **kwargs)
    sched_zero = optim.lr_scheduler.ExponentialLR(zero, gamma=0.9)
    sched_plain = optim.lr_scheduler.ExponentialLR(plain, gamma=0.9)
    train(model, zero, 10, scheduler=sched_zero)
    for p in model.parameters():  # e.g. what .to() does; bucket views must re-attach
        p._array = p._array.copy()
    train(model, zero, 10, start=10, scheduler=sched_zero)
    train(reference, plain, 20, scheduler=sched_plain)
    assert zero.param_groups[0]["lr"] == plain.param_groups[0]["lr"]
    assert_same(model, reference)
    assert_same_on_all_ranks(model)


@mpi
def test_with_ddp_matches_full_batch_training():
    from ember.nn.parallel import DistributedDataParallel as DDP

    rank, size = dist.get_rank(), dist.get_world_size()
    model = make_model()
    reference = copy_of(model)
    ddp = DDP(model)
    zero = ZeroRedundancyOptimizer(ddp.parameters(), optim.Adam, lr=0.01)
    plain = optim.Adam(reference.parameters(), lr=0.01)
    for step in range(10):
        rng = np.random.default_rng(step)
        x, y = rng.normal(size=(6 * size, 5)), rng.normal(size=(6 * size, 2))
        zero.zero_grad()
        mine = slice(6 * rank, 6 * rank + 6)
        ((ddp(ember.tensor(x[mine])) - ember.tensor(y[mine])) ** 2).mean().backward()
        zero.step()
        plain.zero_grad()
        ((reference(ember.tensor(x)) - ember.tensor(y)) ** 2).mean().backward()
        plain.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p._array, q._array, rtol=1e-9, atol=1e-12)
    assert_same_on_all_ranks(model)


@mpi
def test_each_rank_keeps_about_a_world_size_share_of_the_state():
    model = make_model()
    zero = ZeroRedundancyOptimizer(model.parameters(), optim.Adam, lr=0.01)
    train(model, zero, 1)
    n = dist.get_world_size()
    mine = sum(t.numel() for s in zero.optim.state.values() for k, t in s.items() if k != "step")
    total = 2 * sum(p.numel() for p in model.parameters())  # exp_avg and exp_avg_sq
    biggest = 2 * max(p.numel() for p in model.parameters())
    assert abs(mine - total / n) <= biggest
    counts = [None] * n
    dist.all_gather_object(counts, mine)
    assert sum(counts) == total
    owners = [None] * n
    dist.all_gather_object(owners, owner_ranks(zero))
    assert all(o == owners[0] for o in owners)  # the same partition everywhere
    assert sorted(set(owners[0])) == list(range(n))


@mpi
@pytest.mark.parametrize("bucket_view", [False, True])
def test_checkpoint_resumes_at_world_size_n_and_1(tmp_path, solo_group, bucket_view):
    rank = dist.get_rank()
    kwargs = {"lr": 0.01, "betas": (0.8, 0.99)}
    model = make_model()
    uninterrupted = copy_of(model)
    zero = ZeroRedundancyOptimizer(
        model.parameters(), optim.Adam, parameters_as_bucket_view=bucket_view, **kwargs
    )
    train(model, zero, 10)
    last = dist.get_world_size() - 1
    zero.consolidate_state_dict(to=last)
    path = [str(tmp_path / "ckpt.safetensors")]
    dist.broadcast_object_list(path, src=last)
    if rank == last:
        ember.save({"model": model.state_dict(), "optim": zero.state_dict()}, path[0])
    else:
        with pytest.raises(RuntimeError, match="has not been consolidated on this rank"):
            zero.state_dict()
    dist.barrier()

    plain = optim.Adam(uninterrupted.parameters(), **kwargs)
    train(uninterrupted, plain, 20)

    checkpoint = ember.load(path[0])
    resumed = {}
    for where, group in (("world", None), ("solo", solo_group)):
        m = copy_of(make_model(seed=7))
        m.load_state_dict(checkpoint["model"])
        opt = ZeroRedundancyOptimizer(m.parameters(), optim.Adam, process_group=group, lr=0.5)
        opt.load_state_dict(checkpoint["optim"])
        assert opt.param_groups[0]["lr"] == 0.01 and opt.optim.param_groups[0]["lr"] == 0.01
        resumed[where] = (m, opt)
    m_plain = copy_of(make_model(seed=7))
    m_plain.load_state_dict(checkpoint["model"])
    opt_plain = optim.Adam(m_plain.parameters(), lr=0.5)
    opt_plain.load_state_dict(checkpoint["optim"])
    resumed["plain"] = (m_plain, opt_plain)
    for m, opt in resumed.values():
        train(m, opt, 10, start=10)
        assert_same(m, uninterrupted)


@mpi
def test_add_param_group_midway_matches_the_plain_optimizer():
    model, head = make_model(), nn.Linear(2, 3).double()
    reference, ref_head = copy_of(model), nn.Linear(2, 3).double()
    ref_head.load_state_dict(head.state_dict())
    zero = ZeroRedundancyOptimizer(model.parameters(), optim.Adam, lr=0.01)
    plain = optim.Adam(reference.parameters(), lr=0.01)
    owners = owner_ranks(zero)
    for m, h, opt in [(model, head, zero), (reference, ref_head, plain)]:
        train(m, opt, 3)
        opt.add_param_group({"params": h.parameters(), "lr": 0.02})
        for s in range(3, 6):
            x, _ = batch(s)
            opt.zero_grad()
            (h(m(x)) ** 2).mean().backward()
            opt.step()
    assert owner_ranks(zero)[: len(owners)] == owners
    assert_same(model, reference)
    assert_same(head, ref_head)
    assert_same_on_all_ranks(head)


@mpi
@pytest.mark.parametrize("bucket_view", [False, True])
def test_ranks_that_own_no_parameter(bucket_view):
    ember.manual_seed(0)
    layer = nn.Linear(3, 2, bias=False).double()
    reference = nn.Linear(3, 2, bias=False).double()
    reference.load_state_dict(layer.state_dict())
    zero = ZeroRedundancyOptimizer(
        layer.parameters(), optim.Adam, parameters_as_bucket_view=bucket_view, lr=0.1
    )
    plain = optim.Adam(reference.parameters(), lr=0.1)
    assert len(zero.optim.param_groups[0]["params"]) == (dist.get_rank() == 0)
    for opt, net in ((zero, layer), (plain, reference)):
        for step in range(3):
            opt.zero_grad()
            (net(batch(step)[0][:, :3]) ** 2).sum().backward()
            opt.step()
    assert_same(layer, reference)
    assert_same_on_all_ranks(layer)


@mpi
def test_parameters_that_differ_across_ranks_are_an_error():
    width = 3 + dist.get_rank()
    with pytest.raises(ValueError, match="parameters differ across ranks"):
        ZeroRedundancyOptimizer(nn.Linear(2, width).parameters(), optim.SGD, lr=0.1)


def test_solo_group_matches_the_plain_optimizer_and_round_trips(solo_group):
    model = make_model()
    reference = copy_of(model)
    zero = ZeroRedundancyOptimizer(model.parameters(), optim.Adam, solo_group, lr=0.01)
    plain = optim.Adam(reference.parameters(), lr=0.01)
    train(model, zero, 5)
    train(reference, plain, 5)
    assert_same(model, reference)
    with pytest.raises(RuntimeError, match="has not been consolidated"):
        zero.state_dict()
    zero.consolidate_state_dict()
    state = zero.state_dict()
    expected = plain.state_dict()
    assert state["param_groups"] == expected["param_groups"]
    assert sorted(state["state"]) == sorted(expected["state"])
    for i, s in expected["state"].items():
        for k, t in s.items():
            np.testing.assert_array_equal(state["state"][i][k]._array, t._array)


def test_argument_errors(solo_group):
    params = list(make_model().parameters())
    with pytest.raises(TypeError, match="must be an Optimizer subclass"):
        ZeroRedundancyOptimizer(params, "adam", solo_group, lr=0.1)
    with pytest.raises(ValueError, match="overlap_with_ddp=True is not supported"):
        ZeroRedundancyOptimizer(params, optim.SGD, solo_group, overlap_with_ddp=True, lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        ZeroRedundancyOptimizer(params, optim.SGD, solo_group, lr=-1.0)
    zero = ZeroRedundancyOptimizer(params, optim.SGD, solo_group, lr=0.1)
    with pytest.raises(ValueError, match="to=1 is not a rank of the group"):
        zero.consolidate_state_dict(to=1)
    with pytest.raises(ValueError, match="must be a dict with keys"):
        zero.load_state_dict([1, 2])
