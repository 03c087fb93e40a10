"""Hooks for ``Module``: forward (pre-)hooks and full backward hooks."""

from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..tensor import Tensor, wrap_array
from ..utils.hooks import RemovableHandle, add_hook, pre_hook_result


class _BackwardHookIdentity(Function):
    """Identity on every tensor passed; its backward reports the gradients to a hook."""

    @staticmethod
    def forward(ctx, *arrays, callback=None):
        ctx.callback = callback
        return tuple(a.view() for a in arrays)

    @staticmethod
    def backward(ctx, *grads):
        result = ctx.callback(grads)
        return tuple(grads) if result is None else tuple(result)


class _BackwardHookState:
    """Connects the gradients w.r.t. a module's outputs and inputs for its hooks.
    ``grad_input`` has one entry per positional tensor input (None for those that do
    not require grad), as in PyTorch."""

    def __init__(self, module):
        self.module = module
        self.grad_outputs = None
        self.n_tensors = 0
        self.grad_slots = ()  # positions, among the tensor inputs, of those requiring grad

    def wrap_inputs(self, args):
        tensors = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.n_tensors = len(tensors)
        self.grad_slots = [k for k, i in enumerate(tensors) if args[i].requires_grad]
        if not self.grad_slots or not autograd.is_grad_enabled():
            self.grad_slots = ()
            return args
        idx = [tensors[k] for k in self.grad_slots]
        wrapped = _BackwardHookIdentity.apply(*(args[i] for i in idx), callback=self._on_inputs)
        args = list(args)
        for i, t in zip(idx, wrapped):
            args[i] = t
        return tuple(args)

    def wrap_outputs(self, output):
        outs = output if isinstance(output, tuple) else (output,)
        idx = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not idx or not autograd.is_grad_enabled():
            return output
        wrapped = _BackwardHookIdentity.apply(*(outs[i] for i in idx), callback=self._on_outputs)
        outs = list(outs)
        for i, t in zip(idx, wrapped):
            outs[i] = t
        return tuple(outs) if isinstance(output, tuple) else outs[0]

    def _on_outputs(self, grads):
        self.grad_outputs = tuple(None if g is None else _hook_tensor(g) for g in grads)
        if not self.grad_slots:  # no input gradient will come: run the hooks now
            self._run_hooks((None,) * self.n_tensors)
        return None

    def _on_inputs(self, grads):
        grads_in = [None] * self.n_tensors
        for k, g in zip(self.grad_slots, grads):
            grads_in[k] = None if g is None else _hook_tensor(g)
        result = self._run_hooks(tuple(grads_in))
        if result is None:
            return None
        return tuple(result[k] for k in self.grad_slots)

    def _run_hooks(self, grads_in):
        replaced = None
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grads_in, self.grad_outputs)
            if result is not None:
                result = tuple(result) if isinstance(result, tuple | list) else (result,)
                if len(result) != len(grads_in):
                    raise RuntimeError(
                        f"Backward hook returned an invalid number of grad_input, got "
                        f"{len(result)}, but expected {len(grads_in)}"
                    )
                grads_in = result
                replaced = result
        if replaced is None:
            return None
        return tuple(
            g._array if isinstance(g, Tensor) and not autograd._create_graph else g
            for g in replaced
        )


class _HookMixin:
    """``Module``'s forward/backward hook registration and the hooked call path."""

    def _call_with_hooks(self, args, kwargs):
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                args, kwargs = pre_hook_result(result, args, kwargs, "forward pre-hook")
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        state = None
        if self._backward_hooks:
            state = _BackwardHookState(self)
            args = state.wrap_inputs(args)
        output = self.forward(*args, **kwargs)
        for hook_id, hook in list(self._forward_hooks.items()):
            if hook_id in self._forward_hooks_with_kwargs:
                result = hook(self, args, kwargs, output)
            else:
                result = hook(self, args, output)
            if result is not None:
                output = result
        if state is not None:
            output = state.wrap_outputs(output)
        return output

    def register_forward_pre_hook(
        self, hook, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        r"""``hook(module, args)`` (or ``hook(module, args, kwargs)`` with ``with_kwargs``)
        runs before ``forward``; a non-None result replaces the inputs."""
        handle = add_hook(
            self._forward_pre_hooks,
            hook,
            prepend=prepend,
            extra_dict=self._forward_pre_hooks_with_kwargs,
        )
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[handle.id] = True
        return handle

    def register_forward_hook(
        self, hook, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        r"""``hook(module, args, output)`` (or ``hook(module, args, kwargs, output)``)
        runs after ``forward``; a non-None result replaces the output."""
        handle = add_hook(
            self._forward_hooks, hook, prepend=prepend, extra_dict=self._forward_hooks_with_kwargs
        )
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        return handle

    def register_full_backward_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        r"""``hook(module, grad_input, grad_output)`` runs when the gradients w.r.t. the
        module's tensor inputs are computed; a non-None result replaces ``grad_input``."""
        return add_hook(self._backward_hooks, hook, prepend=prepend)

    def register_state_dict_post_hook(self, hook) -> RemovableHandle:
        r"""``hook(module, state_dict, prefix, local_metadata)`` runs after ``state_dict``
        has filled in this module's entries."""
        return add_hook(self._state_dict_hooks, hook)

    def register_load_state_dict_post_hook(self, hook) -> RemovableHandle:
        r"""``hook(module, incompatible_keys)`` runs after ``load_state_dict``."""
        return add_hook(self._load_state_dict_post_hooks, hook)


def _hook_tensor(g):
    return g if isinstance(g, Tensor) else wrap_array(g)
