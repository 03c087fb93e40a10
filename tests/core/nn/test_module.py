"""nn.Module, Parameter, Buffer and the containers, against torch.nn."""

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn


def _to_ember_state(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.GELU(approximate="tanh")
        self.register_buffer("scale", ember.ones(4))
        self.register_buffer("cache", ember.zeros(4), persistent=False)

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class _TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.act = torch.nn.GELU(approximate="tanh")
        self.register_buffer("scale", torch.ones(4))
        self.register_buffer("cache", torch.zeros(4), persistent=False)

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


def _nets():
    e = nn.Sequential(
        nn.Linear(4, 8),
        nn.ReLU(inplace=True),
        nn.ModuleList([_Block(), _Block(), nn.Linear(4, 4, bias=False)]),
        nn.ModuleDict({"head": nn.Linear(8, 3), "drop": nn.Dropout(0.25)}),
        nn.Embedding(10, 4, padding_idx=0),
        nn.LeakyReLU(0.2),
        nn.Softmax(dim=1),
        nn.Flatten(),
    )
    t = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.ReLU(inplace=True),
        torch.nn.ModuleList([_TorchBlock(), _TorchBlock(), torch.nn.Linear(4, 4, bias=False)]),
        torch.nn.ModuleDict({"head": torch.nn.Linear(8, 3), "drop": torch.nn.Dropout(0.25)}),
        torch.nn.Embedding(10, 4, padding_idx=0),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Softmax(dim=1),
        torch.nn.Flatten(),
    )
    return e, t


def test_repr_matches_torch():
    e, t = _nets()
    assert repr(e).replace("_Block", "X") == repr(t).replace("_TorchBlock", "X")


def test_state_dict_keys_and_parameter_names_match_torch():
    e, t = _nets()
    assert list(e.state_dict()) == list(t.state_dict())
    assert [n for n, _ in e.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in e.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in e.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in e.named_children()] == [n for n, _ in t.named_children()]
    for (_, pe), (_, pt) in zip(e.named_parameters(), t.named_parameters()):
        assert tuple(pe.shape) == tuple(pt.shape)


def test_load_torch_state_dict_and_match_forward():
    torch.manual_seed(0)
    tb, eb = _TorchBlock(), _Block()
    result = eb.load_state_dict(_to_ember_state(tb))
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(
        eb(ember.tensor(x)).detach().numpy(), tb(torch.tensor(x)).detach().numpy(), atol=1e-6
    )


def test_load_state_dict_accepts_ember_tensors_and_keeps_identity():
    a, b = _Block(), _Block()
    w = b.fc.weight
    b.load_state_dict(a.state_dict())
    assert b.fc.weight is w
    np.testing.assert_array_equal(b.fc.weight.detach().numpy(), a.fc.weight.detach().numpy())
    assert b.fc.weight.requires_grad


def test_load_state_dict_errors_list_keys_and_sizes():
    m = _Block()
    sd = _to_ember_state(m)
    sd["fc.weight"] = np.zeros((3, 4), np.float32)
    del sd["fc.bias"]
    sd["extra.weight"] = np.zeros(2, np.float32)
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for _Block:")
    assert 'Missing key(s) in state_dict: "fc.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight".' in msg
    assert (
        "size mismatch for fc.weight: copying a param with shape ember.Size([3, 4]) from "
        "checkpoint, the shape in current model is ember.Size([4, 4])." in msg
    )
    del sd["fc.weight"], sd["extra.weight"]
    result = m.load_state_dict(sd, strict=False)  # torch still reports the keys
    assert result.missing_keys == ["fc.weight", "fc.bias"] and result.unexpected_keys == []
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([1, 2])


def test_load_state_dict_strict_false_reports_keys_and_assign():
    m = nn.Linear(2, 2)
    res = m.load_state_dict(
        {"weight": np.ones((2, 2), np.float32), "zzz": np.ones(1)}, strict=False
    )
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["zzz"]
    new_w = ember.full((2, 2), 3.0)
    m.load_state_dict({"weight": new_w, "bias": ember.zeros(2)}, assign=True)
    assert isinstance(m.weight, nn.Parameter) and m.weight._array is new_w._array
    assert m.weight.requires_grad


def test_state_dict_excludes_non_persistent_and_detaches():
    m = _Block()
    sd = m.state_dict()
    assert "cache" not in sd and "scale" in sd
    assert not sd["fc.weight"].requires_grad
    assert sd["fc.weight"]._array is m.fc.weight._array
    assert m.state_dict(keep_vars=True)["fc.weight"] is m.fc.weight
    assert list(m.state_dict(prefix="blk.")) == ["blk.scale", "blk.fc.weight", "blk.fc.bias"]


def test_setattr_registration_and_delattr():
    m = nn.Module()
    m.w = nn.Parameter(ember.zeros(2))
    m.b = nn.Buffer(ember.zeros(3), persistent=False)
    m.sub = nn.Linear(2, 2)
    m.plain = ember.zeros(1)
    assert [n for n, _ in m.named_parameters()] == ["w", "sub.weight", "sub.bias"]
    assert [n for n, _ in m.named_buffers()] == ["b"]
    assert list(m.state_dict()) == ["w", "sub.weight", "sub.bias"]
    assert "plain" not in dict(m.named_buffers())
    m.b = ember.ones(3)  # reassigning a buffer keeps it a (non-persistent) buffer
    assert "b" in m._buffers and "b" not in m.state_dict()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = ember.zeros(2)
    m.w = None
    assert list(dict(m.named_parameters())) == ["sub.weight", "sub.bias"]
    del m.sub
    assert not hasattr(m, "sub")
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        m.nope  # noqa: B018
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", ember.zeros(1))
    with pytest.raises(KeyError, match="already exists"):
        m.register_parameter("plain", nn.Parameter(ember.zeros(1)))
    with pytest.raises(TypeError, match="ember.nn.Parameter or None required"):
        m.register_parameter("q", ember.zeros(1))


def test_parameters_shared_are_deduplicated():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2
    assert len(list(m.named_parameters(remove_duplicate=False))) == 4
    assert [n for n, _ in m.named_modules()] == ["", "0", "1"]
    assert [n for n, _ in m.named_parameters(prefix="model")] == ["model.0.weight", "model.0.bias"]
    assert len(list(m.parameters(recurse=False))) == 0


def test_parameter_and_buffer_basics():
    t = ember.randn(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, ember.Tensor) and p.requires_grad and p._array is t._array
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    b = nn.Buffer(t, persistent=False)
    assert isinstance(b, ember.Tensor) and not b.persistent and not b.requires_grad
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q._array is not p._array and q.requires_grad
    r = pickle.loads(pickle.dumps(p))
    assert isinstance(r, nn.Parameter)
    np.testing.assert_array_equal(r.detach().numpy(), p.detach().numpy())


def test_deepcopy_and_pickle_module():
    m = _Block()
    c = copy.deepcopy(m)
    assert c.fc.weight is not m.fc.weight
    np.testing.assert_array_equal(c.fc.weight.detach().numpy(), m.fc.weight.detach().numpy())
    d = pickle.loads(pickle.dumps(m))
    assert list(d.state_dict()) == list(m.state_dict())
    x = ember.randn(2, 4)
    np.testing.assert_allclose(d(x).detach().numpy(), m(x).detach().numpy())


def test_train_eval_apply_requires_grad():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.Linear(2, 2)))
    assert m.training and m[1][0].training
    m.eval()
    assert not m.training and not m[1][0].training
    assert m.train() is m and m[1][1].training
    with pytest.raises(ValueError, match="boolean"):
        m.train("yes")
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Dropout", "Linear", "Sequential", "Sequential"]
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_zero_grad():
    m = nn.Linear(3, 2)
    m(ember.randn(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert np.all(m.weight.grad.numpy() == 0)
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_to_dtype_casts_in_place_and_keeps_identity():
    m = _Block()
    m.register_buffer("steps", ember.tensor(3))
    w = m.fc.weight
    m(ember.randn(2, 4)).sum().backward()
    assert m.to(ember.float64) is m
    assert m.fc.weight is w and w.dtype == ember.float64 and w.grad.dtype == ember.float64
    assert m.scale.dtype == ember.float64 and m.steps.dtype == ember.int64
    m.float()
    assert w.dtype == ember.float32
    m.half()
    assert w.dtype == ember.float16
    m.bfloat16()
    assert w.dtype == ember.bfloat16
    m.double().to("cpu")
    assert m.fc.weight.device == ember.device("cpu")
    assert m(ember.randn(2, 4, dtype=ember.float64)).dtype == ember.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(ember.int32)


def test_get_submodule_parameter_buffer():
    m = nn.Sequential(OrderedDict(enc=nn.Sequential(nn.Linear(2, 3)), out=_Block()))
    assert m.get_submodule("enc.0") is m.enc[0]
    assert m.get_parameter("enc.0.bias") is m.enc[0].bias
    assert m.get_buffer("out.scale") is m.out.scale
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        m.get_submodule("enc.nope")
    with pytest.raises(AttributeError, match="not an nn.Parameter"):
        m.get_parameter("out.scale")
    assert "enc" in dir(m) and "out" in dir(m)


def test_forward_hooks():
    m = nn.Linear(2, 2)
    calls = []

    def pre(mod, args):
        calls.append("pre")
        return (args[0] * 0,)

    def post(mod, args, out):
        calls.append("post")
        return out + 1

    h1 = m.register_forward_pre_hook(pre)
    h2 = m.register_forward_hook(post)
    out = m(ember.randn(3, 2))
    np.testing.assert_allclose(
        out.detach().numpy(), (m.bias.detach().numpy() + 1)[None].repeat(3, 0), rtol=1e-6
    )
    assert calls == ["pre", "post"]
    h1.remove()
    h2.remove()
    x = ember.randn(3, 2)
    np.testing.assert_allclose(
        m(x).detach().numpy(),
        (x.numpy() @ m.weight.detach().numpy().T) + m.bias.detach().numpy(),
        rtol=1e-5,
    )

    def pre_kw(mod, args, kwargs):
        return args, kwargs

    def post_kw(mod, args, kwargs, out):
        calls.append(("kw", sorted(kwargs)))

    m.register_forward_pre_hook(pre_kw, with_kwargs=True)
    m.register_forward_hook(post_kw, with_kwargs=True)
    m(input=ember.randn(1, 2))
    assert calls[-1] == ("kw", ["input"])


def test_full_backward_hook_matches_torch():
    torch.manual_seed(0)
    t = torch.nn.Linear(3, 2)
    e = nn.Linear(3, 2)
    e.load_state_dict(_to_ember_state(t))
    got = {}

    def make(store, double):
        def hook(mod, grad_input, grad_output):
            store["in"] = [g.detach().numpy().copy() for g in grad_input]
            store["out"] = [g.detach().numpy().copy() for g in grad_output]
            if double:
                return tuple(g * 2 for g in grad_input)
            return None

        return hook

    ref = {}
    t.register_full_backward_hook(make(ref, True))
    e.register_full_backward_hook(make(got, True))
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    xe = ember.tensor(x, requires_grad=True)
    (t(xt) ** 2).sum().backward()
    (e(xe) ** 2).sum().backward()
    for a, b in zip(got["in"] + got["out"], ref["in"] + ref["out"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_module_without_forward_and_init_errors():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)

    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(ember.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_sequential_indexing_and_mutation():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and s[0] is layers[0] and s[-1] is layers[2]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == layers[1:]
    assert list(sub._modules) == ["1", "2"]  # torch keeps the original keys on slicing
    s.append(nn.Tanh())
    assert len(s) == 4 and isinstance(s[3], nn.Tanh)
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and s[1] is layers[2]
    s.insert(1, nn.Sigmoid())
    assert isinstance(s[1], nn.Sigmoid)
    assert s(ember.randn(5, 2)).shape == (5, 3)
    with pytest.raises(IndexError, match="index 9 is out of range"):
        s[9]
    s2 = s + nn.Sequential(nn.Identity())
    assert len(s2) == len(s) + 1
    od = nn.Sequential(OrderedDict([("a", nn.Linear(1, 1)), ("b", nn.ReLU())]))
    assert list(od.state_dict()) == ["a.weight", "a.bias"]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert len(ml) == 6 and isinstance(ml[0], nn.Identity) and isinstance(ml[-1], nn.Tanh)
    assert [n for n, _ in ml.named_parameters()][:2] == ["1.weight", "1.bias"]
    tl = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)] + [torch.nn.ReLU()])
    el = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)] + [nn.ReLU()])
    assert repr(el) == repr(tl)
    assert repr(nn.ModuleList()) == "ModuleList()"
    md = nn.ModuleDict({"b": nn.Linear(1, 1), "a": nn.ReLU()})
    assert list(md.keys()) == ["b", "a"] and "a" in md and len(md) == 2
    md["c"] = nn.Tanh()
    assert md.pop("a").__class__ is nn.ReLU and list(md) == ["b", "c"]
    td = torch.nn.ModuleDict({"b": torch.nn.Linear(1, 1), "c": torch.nn.Tanh()})
    assert repr(md) == repr(td)
    with pytest.raises(ValueError, match="has length 1"):
        md.update([("x",)])


def test_parameter_list_and_dict():
    pl = nn.ParameterList([nn.Parameter(ember.zeros(2)), ember.ones(3)])
    assert isinstance(pl[1], nn.Parameter) and len(pl) == 2
    pl.append(ember.zeros(1, 2))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    tpl = torch.nn.ParameterList(
        [torch.nn.Parameter(torch.zeros(2)), torch.ones(3), torch.zeros(1, 2)]
    )
    assert repr(pl).replace("ember.", "torch.") == repr(tpl)
    pd = nn.ParameterDict({"b": ember.zeros(2), "a": nn.Parameter(ember.ones(1))})
    tpd = torch.nn.ParameterDict({"b": torch.zeros(2), "a": torch.nn.Parameter(torch.ones(1))})
    assert list(pd) == list(tpd) and list(pd.state_dict()) == list(tpd.state_dict())
    assert repr(pd).replace("ember.", "torch.") == repr(tpd)
    assert "a" in pd and pd.get("zz") is None
    del pd["a"]
    assert list(pd.keys()) == ["b"]


def test_full_backward_hook_input_without_grad_gets_none():
    m = nn.Linear(3, 2)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go[0].shape)))
    m(ember.randn(4, 3)).sum().backward()
    assert seen == [((None,), (4, 2))]
    t = torch.nn.Linear(3, 2)
    ref = []
    t.register_full_backward_hook(lambda mod, gi, go: ref.append((gi, tuple(go[0].shape))))
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        t(torch.randn(4, 3)).sum().backward()
    assert ref == [((None,), (4, 2))]
