"""GradScaler across ranks (``mpiexec -n 2|3 python -m pytest --with-mpi``): with a NaN in
one rank's gradient only, every rank skips the same step and backs off the same scale,
through the sync that ``ember.distributed.amp`` registers with ``ember.core.amp``."""

import numpy as np
import pytest

import ember
import ember.amp
import ember.core.amp as core_amp
import ember.distributed as dist
import ember.nn as nn
import ember.optim as optim
from ember.distributed.amp import sync_found_inf
from ember.distributed.optim import ZeroRedundancyOptimizer

mpi = pytest.mark.mpi(min_size=2)


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.group.WORLD


@pytest.fixture
def synced():
    previous = core_amp.register_found_inf_sync(sync_found_inf)
    yield
    core_amp.register_found_inf_sync(previous)


@pytest.fixture
def unsynced():
    previous = core_amp.register_found_inf_sync(None)
    yield
    core_amp.register_found_inf_sync(previous)


def everyone(value):
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


@mpi
@pytest.mark.parametrize("found_on", [[], [0], ["last"], [0, "last"]])
def test_sync_found_inf_is_true_everywhere_if_true_anywhere(found_on):
    last = dist.get_world_size() - 1
    ranks = {last if r == "last" else r for r in found_on}
    assert sync_found_inf(dist.get_rank() in ranks) is bool(ranks)


def test_sync_found_inf_returns_the_value_all_ranks_share():
    for found in (True, False, True):
        assert sync_found_inf(found) is found


def scaled_step(model, opt, scaler, poison: bool):
    """One scaled step on the same batch everywhere, the first gradient poisoned with a
    NaN on the last rank only when ``poison``. Returns (step result, skipped)."""
    x = ember.tensor(np.random.default_rng(0).normal(size=(4, 3)))
    opt.zero_grad()
    scaler.scale((model(x) ** 2).mean()).backward()
    if poison and dist.get_rank() == dist.get_world_size() - 1:
        next(model.parameters()).grad._array[0, 0] = np.nan
    result = scaler.step(opt)
    skipped = scaler.step_was_skipped(opt)
    scaler.update()
    return result, skipped


def make(zero: bool):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    if zero:
        opt = ZeroRedundancyOptimizer(model.parameters(), optim.SGD, lr=0.1, momentum=0.9)
    else:
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, ember.amp.GradScaler("cpu", init_scale=2.0**10)


@mpi
@pytest.mark.parametrize("zero", [False, True])
def test_a_nan_on_one_rank_skips_the_step_on_every_rank(synced, zero):
    model, opt, scaler = make(zero)
    before = [p._array.copy() for p in model.parameters()]
    result, skipped = scaled_step(model, opt, scaler, poison=True)
    assert result is None
    assert everyone(skipped) == [True] * dist.get_world_size()
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p._array, b)
    assert everyone(scaler.get_scale()) == [2.0**9] * dist.get_world_size()

    _, skipped = scaled_step(model, opt, scaler, poison=False)
    assert everyone(skipped) == [False] * dist.get_world_size()
    params = everyone([p._array.copy() for p in model.parameters()])
    for theirs in params:
        for a, b, old in zip(theirs, params[0], before):
            np.testing.assert_array_equal(a, b)
            assert not np.array_equal(a, old)


@mpi
def test_without_the_hook_ranks_disagree(unsynced):
    model, opt, scaler = make(zero=False)
    _, skipped = scaled_step(model, opt, scaler, poison=True)
    assert everyone(skipped) == [False] * (dist.get_world_size() - 1) + [True]
