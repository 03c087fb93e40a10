import numpy as np
import pytest
import torch

import ember


def test_gradients_accumulate_on_leaves():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(ember.ones(2))
    (x * x).backward(ember.ones(2))
    assert x.grad.tolist() == [5.0, 7.0]


def test_broadcast_gradient_reduces_to_input_shape():
    x = ember.ones(3, 1, requires_grad=True)
    y = ember.ones(4, requires_grad=True)
    (x * y).backward(ember.ones(3, 4))
    assert x.grad.shape == (3, 1) and x.grad.tolist() == [[4.0]] * 3
    assert y.grad.tolist() == [3.0] * 4


def test_same_tensor_used_twice_and_shared_subgraph():
    x = ember.tensor([2.0], requires_grad=True)
    y = x * x
    z = y + y * x
    z.backward(ember.ones(1))
    # z = x^2 + x^3 -> 2x + 3x^2
    assert x.grad.tolist() == [16.0]


def test_leaf_grads_do_not_alias_each_other():
    a = ember.ones(2, requires_grad=True)
    b = ember.ones(2, requires_grad=True)
    (a + b).backward(ember.ones(2))
    a.grad.data += 1
    assert b.grad.tolist() == [1.0, 1.0]


def test_backward_twice_without_retain_graph_is_a_clear_error():
    x = ember.tensor([1.0], requires_grad=True)
    y = (x * x).exp()
    y.backward(ember.ones(1), retain_graph=True)
    y.backward(ember.ones(1))
    assert np.isclose(x.grad.item(), 2 * 2 * np.e)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward(ember.ones(1))


@pytest.mark.parametrize(
    "graph",
    [
        lambda m, x: (x + 1).sum(),
        lambda m, x: x.view(3, 1)[1:].mean(),
        lambda m, x: (x * 2).sum(),
        lambda m, x: (x * x).sum(),
        lambda m, x: m.nn.functional.softmax(x, 0).sum(),
    ],
    ids=["add", "view-index-mean", "mul-scalar", "mul", "softmax"],
)
def test_second_backward_without_retain_graph_fails_where_torch_fails(graph):
    # Only a node whose saved tensors were freed refuses to run again: one that saved
    # nothing (x + 1, views, mean) runs twice in PyTorch, and so in ember.
    outcomes = []
    for m in (torch, ember):
        x = m.ones(3, requires_grad=True)
        y = graph(m, x)
        y.backward()
        try:
            y.backward()
            outcomes.append(("ran", x.grad.tolist()))
        except RuntimeError as error:
            assert "backward through the graph a second time" in str(error)
            outcomes.append(("refused", x.grad.tolist()))
    assert outcomes[1] == outcomes[0]


def test_backward_needs_scalar_or_gradient():
    x = ember.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        ember.ones(2).backward(ember.ones(2))
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(ember.ones(2))


def test_long_chain_is_iterative():
    x = ember.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward(ember.ones(1))
    assert x.grad.tolist() == [1.0]


def test_no_grad_enable_grad_and_set_grad_enabled():
    x = ember.ones(2, requires_grad=True)
    with ember.no_grad():
        assert not (x * 2).requires_grad
        with ember.enable_grad():
            assert (x * 2).requires_grad
    with ember.set_grad_enabled(False):
        assert not ember.is_grad_enabled()
    assert ember.is_grad_enabled()
    with ember.inference_mode():
        assert not (x * 2).requires_grad

    @ember.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad


def test_detach_shares_memory_and_stops_gradient():
    x = ember.ones(2, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    with ember.no_grad():
        x.mul_(3)
    assert d.tolist() == [3.0, 3.0]


def test_requires_grad_only_for_floats():
    with pytest.raises(RuntimeError, match="floating point"):
        ember.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="leaf variables"):
        (ember.ones(1, requires_grad=True) * 2).requires_grad_(False)


def test_hooks_on_leaf_and_non_leaf():
    x = ember.ones(2, requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()) or g * 10)
    y = x * 2
    y.register_hook(lambda g: g + 1)
    y.backward(ember.ones(2))
    assert seen == [[4.0, 4.0]]
    assert x.grad.tolist() == [40.0, 40.0]


def test_hook_handle_remove():
    x = ember.ones(1, requires_grad=True)
    handle = x.register_hook(lambda g: g * 0)
    handle.remove()
    (x * 2).backward(ember.ones(1))
    assert x.grad.tolist() == [2.0]


def test_retain_grad():
    x = ember.ones(2, requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).backward(ember.ones(2))
    assert y.grad.tolist() == [6.0, 6.0]


def test_post_accumulate_grad_hooks_fire_during_backward_in_reverse_order():
    w1 = ember.ones(2, requires_grad=True)
    w2 = ember.ones(2, requires_grad=True)
    order = []
    for name, w in (("w1", w1), ("w2", w2)):
        w.register_post_accumulate_grad_hook(lambda t, n=name: order.append((n, t.grad.tolist())))
    h = (ember.ones(2) * w1).tanh()
    out = h * w2
    out.backward(ember.ones(2))
    assert [n for n, _ in order] == ["w2", "w1"]
    assert order[0][1] == pytest.approx([np.tanh(1.0)] * 2)
    with pytest.raises(RuntimeError, match="non-leaf"):
        out.register_post_accumulate_grad_hook(lambda t: None)


def test_autograd_grad_and_double_backward_gradient_penalty():
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((4, 3)), rng.standard_normal((3,))

    def run(lib):
        x = lib.tensor(x0, requires_grad=True)
        w = lib.tensor(w0, requires_grad=True)
        out = (x * w).tanh() * (x * x)
        (g,) = lib.autograd.grad(out, x, grad_outputs=lib.ones_like(out), create_graph=True)
        penalty = (g * g) * 0.5
        penalty.backward(lib.ones_like(penalty))
        return g.detach().numpy(), x.grad.numpy(), w.grad.numpy()

    for ours, ref in zip(run(ember), run(torch)):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_autograd_grad_unused_input():
    x = ember.ones(1, requires_grad=True)
    y = ember.ones(1, requires_grad=True)
    with pytest.raises(RuntimeError, match="not have been used"):
        ember.autograd.grad(x * 2, [x, y], grad_outputs=ember.ones(1))
    gx, gy = ember.autograd.grad(x * 2, [x, y], grad_outputs=ember.ones(1), allow_unused=True)
    assert gx.tolist() == [2.0] and gy is None
    assert x.grad is None  # grad() does not accumulate


def test_custom_function():
    class Cube(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x * x

    x = ember.tensor([1.0, 2.0], dtype=ember.float64, requires_grad=True)
    y = Cube.apply(x)
    assert y.grad_fn is not None
    assert ember.autograd.gradcheck(Cube.apply, (x,))
    (g,) = ember.autograd.grad(Cube.apply(x), x, ember.ones_like(x), create_graph=True)
    g.backward(ember.ones_like(g))
    assert x.grad.tolist() == [6.0, 12.0]


def test_gradcheck_catches_a_wrong_backward():
    class Wrong(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = ember.tensor([1.0, 2.0], dtype=ember.float64, requires_grad=True)
    with pytest.raises(ember.autograd.GradcheckError, match="Jacobian mismatch"):
        ember.autograd.gradcheck(Wrong.apply, (x,))


def test_saved_tensors_released_after_backward():
    x = ember.ones(3, requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    y.backward(ember.ones(3))
    assert node._saved is None


def test_multi_output_with_unused_output_gets_zero_grad():
    x = ember.tensor([[1.0, 5.0], [3.0, 2.0]], requires_grad=True)
    a, b = x.unbind(0)
    (a * 2).backward(ember.ones(2))
    assert x.grad.tolist() == [[2.0, 2.0], [0.0, 0.0]]


def test_an_error_raised_in_forward_reaches_the_caller_unchanged():
    class Checked(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            try:
                {}["scale"]
            except KeyError as missing:
                raise ValueError("no scale given") from missing

        @staticmethod
        def backward(ctx, grad):
            return grad

    for requires_grad in (False, True):
        with pytest.raises(ValueError, match="no scale given") as raised:
            Checked.apply(ember.ones(2, requires_grad=requires_grad))
        assert isinstance(raised.value.__cause__, KeyError)
