"""ember.save / ember.load through safetensors: round trips, atomic writes, corrupt
files, and interop with safetensors.torch."""

import collections
import io
import json
import math
import os
import pathlib
import struct

import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import ember
from ember.core import serialization
from ember.core.serialization import load, save

ALL_DTYPES = [
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
]


def make(dtype, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    d = ember.core.dtypes.to_dtype(dtype)
    if d.is_floating_point:
        arr = rng.normal(size=shape).astype(d.np)
    elif d.np == np.bool_:
        arr = rng.random(shape) > 0.5
    else:
        arr = rng.integers(0, 100, size=shape).astype(d.np)
    return ember.from_numpy(np.asarray(arr))


def assert_same(a, b):
    if isinstance(a, ember.Tensor):
        assert isinstance(b, ember.Tensor)
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(
            np.asarray(a.detach().numpy()), np.asarray(b.detach().numpy())
        )
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert type(a) is type(b) and list(a) == list(b)
        assert [type(k) for k in a] == [type(k) for k in b]
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert type(a) is type(b) and a == b


def roundtrip(obj, tmp_path):
    path = tmp_path / "obj.safetensors"
    save(obj, path)
    return load(path)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_tensor_roundtrip_every_dtype(dtype, tmp_path):
    for shape in [(2, 3), (), (0, 4), (5,)]:
        t = make(dtype, shape)
        assert_same(t, roundtrip(t, tmp_path))


def test_nested_structures_roundtrip(tmp_path):
    w = ember.randn(4, 3)
    obj = {
        "model": collections.OrderedDict(
            [("fc.weight", w), ("fc.bias", ember.zeros(4, dtype=ember.bfloat16))]
        ),
        "optimizer": {
            "state": {
                0: {"step": 10, "exp_avg": ember.ones(4, 3)},
                1: {"step": 10, "exp_avg": ember.zeros(4)},
            },
            "param_groups": [
                {
                    "lr": 1e-3,
                    "betas": (0.9, 0.999),
                    "params": [0, 1],
                    "amsgrad": False,
                    "foreach": None,
                }
            ],
        },
        "epoch": 7,
        "loss": 0.25,
        "name": "run-1",
        "special": [float("nan"), float("inf"), -float("inf"), -0.0, 2**70],
        "numpy": {"idx": np.arange(5, dtype=np.uint16), "half": np.ones(3, np.float16)},
        "scalars": (np.float32(1.5), np.int64(3), np.bool_(True), np.float64(0.1)),
        (1, "pair"): [(), [], {}],
        None: True,
        2.5: "float key",
        False: "bool key",
        "rng": ember.get_rng_state(),
        "dtype": ember.float16,
        "device": ember.device("cpu"),
    }
    out = roundtrip(obj, tmp_path)
    assert_same(obj, out)
    assert isinstance(out["scalars"][0], np.float32) and isinstance(out["scalars"][3], np.float64)
    assert math.copysign(1.0, out["special"][3]) == -1.0
    ember.set_rng_state(out["rng"])


def test_requires_grad_non_contiguous_and_file_objects(tmp_path):
    p = ember.randn(3, 2, requires_grad=True)
    out = roundtrip({"p": p}, tmp_path)["p"]
    assert out.requires_grad and out.is_leaf
    base = np.arange(12.0).reshape(3, 4)
    view = ember.Tensor._make(base.T, False, None, 0)  # a non-contiguous tensor
    np.testing.assert_array_equal(roundtrip(view, tmp_path).numpy(), base.T)
    buf = io.BytesIO()
    save({"a": ember.arange(3)}, buf)
    buf.seek(0)
    assert load(buf)["a"].tolist() == [0, 1, 2]
    save([1, 2], str(tmp_path / "as_str"))
    assert load(str(tmp_path / "as_str")) == [1, 2]


def test_flat_state_dict_uses_keys_as_entry_names(tmp_path):
    state = {"layer.0.weight": ember.randn(2, 2), "layer.0.bias": ember.randn(2)}
    save(state, tmp_path / "m.safetensors")
    assert set(torch_load_file(tmp_path / "m.safetensors")) == set(state)
    # Colliding paths still get distinct entries.
    tricky = {"a": {"b": ember.ones(1)}, "a.b": ember.zeros(1), "__metadata__": ember.ones(2)}
    assert_same(tricky, roundtrip(tricky, tmp_path))


def test_unsupported_objects_raise_before_writing(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match=r"cannot save an object of type object at obj\['a'\]\[1\]"):
        save({"a": [1, object()]}, path)
    with pytest.raises(TypeError, match="dtype <U1"):
        save(np.array(["a"]), path)
    with pytest.raises(TypeError, match="cannot be a dict key"):
        save({ember.ones(1): 1}, path)
    assert not path.exists() and os.listdir(tmp_path) == []


# -- atomic writes ----------------------------------------------------------------------------


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"epoch": 1, "w": ember.ones(3)}, path)
    os.chmod(path, 0o640)

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(serialization.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        save({"epoch": 2, "w": ember.zeros(3)}, path)
    monkeypatch.undo()
    assert load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temp file left behind
    save({"epoch": 3}, path)
    assert load(path) == {"epoch": 3}
    assert os.stat(path).st_mode & 0o777 == 0o640  # an overwrite keeps the file's mode


def test_failure_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"epoch": 1}, path)
    real_write = serialization._write

    def half_write(fh, arrays, metadata):
        fh.write(b"\0" * 16)
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization, "_write", half_write)
    with pytest.raises(KeyboardInterrupt):
        save({"epoch": 2, "w": ember.ones(1000)}, path)
    monkeypatch.setattr(serialization, "_write", real_write)
    assert load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_new_file_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save({"a": 1}, tmp_path / "m")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m").st_mode & 0o777 == 0o640


# -- corrupt files ----------------------------------------------------------------------------


def write_raw(path, header: dict, data: bytes = b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_truncated_and_garbage_files(tmp_path):
    path = tmp_path / "good.safetensors"
    save({"w": ember.randn(64, 64), "b": ember.randn(64)}, path)
    blob = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(blob[:-100])
    with pytest.raises(RuntimeError, match=r"cut\.safetensors.*truncated file"):
        load(cut)
    with pytest.raises(RuntimeError, match="truncated file"):
        load(io.BytesIO(blob[:-100]))
    with pytest.raises(RuntimeError, match="truncated file"):
        load(_Unseekable(blob[:-100]))
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    with pytest.raises(RuntimeError, match=r"'.*short': file is too short \(3 bytes\)"):
        load(short)
    with pytest.raises(RuntimeError, match="not a safetensors file"):
        load(io.BytesIO(b"PK\x03\x04" + b"\x00" * 100))  # a zip, e.g. from torch.save
    with pytest.raises(RuntimeError, match="header is not JSON"):
        load(io.BytesIO(struct.pack("<Q", 4) + b"\xff{[x"))
    with pytest.raises(RuntimeError, match="not a JSON object"):
        load(write_raw(tmp_path / "list", [1, 2]))


def test_torch_save_file_is_rejected(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(RuntimeError, match="not a safetensors file"):
        load(path)


def test_inconsistent_headers(tmp_path):
    bad_shape = write_raw(
        tmp_path / "a", {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8
    )
    with pytest.raises(
        RuntimeError, match=r"corrupt safetensors entry 'w': shape \[3\] of F32 needs 12 bytes"
    ):
        load(bad_shape)
    unknown = write_raw(
        tmp_path / "b", {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8
    )
    with pytest.raises(RuntimeError, match="corrupt or unsupported safetensors entry 'w'"):
        load(unknown)
    gap = write_raw(
        tmp_path / "c",
        {
            "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
            "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
        },
        b"\0" * 6,
    )
    with pytest.raises(RuntimeError, match="overlap or leave gaps"):
        load(gap)
    missing = write_raw(
        tmp_path / "d",
        {
            "__metadata__": {
                "ember": json.dumps({"dict": [["w", {"T": "w"}], ["v", {"T": "nope"}]]})
            },
            "w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        },
        b"\0",
    )
    with pytest.raises(
        RuntimeError,
        match=r"'.*d': the stored structure refers to tensor 'nope', which the file does not contain",
    ):
        load(missing)
    bad_meta = write_raw(tmp_path / "e", {"__metadata__": {"ember": "{oops"}})
    with pytest.raises(RuntimeError, match="ember metadata is not valid JSON"):
        load(bad_meta)
    bad_node = write_raw(tmp_path / "f", {"__metadata__": {"ember": json.dumps({"what": 1})}})
    with pytest.raises(RuntimeError, match="unknown node"):
        load(bad_node)


class _Unseekable(io.RawIOBase):
    """A pipe-like stream: no seek, no tell, short reads."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), 7, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_unseekable_stream_roundtrip():
    buf = io.BytesIO()
    obj = {"w": ember.randn(10, 10), "n": 3}
    save(obj, buf)
    assert_same(obj, load(_Unseekable(buf.getvalue())))


# -- map_location -----------------------------------------------------------------------------


def test_map_location_forms(tmp_path):
    path = tmp_path / "m"
    save({"w": ember.ones(2)}, path)
    for loc in ["cpu", ember.device("cpu"), {"cpu": "cpu"}]:
        assert load(path, map_location=loc)["w"].device == ember.device("cpu")
    seen = []

    def fn(t, location):
        seen.append(location)
        return t * 2

    assert load(path, map_location=fn)["w"].tolist() == [2.0, 2.0] and seen == ["cpu"]
    assert load(path, map_location=lambda t, loc: None)["w"].tolist() == [1.0, 1.0]
    assert load(path, weights_only=False)["w"].tolist() == [1.0, 1.0]


@pytest.mark.skipif(ember.core.backend.is_cuda_available(), reason="checks the CPU-only error")
def test_map_location_cuda_without_gpu(tmp_path):
    path = tmp_path / "m"
    save({"w": ember.ones(2)}, path)
    with pytest.raises(RuntimeError, match="CUDA is not available.*map_location='cpu'"):
        load(path, map_location="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not ember.core.backend.is_cuda_available(), reason="needs a CUDA device")
def test_cuda_tensors_keep_their_device(tmp_path):
    path = tmp_path / "m"
    save({"w": ember.ones(2, device="cuda")}, path)
    assert load(path)["w"].device.type == "cuda"
    assert load(path, map_location="cpu")["w"].device.type == "cpu"
    assert load(path, map_location={"cuda:0": "cpu"})["w"].device.type == "cpu"


# -- interop with safetensors.torch -----------------------------------------------------------


def test_torch_safetensors_file_loads_as_flat_dict(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2)
    )
    model[2].to(torch.bfloat16)
    state = model.state_dict()
    path = tmp_path / "torch.safetensors"
    torch_save_file(state, path)
    out = load(path)
    assert set(out) == set(state)
    for k, v in state.items():
        assert out[k].dtype.name == str(v.dtype).removeprefix("torch.")
        assert tuple(out[k].shape) == tuple(v.shape)
        np.testing.assert_array_equal(
            out[k].numpy().astype(np.float64),
            v.float().numpy() if v.is_floating_point() else v.numpy(),
        )


def test_ember_file_loads_in_safetensors_torch(tmp_path):
    state = {f"t.{d}": make(d, (3, 2)) for d in ALL_DTYPES}
    path = tmp_path / "ember.safetensors"
    save(state, path)
    out = torch_load_file(path)
    assert set(out) == set(state)
    for k, t in state.items():
        ref = t.numpy().astype(np.float64) if t.dtype == ember.bfloat16 else t.numpy()
        got = out[k].float().numpy() if out[k].dtype == torch.bfloat16 else out[k].numpy()
        np.testing.assert_array_equal(got, ref)
    assert ml_dtypes.bfloat16 == state["t.bfloat16"].numpy().dtype


def test_save_file_load_file_helpers(tmp_path):
    path = tmp_path / "h.safetensors"
    serialization.save_file(
        {"a": ember.arange(4), "b": ember.ones(2, 2)}, path, metadata={"k": "v"}
    )
    out = serialization.load_file(path)
    assert out["a"].tolist() == [0, 1, 2, 3] and out["b"].shape == (2, 2)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"k": "v"}
    with pytest.raises(TypeError, match="str keys and tensor values"):
        serialization.save_file({1: ember.ones(1)}, path)
    assert isinstance(pathlib.Path(path), pathlib.Path)
