"""ember.save(model, f) / ember.load(f, weights_only=False): whole modules as data, no pickle,
rebuilt only from ember's classes or allowlisted ones (torch.serialization's safe globals)."""

from __future__ import annotations

import dataclasses
import json
import struct

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F


class Net(nn.Module):
    def __init__(self, hidden, activation=F.relu, dropout=0.1):
        super().__init__()
        self.fc1 = nn.Linear(4, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 3)
        self.activation = activation

    def forward(self, x):
        return self.fc2(self.drop(self.activation(self.fc1(x))))


@dataclasses.dataclass
class Config:
    width: int = 8
    depth: int = 2


class Configured(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(config.width, config.width)] * config.depth)

    def forward(self, x):
        return self.layers(x)


@pytest.fixture(autouse=True)
def _fresh_allowlist():
    ember.serialization.clear_safe_globals()
    yield
    ember.serialization.clear_safe_globals()


def test_ember_layers_round_trip_without_allowlist(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(approximate="tanh"), nn.Linear(8, 2))
    model.eval()
    ember.save(model, tmp_path / "m.pt")
    again = ember.load(tmp_path / "m.pt", weights_only=False)
    assert type(again) is nn.Sequential and not again.training
    assert again[1].approximate == "tanh"
    x = ember.randn(5, 4)
    np.testing.assert_array_equal(again(x).detach().numpy(), model(x).detach().numpy())
    assert [k for k, _ in again.named_parameters()] == [k for k, _ in model.named_parameters()]


def test_user_class_needs_the_allowlist_and_the_error_says_how(tmp_path):
    model = Net(6, activation=F.gelu)
    ember.save(model, tmp_path / "net.pt")
    with pytest.raises(RuntimeError, match=r"Net.*add_safe_globals\(\[Net\]\)"):
        ember.load(tmp_path / "net.pt", weights_only=False)
    with ember.serialization.safe_globals([Net]):
        again = ember.load(tmp_path / "net.pt", weights_only=False)
    assert ember.serialization.get_safe_globals() == []
    assert again.activation is F.gelu and again.drop.p == 0.1
    model.eval(), again.eval()
    x = ember.randn(3, 4)
    np.testing.assert_array_equal(again(x).detach().numpy(), model(x).detach().numpy())


def test_add_safe_globals_and_torch_module_paths(tmp_path):
    from ember.serialization import add_safe_globals  # torch.serialization's import path

    add_safe_globals([Net, ember.nn.modules.dropout.Dropout])
    assert ember.nn.modules.linear.Linear is nn.Linear
    import ember.nn.modules.batchnorm as batchnorm

    assert batchnorm.BatchNorm2d is nn.BatchNorm2d
    ember.save(Net(5), tmp_path / "net.pt")
    assert isinstance(ember.load(tmp_path / "net.pt", weights_only=False), Net)


def test_head_replaced_after_construction_and_frozen_params(tmp_path):
    model = Net(6)
    model.fc2 = nn.Linear(6, 10)  # fine-tuning replaces the head
    model.fc1.weight.requires_grad_(False)
    model.register_buffer("steps", ember.tensor(7))
    ember.serialization.add_safe_globals([Net])
    ember.save(model, tmp_path / "net.pt")
    again = ember.load(tmp_path / "net.pt")
    assert again.fc2.out_features == 10 and tuple(again.fc2.weight.shape) == (10, 6)
    assert not again.fc1.weight.requires_grad and again.fc1.bias.requires_grad
    assert isinstance(again.fc1.weight, nn.Parameter) and again.steps.item() == 7
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_shared_modules_and_tied_weights_stay_shared(tmp_path):
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head, "again": head})
    ember.save(model, tmp_path / "tied.pt")
    again = ember.load(tmp_path / "tied.pt")
    assert again["head"].weight is again["emb"].weight
    assert again["again"] is again["head"]


def test_dataclass_config_and_optimizer_checkpoint_together(tmp_path):
    model = Configured(Config(width=4, depth=3))
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    ember.save({"model": model, "optim": opt.state_dict(), "epoch": 3}, tmp_path / "ck.pt")
    with pytest.raises(RuntimeError, match="Configured"):
        ember.load(tmp_path / "ck.pt", weights_only=False)
    with ember.serialization.safe_globals([Configured, Config]):
        ck = ember.load(tmp_path / "ck.pt", weights_only=False)
    assert ck["epoch"] == 3 and len(ck["model"].layers) == 3
    x = ember.randn(2, 4)
    np.testing.assert_array_equal(ck["model"](x).detach().numpy(), model(x).detach().numpy())


def test_a_file_naming_an_arbitrary_global_is_refused_without_importing_it(tmp_path):
    ember.save(nn.Linear(2, 2), tmp_path / "m.pt")
    raw = (tmp_path / "m.pt").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    structure = header["__metadata__"]["ember"].replace("ember.core.nn.linear.Linear", "os.system")
    header["__metadata__"]["ember"] = structure
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    (tmp_path / "evil.pt").write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    with pytest.raises(RuntimeError, match="'os.system'.*not allowlisted"):
        ember.load(tmp_path / "evil.pt", weights_only=False)


def test_lambda_arguments_cannot_be_saved(tmp_path):
    with pytest.raises(TypeError, match="function"):
        ember.save(Net(3, activation=lambda x: x), tmp_path / "m.pt")
