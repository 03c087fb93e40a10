"""Utilities with PyTorch's paths: ``ember.utils.data``, ``ember.utils.hooks``.

Submodules load on first use, so ``core.tensor`` can import ``hooks`` without pulling in
``data`` (which imports ``core.tensor``)."""

import importlib as _importlib

_SUBMODULES = ("data", "hooks")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
