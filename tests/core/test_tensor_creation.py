import numpy as np
import pytest
import torch

import ember


def test_tensor_infers_torch_dtypes():
    assert ember.tensor([1, 2]).dtype is ember.int64
    assert ember.tensor([1.0, 2]).dtype is ember.float32
    assert ember.tensor(True).dtype is ember.bool
    assert ember.tensor(np.zeros(2, np.float64)).dtype is ember.float64
    assert ember.tensor([1, 2], dtype=ember.float16).dtype is ember.float16
    assert ember.tensor([1.5], dtype=ember.bfloat16).item() == 1.5


def test_factories_match_torch():
    assert ember.zeros(2, 3).shape == (2, 3)
    assert ember.ones((2, 3)).tolist() == torch.ones(2, 3).tolist()
    assert ember.full((2,), 7).dtype is ember.int64
    assert ember.full((2,), 7.0).dtype is ember.float32
    assert ember.arange(5).tolist() == list(range(5))
    assert ember.arange(5).dtype is ember.int64
    np.testing.assert_allclose(ember.arange(0, 1, 0.25).numpy(), torch.arange(0, 1, 0.25).numpy())
    np.testing.assert_allclose(ember.linspace(0, 1, 5).numpy(), torch.linspace(0, 1, 5).numpy())
    assert ember.eye(3).tolist() == torch.eye(3).tolist()
    x = ember.ones(2, 3, dtype=ember.float64)
    assert ember.zeros_like(x).dtype is ember.float64 and ember.ones_like(x).shape == (2, 3)
    assert ember.full_like(x, 2).tolist() == [[2.0] * 3] * 2
    assert x.new_zeros(4).dtype is ember.float64


def test_from_numpy_shares_memory_and_as_tensor():
    a = np.zeros(3, np.float32)
    t = ember.from_numpy(a)
    a[0] = 5
    assert t[0].item() == 5
    assert ember.as_tensor(a)._array is a or np.shares_memory(ember.as_tensor(a)._array, a)
    assert not np.shares_memory(ember.tensor(a)._array, a)


def test_manual_seed_reproduces_exactly():
    ember.manual_seed(123)
    a = (ember.rand(5), ember.randn(5), ember.randint(0, 10, (5,)), ember.randperm(6))
    ember.manual_seed(123)
    b = (ember.rand(5), ember.randn(5), ember.randint(0, 10, (5,)), ember.randperm(6))
    for x, y in zip(a, b):
        assert x.tolist() == y.tolist()
    assert a[3].sort().values.tolist() == list(range(6))
    g = ember.Generator().manual_seed(1)
    s1 = ember.rand(3, generator=g).tolist()
    g.manual_seed(1)
    assert ember.rand(3, generator=g).tolist() == s1


def test_rng_state_round_trip():
    ember.manual_seed(0)
    state = ember.get_rng_state()
    first = ember.randn(4).tolist()
    ember.set_rng_state(state)
    assert ember.randn(4).tolist() == first


def test_random_distributions_are_plausible():
    ember.manual_seed(0)
    x = ember.randn(20000)
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05
    u = ember.rand(20000)
    assert 0 <= u.min().item() and u.max().item() < 1
    n = ember.normal(2.0, 3.0, (20000,))
    assert abs(n.mean().item() - 2) < 0.1
    r = ember.randint(3, 7, (1000,))
    assert r.min().item() == 3 and r.max().item() == 6


def test_device_and_to():
    x = ember.ones(2)
    assert x.device == ember.device("cpu") and str(x.device) == "cpu"
    assert x.to("cpu") is x
    assert x.to(ember.float64).dtype is ember.float64
    assert ember.device("cuda:1").index == 1
    with pytest.raises(RuntimeError, match="unknown device type"):
        ember.device("tpu")


def test_item_bool_and_errors():
    assert ember.tensor([3.5]).item() == 3.5
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        ember.ones(2).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(ember.ones(2))
    with pytest.raises(RuntimeError, match="requires grad"):
        ember.ones(1, requires_grad=True).numpy()


def test_repr_like_torch():
    assert repr(ember.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert "requires_grad=True" in repr(ember.ones(1, requires_grad=True))
    assert "dtype=ember.float64" in repr(ember.ones(1, dtype=ember.float64))


def test_cuda_is_optional():
    assert isinstance(ember.cuda.is_available(), bool)


def test_wrap_array_shares_memory_without_history():
    from ember.core.tensor import wrap_array

    a = np.arange(3, dtype=np.float32)
    t = wrap_array(a)
    assert t._array is a and not t.requires_grad and t.grad_fn is None and t.is_leaf
    a[0] = 7
    assert t.tolist() == [7.0, 1.0, 2.0]
