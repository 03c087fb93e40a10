r"""How to declare an op: the one way.

An op is a ``Function`` subclass (``core/autograd.py``): ``forward(ctx, *arrays, **params)``
and ``backward(ctx, *grads)`` side by side, on raw arrays, written once against ``xp``.
Three class attributes declare the policies its public form applies (a fourth,
``broadcasts``, is set by ``binary`` and on add/sub/mul/div: ``Function.apply`` then turns
NumPy's ValueError for operands that do not broadcast into PyTorch's message):

``autocast``
    its entry in PyTorch's autocast lists: ``"lower"`` (floating inputs to the region's
    float16/bfloat16), ``"fp32"`` (to float32) or ``"promote"`` (to the widest floating
    dtype among them); ``"cuda:"`` or ``"cpu:"`` in front limits it to regions of that
    device type; entries for both device types are separated by a space (``"cuda:banned
    cpu:fp32"``); ``"banned"`` raises inside a region (``binary_cross_entropy`` on CUDA).
    ``None`` (default): inputs stay as they are. An op with a ``dtype``
    argument is not cast when ``dtype`` is given, as in PyTorch. The declaration puts the
    entry in ``amp._POLICY``, which ``amp.cast_for`` reads.
``promotes``
    how the operands meet: ``None`` (default: as given), ``"common"`` (PyTorch's type
    promotion to one dtype; Python numbers stay numbers) or ``"float"`` (common, then an
    integer or bool result goes to the default float dtype, as for ``exp`` or ``div``).
    The declaration binds ``cls.promote(op_name, a, b)``, which does it.
``differentiable_backward``
    ``True`` when backward is written with operators and helpers that also run on Tensors
    (``call``, ``sum_to``, ``Function.apply``), so ``create_graph=True`` records it and the
    op has a double backward; otherwise double backward raises a clear error.

When nothing records (``no_grad``, or no input requires grad) ``forward`` gets the shared
``autograd.NO_GRAD_CTX``, whose ``save_for_backward`` does nothing; a forward that stores
more on ``ctx`` for its backward (``ctx.shapes = ...``) skips it under ``if ctx is not
NO_GRAD_CTX`` (add and sub do).

The functional form (``ember.exp``) and the Tensor methods (``Tensor.exp``, ``Tensor.exp_``,
``__add__``, ...) come from the declaration, written next to the class::

    class Exp(Function):
        autocast, promotes, differentiable_backward = "cuda:fp32", "float", True
        # forward(ctx, x) and backward(ctx, grad): staticmethods on arrays

    exp = unary(Exp, "exp", inplace=True)  # ember.exp, Tensor.exp, Tensor.exp_

- ``unary(cls, name, ...)`` and ``binary(cls, name, ...)`` generate the functional form of
  a one- or two-operand op from its declaration.
- An op whose arguments need more (dims, options, validation) writes its functional form
  by hand under ``@declared(cls, ...)``: the decorator runs the declared ``autocast``
  before the body and attaches the Tensor methods; the body promotes with
  ``cls.promote(...)`` and ends in ``cls.apply(...)``. ``declared(cls, name=..., autocast=...)``
  gives another public form of the same Function a name and policy of its own (``mm``,
  ``mv`` and ``addmm`` all run ``MatMul``).
- An op with no Function of its own (a composite of other ops, or one computed without a
  graph node, such as a comparison: wrap that one in ``@traceable`` too, so ONNX export
  records it) is declared with ``@declared(None, ...)``.

Tensor methods: ``method`` (True: the function's own name; a name; False: none; or a
function taking ``self`` when the tensor is not the first argument, as ``Tensor.where``),
``aliases`` (more method names), ``inplace`` (also ``name_`` for the name and each alias:
computed out of place, written back), ``operator="add"`` (``__add__``) with ``reflected``
(``__radd__``) and ``inplace_operator`` (``__iadd__``); ``as_property`` for ``Tensor.T``.
"""

from __future__ import annotations

import functools
import inspect

from .. import amp
from ..tensor import Tensor
from ._util import attach, numpy_names
from ._util import inplace as inplace_method  # `inplace` is the methods' flag here
from .cast import float_input, float_operands, operands, tensor_operands

_amp_state = amp._state  # the list of open autocast regions: truthy inside one


def _as_given(op: str, a, b):
    return a, b


_PROMOTIONS = {None: _as_given, "common": operands, "float": float_operands}


def _bind_promotion(cls) -> None:
    """``cls.promote(op_name, a, b)``: the operands promoted by ``cls.promotes``, for a
    hand-written functional form to call (a class attribute, so no extra call frame)."""
    if cls.promotes not in _PROMOTIONS:
        raise ValueError(
            f"{cls.__name__}.promotes must be one of None, 'common' or 'float', got "
            f"{cls.promotes!r}"
        )
    cls.promote = staticmethod(_PROMOTIONS[cls.promotes])


def unary(cls, name: str, *, method=True, aliases=(), inplace=False, operator=None):
    r"""The functional form ``name(input)`` of the one-operand op ``cls``."""
    _bind_promotion(cls)
    apply = cls.apply
    if cls.promotes == "float":
        if cls.autocast is None:

            def op(input: Tensor) -> Tensor:
                if input._array.dtype.kind != "f":  # float_input keeps bfloat16 too
                    input = float_input(input)
                return apply(input)

        else:

            def op(input: Tensor) -> Tensor:
                if _amp_state:
                    (input,) = amp.cast_for(name, input)
                if input._array.dtype.kind != "f":
                    input = float_input(input)
                return apply(input)

    elif cls.promotes is None and cls.autocast is None:

        def op(input: Tensor) -> Tensor:
            return apply(input)

    else:
        raise ValueError(f"unary(): no generated form for {cls.__name__}'s declaration")
    op.__doc__ = cls.__doc__
    if cls.autocast is not None:
        _register_autocast(cls.autocast, name)
    return _public(op, name, method, aliases, inplace, operator, False, False)


def binary(cls, name: str, **methods):
    r"""The functional form ``name(input, other)`` of the two-operand op ``cls``: operands
    promoted by its ``promotes``, then both made Tensors (a Python number takes the other
    operand's dtype); ``methods`` as for ``declared``."""
    _bind_promotion(cls)
    cls.broadcasts = True
    promote = cls.promote
    apply = cls.apply

    def op(input, other) -> Tensor:
        a, b = tensor_operands(*promote(name, input, other))
        return apply(a, b)

    op.__doc__ = cls.__doc__
    return declared(cls, name=name, **methods)(op)


def declared(
    cls,
    *,
    name=None,
    autocast=None,
    method=True,
    aliases=(),
    inplace=False,
    operator=None,
    reflected=False,
    inplace_operator=False,
    axis_aliases=False,
    as_property=False,
):
    r"""Decorate a hand-written functional form of op ``cls``: its Function, or None for
    an op with no Function of its own (a composite of other ops, or one computed without
    a graph node). ``autocast`` overrides the Function's for a public form with a policy
    of its own (``mv`` runs ``MatMul`` but is on CUDA's list only). ``axis_aliases``
    accepts PyTorch's NumPy-style ``axis=``/``keepdims=``; ``as_property`` attaches a
    Tensor property (``T``) named ``method`` instead of a method."""
    policy = autocast or (cls.autocast if cls is not None else None)
    if cls is not None:
        _bind_promotion(cls)

    def declare(fn):
        op_name = name or fn.__name__
        out = fn
        if policy is not None:
            _register_autocast(policy, op_name)
            out = _autocast_prologue(fn, op_name)
        if axis_aliases:
            out = numpy_names(out)
        if as_property:
            attach(**{method: property(out)})
            return out
        return _public(
            out, op_name, method, aliases, inplace, operator, reflected, inplace_operator
        )

    return declare


# -- the pieces -----------------------------------------------------------------------------


def _public(fn, name, method, aliases, inplace, operator, reflected, inplace_operator):
    fn.__name__ = fn.__qualname__ = name
    methods = {}
    if method is True:
        methods[name] = fn
    elif isinstance(method, str):
        methods[method] = fn
    elif callable(method):
        methods[name] = method
    for alias in aliases:
        methods[alias] = methods.get(name, fn)
    if inplace:
        in_place = inplace_method(fn)
        for n in list(methods):
            methods[n + "_"] = in_place
    if operator is not None:
        methods[f"__{operator}__"] = fn
        if reflected:
            methods[f"__r{operator}__"] = _reflected(fn)
        if inplace_operator:
            methods[f"__i{operator}__"] = inplace_method(fn)
    attach(**methods)
    return fn


def _reflected(fn):
    def method(self, other):
        return fn(other, self)

    method.__name__ = "r" + fn.__name__
    return method


def _register_autocast(policies, name):
    for entry in policies.split():
        device, _, policy = entry.rpartition(":")
        for device_type in (device,) if device else ("cuda", "cpu"):
            amp.declare_policy(device_type, name, policy)


def _autocast_prologue(fn, name):
    """``fn`` preceded by its op's autocast, unless a ``dtype`` argument is given."""
    params = list(inspect.signature(fn).parameters.values())
    dtype_at = next(
        (
            i
            for i, p in enumerate(params)
            if p.name == "dtype" and p.kind == p.POSITIONAL_OR_KEYWORD
        ),
        None,
    )

    @functools.wraps(fn)
    def op(*args, **kwargs):
        if _amp_state and kwargs.get("dtype") is None:
            if dtype_at is None or len(args) <= dtype_at or args[dtype_at] is None:
                args, kwargs = _cast_arguments(name, args, kwargs)
        return fn(*args, **kwargs)

    return op


def _cast_arguments(name, args, kwargs):
    """Every Tensor among the arguments (also inside a list or tuple of them, as
    ``cat``'s), cast by the autocast policy of op ``name`` together (``"promote"`` needs
    them all)."""
    values = list(args) + list(kwargs.values())
    flat = []
    for v in values:
        if _holds_tensors(v):
            flat.extend(v)
        else:
            flat.append(v)
    cast = iter(amp.cast_for(name, *flat))
    rebuilt = []
    for v in values:
        if _holds_tensors(v):
            rebuilt.append(type(v)(next(cast) for _ in v))
        else:
            rebuilt.append(next(cast))
    return tuple(rebuilt[: len(args)]), dict(zip(kwargs, rebuilt[len(args) :]))


def _holds_tensors(value) -> bool:
    return type(value) in (list, tuple) and any(isinstance(v, Tensor) for v in value)
