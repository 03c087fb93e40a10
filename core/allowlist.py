"""Whole modules in ``ember.save``/``ember.load`` without pickle, and the allowlist
(PyTorch's ``torch.serialization.add_safe_globals``) that decides which classes a file
may name.

A module is stored as data: its class's importable name, the arguments its constructor
was called with (recorded by ``Module.__new__``), and its parameters, buffers, children
and training flag as they are now. Loading calls the constructor again with those
arguments, then puts the recorded children, parameters and buffers in place, so a head
replaced after construction (``model.fc = nn.Linear(512, 10)``) comes back replaced.

Nothing in the file is executed. The only code that runs is the ``__init__`` of classes
ember itself defines or that the user allowlisted, and functions (``activation=F.gelu``)
are looked up by name under the same rule. A file naming anything else is refused with
the class's name and the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import threading

_allowed: dict[str, object] = {}
_scoped = threading.local()


def _qualified_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def add_safe_globals(safe_globals: list) -> None:
    r"""Allow ``ember.load`` to rebuild these classes (and call these functions by name)
    when a file names them, as ``torch.serialization.add_safe_globals``.

    Example::

        >>> ember.serialization.add_safe_globals([Net])
        >>> model = ember.load("model.pt", weights_only=False)
    """
    for g in safe_globals:
        if isinstance(g, tuple):  # PyTorch's (obj, "module.name") form
            g, name = g
        else:
            name = _qualified_name(g)
        _allowed[name] = g


def get_safe_globals() -> list:
    """The classes and functions allowed by :func:`add_safe_globals`."""
    return list(_allowed.values())


def clear_safe_globals() -> None:
    """Forget every class and function allowed by :func:`add_safe_globals`."""
    _allowed.clear()


class safe_globals(contextlib.ContextDecorator):
    r"""Allow these classes and functions inside a ``with`` block only, as
    ``torch.serialization.safe_globals``.

    Example::

        >>> with ember.serialization.safe_globals([Net]):
        ...     model = ember.load("model.pt", weights_only=False)
    """

    def __init__(self, safe_globals: list):
        self.names = {}
        for g in safe_globals:
            g, name = g if isinstance(g, tuple) else (g, _qualified_name(g))
            self.names[name] = g

    def __enter__(self):
        stack = getattr(_scoped, "stack", None)
        if stack is None:
            stack = _scoped.stack = []
        stack.append(self.names)
        return self

    def __exit__(self, *exc):
        _scoped.stack.pop()
        return False


def resolve(name: str, what: str, filename: str):
    """The class or function called ``name`` in a file, if it is ember's or allowed."""
    for scope in reversed(getattr(_scoped, "stack", None) or []):
        if name in scope:
            return scope[name]
    if name in _allowed:
        return _allowed[name]
    if name.startswith("ember."):
        obj = _import_by_name(name)
        if obj is not None:
            return obj
    short = name.rpartition(".")[2]
    raise RuntimeError(
        f"{filename} holds a {what} named {name!r}, which ember does not define and which is "
        f"not allowlisted, so it was not loaded. If you trust this file, allow it with "
        f"ember.serialization.add_safe_globals([{short}]) or inside "
        f"`with ember.serialization.safe_globals([{short}]):` (nothing in the file runs; "
        f"{short}'s constructor is called with the recorded arguments)"
    )


def _import_by_name(name: str):
    # ember's own modules only (the caller checked the prefix): importing them runs no
    # code from the file
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


# -- modules as data ------------------------------------------------------------------------


def encode_module(encoder, module, path) -> dict:
    """The JSON node for ``module``; ``encoder`` is serialization._Encoder."""
    args, kwargs = module.__dict__.get("_constructor_args", ((), {}))
    return {
        "module": _qualified_name(type(module)),
        "args": [encoder.encode(a, (*path, "<arg>")) for a in args],
        "kwargs": [[k, encoder.encode(v, (*path, f"<{k}>"))] for k, v in kwargs.items()],
        "training": module.training,
        "params": [[k, encoder.encode(p, (*path, k))] for k, p in module._parameters.items()],
        "buffers": [
            [k, encoder.encode(b, (*path, k)), k not in module._non_persistent_buffers_set]
            for k, b in module._buffers.items()
        ],
        "children": [[k, encoder.encode(c, (*path, k))] for k, c in module._modules.items()],
    }


def decode_module(decoder, node: dict):
    from .nn.parameter import Parameter

    cls = resolve(node["module"], "module class", decoder.name)
    args = [decoder.decode(a) for a in node["args"]]
    kwargs = {k: decoder.decode(v) for k, v in node["kwargs"]}
    try:
        module = cls(*args, **kwargs)
    except Exception as err:
        raise RuntimeError(
            f"{decoder.name}: rebuilding {node['module']} with its recorded constructor "
            f"arguments failed: {type(err).__name__}: {err}"
        ) from err
    # the order the encoder wrote them in, so shared parameters resolve (see "ref")
    module._parameters.clear()
    for k, p in node["params"]:
        p = decoder.decode(p)
        if p is not None and not isinstance(p, Parameter):
            p = Parameter(p, requires_grad=p.requires_grad)
        module._parameters[k] = p
    module._buffers.clear()
    module._non_persistent_buffers_set.clear()
    for k, b, persistent in node["buffers"]:
        module._buffers[k] = decoder.decode(b)
        if not persistent:
            module._non_persistent_buffers_set.add(k)
    module._modules.clear()
    module._modules.update((k, decoder.decode(c)) for k, c in node["children"])
    module.__dict__["training"] = node["training"]
    return module


def encode_global(obj) -> dict | None:
    """A class or plain function passed to a constructor (``activation=F.gelu``), by name;
    None for anything else."""
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        name = _qualified_name(obj)
        if "<" not in name:  # lambdas and local functions have no importable name
            return {"global": name}
    return None


def encode_dataclass(encoder, obj, path) -> dict | None:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
        return {
            "dataclass": _qualified_name(type(obj)),
            "fields": [[k, encoder.encode(v, (*path, k))] for k, v in fields.items()],
        }
    return None


def decode_dataclass(decoder, node: dict):
    cls = resolve(node["dataclass"], "dataclass", decoder.name)
    return cls(**{k: decoder.decode(v) for k, v in node["fields"]})
