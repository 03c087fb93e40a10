"""DistributedDataParallel's consistency checks across MPI ranks: missing gradients are
found on the first backward and raise the same error on every rank with their cause;
``check_sync_every`` catches replicas that drifted apart."""

import re

import numpy as np
import pytest

import ember
import ember.distributed as dist
import ember.nn as nn
from ember.distributed.ddp_checks import missing_gradients_message, replicas_differ
from ember.distributed.process_group import ProcessGroup
from ember.nn.parallel import DistributedDataParallel as DDP


@pytest.fixture
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.group.WORLD


class Net(nn.Module):
    """``aux`` feeds a second output; ``side`` is used when asked; ``spare`` never."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.head = nn.Linear(6, 2)
        self.aux = nn.Linear(6, 1)
        self.side = nn.Linear(6, 2)
        self.spare = nn.Linear(3, 3)

    def forward(self, x, use_side=True):
        h = self.body(x).tanh()
        out = self.head(h)
        if use_side:
            out = out + self.side(h)
        return out, self.aux(h)


def make(**kwargs):
    ember.manual_seed(0)
    return DDP(Net().double(), **kwargs)


def x():
    return ember.randn(3, 4, dtype=ember.float64)


def loss_of(outputs):
    return outputs[0].sum()  # the second output (aux) never reaches the loss


CAUSE_A = r"\['spare.weight', 'spare.bias'\] were not used in forward"
CAUSE_B = r"\['aux.weight', 'aux.bias'\] were used in forward, but the outputs they feed"


@pytest.mark.mpi(min_size=2)
def test_both_causes_are_named_on_every_rank(world):
    ddp = make()
    with pytest.raises(RuntimeError) as info:
        loss_of(ddp(x())).backward()
    message = str(info.value)
    assert (
        "without gradients for parameters ['aux.weight', 'aux.bias', 'spare.weight', "
        "'spare.bias']" in message
    )
    assert "missing on ranks" not in message  # missing everywhere
    assert re.search(CAUSE_A, message) and re.search(CAUSE_B, message), message
    assert "find_unused_parameters=True" in message
    assert ddp.module.head.weight.grad is not None  # local gradients, never averaged


@pytest.mark.mpi(min_size=2)
def test_a_parameter_missing_on_one_rank_raises_on_every_rank(world):
    ddp = make(find_unused_parameters=True)
    last = world.size() - 1

    def step():
        out, aux = ddp(x(), use_side=world.rank() != last)
        return (out.sum() + aux.sum()).backward()

    # with find_unused_parameters, a rank that skips `side` is fine: that is what it is for
    step()
    ddp = make()
    with pytest.raises(RuntimeError) as info:
        step()
    message = str(info.value)
    assert "without gradients for parameters ['side.weight', 'side.bias', 'spare.weight'" in (
        message
    )
    assert f"missing on ranks: side.weight [{last}], side.bias [{last}], spare.weight [" in message
    if world.rank() == last:
        assert "['side.weight', 'side.bias', 'spare.weight', 'spare.bias'] were not used" in (
            message
        )
    else:
        assert f"On rank {world.rank()}: ['spare.weight', 'spare.bias'] were not used" in message


@pytest.mark.mpi(min_size=2)
def test_the_first_check_does_not_stop_training(world):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    ddp = DDP(model, bucket_cap_mb=1 / 4096)
    for _ in range(2):
        ddp(x()).sum().backward()
    grads = [p.grad._array.copy() for p in model.parameters()]
    gathered = [None] * world.size()
    dist.all_gather_object(gathered, grads)
    for theirs in gathered:
        for a, b in zip(grads, theirs):
            np.testing.assert_array_equal(a, b)


@pytest.mark.mpi(min_size=2)
def test_check_sync_every_catches_a_drifted_replica(world):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    ddp = DDP(model, check_sync_every=2)
    last = world.size() - 1
    for _ in range(3):  # checks at synced forward 2: all equal
        ddp(x()).sum().backward()
    with ember.no_grad():
        ddp(x())  # evaluation forwards are not counted
        if world.rank() == last:
            model[2].bias._array[0] += 1e-12
    with pytest.raises(RuntimeError) as info:
        ddp(x())  # synced forward #4
    message = str(info.value)
    assert "replicas are out of sync at synced forward #4 (check_sync_every=2)" in message
    assert f"parameter '2.bias' differs on ranks [{last}] from rank 0" in message
    assert "1 of 4 parameters differ" in message


def test_check_sync_every_is_validated():
    pg = ProcessGroup(None, [0], 60.0, "mpi")
    with pytest.raises(ValueError, match="check_sync_every must be an int >= 0, got -1"):
        DDP(nn.Linear(2, 2), process_group=pg, check_sync_every=-1)


def test_replicas_differ_compares_bits():
    a = np.array([[1.0, 2.0], [np.nan, 3.0]])
    same = np.stack([a, a.copy(), a.copy()])
    assert replicas_differ(same, ["w", "b"], [0, 1, 2]) is None  # NaN == NaN bitwise
    off = same.copy()
    off[2, 1, 1] = 3.5
    off[1, 1, 1] = 3.5
    assert replicas_differ(off, ["w", "b"], [0, 4, 6]) == (
        "parameter 'b' differs on ranks [4, 6] from rank 0 (sum nan vs nan, sum of squares "
        "3.0 vs 3.5); 1 of 2 parameters differ"
    )


def test_missing_gradients_message_without_an_output():
    missing = np.array([[0, 1], [0, 0]])
    text = missing_gradients_message(["a", "b"], missing, [0, 1], 1, None, {})
    assert "without gradients for parameters ['b'] (missing on ranks: b [0])" in text
    assert "Rank 1 got all its gradients; the ranks above did not" in text
