"""The one ``RemovableHandle`` that module, tensor and optimizer hooks return, with
``torch.utils.hooks.RemovableHandle``'s semantics, run side by side with torch."""

import pytest
import torch

import ember
import ember.nn as nn
import ember.optim as optim
from ember.utils.hooks import RemovableHandle


def _registrations(lib):
    """(name, register(hook) -> handle, fire() -> calls seen) for each hook kind."""
    calls = []
    model = lib.nn.Linear(2, 2)
    x = lib.ones(1, 2, requires_grad=True)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)

    def fire_module():
        model(lib.ones(1, 2, requires_grad=True)).sum().backward()

    def fire_tensor():
        (x * 2).sum().backward()

    def fire_opt():
        model(lib.ones(1, 2)).sum().backward()
        opt.step()

    def hook(*args):
        calls.append(1)

    return calls, [
        ("forward", lambda: model.register_forward_hook(hook), fire_module),
        ("forward_pre", lambda: model.register_forward_pre_hook(hook), fire_module),
        ("full_backward", lambda: model.register_full_backward_hook(hook), fire_module),
        ("state_dict_post", lambda: model.register_state_dict_post_hook(hook), model.state_dict),
        ("tensor", lambda: x.register_hook(hook), fire_tensor),
        ("post_accumulate", lambda: x.register_post_accumulate_grad_hook(hook), fire_tensor),
        ("step_pre", lambda: opt.register_step_pre_hook(hook), fire_opt),
        ("step_post", lambda: opt.register_step_post_hook(hook), fire_opt),
    ]


@pytest.mark.parametrize("kind", range(8))
def test_every_hook_kind_returns_the_shared_handle(kind):
    results = {}
    for lib in (ember, torch):
        calls, regs = _registrations(lib)
        name, register, fire = regs[kind]
        handle = register()
        fire()
        fired = len(calls)
        handle.remove()
        handle.remove()  # a second remove is a no-op
        fire()
        results[lib.__name__] = (fired > 0, len(calls) == fired)
        if lib is ember:
            assert isinstance(handle, RemovableHandle), name
    assert results["ember"] == results["torch"] == (True, True)


def test_context_manager_removes_on_exit_even_after_an_error():
    model = nn.Linear(2, 2)
    seen = []
    with model.register_forward_hook(lambda m, a, out: seen.append(out.shape)) as handle:
        model(ember.ones(3, 2))
    model(ember.ones(3, 2))
    assert seen == [(3, 2)] and isinstance(handle, RemovableHandle)
    with pytest.raises(ValueError), model.register_forward_hook(lambda *a: seen.append(0)):
        raise ValueError("inside the block")
    model(ember.ones(3, 2))
    assert seen == [(3, 2)]


def test_removing_one_of_two_registrations_of_the_same_function():
    # each handle removes its own registration, not the first equal one
    seen = []

    def hook(grad):
        seen.append(float(grad.sum()))
        return grad * 10

    x = ember.ones(2, requires_grad=True)
    y = x * 1
    first = y.register_hook(hook)
    y.register_hook(hook)
    first.remove()
    y.sum().backward()
    assert seen == [2.0]
    assert x.grad.tolist() == [10.0, 10.0]


def test_a_hook_that_removes_itself_while_running():
    handles = []

    def once(grad):
        handles[0].remove()
        return grad * 3

    x = ember.ones(2, requires_grad=True)
    handles.append(x.register_hook(once))
    x.sum().backward()
    x.sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]  # 3 from the hooked pass, 1 from the second


def test_prepend_and_with_kwargs_flags_removed_with_the_hook():
    model = nn.Linear(2, 2)
    order = []
    model.register_forward_pre_hook(lambda m, a: order.append("second"))
    handle = model.register_forward_pre_hook(
        lambda m, a, kw: order.append("first"), prepend=True, with_kwargs=True
    )
    model(ember.ones(1, 2))
    assert order == ["first", "second"]
    handle.remove()
    assert handle.id not in model._forward_pre_hooks_with_kwargs
    order.clear()
    model(ember.ones(1, 2))
    assert order == ["second"]


def test_handle_ids_are_unique_and_extra_dicts_are_cleared():
    hooks, flags, more = {}, {}, {}
    a = RemovableHandle(hooks, extra_dict=flags)
    b = RemovableHandle(hooks, extra_dict=[flags, more])
    assert a.id != b.id
    hooks[a.id] = hooks[b.id] = print
    flags[a.id] = flags[b.id] = more[b.id] = True
    b.remove()
    assert hooks == {a.id: print} and flags == {a.id: True} and more == {}


def test_global_optimizer_hooks_use_the_handle():
    p = ember.zeros(1, requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    seen = []
    with optim.optimizer.register_optimizer_step_post_hook(lambda o, a, k: seen.append(o)):
        p.grad = ember.ones(1)
        opt.step()
    opt.step()
    assert seen == [opt]
