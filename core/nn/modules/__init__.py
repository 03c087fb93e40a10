"""``torch.nn.modules``' paths, as scripts name layer classes for the serialization
allowlist (``torch.nn.modules.dropout.Dropout``): each submodule serves every name of
``ember.nn``, so ``ember.nn.modules.<file>.<Layer>`` is ``ember.nn.<Layer>``."""

import importlib
import sys
import types

_SUBMODULES = (
    "activation",
    "adaptive",
    "batchnorm",
    "channelshuffle",
    "container",
    "conv",
    "distance",
    "dropout",
    "flatten",
    "fold",
    "instancenorm",
    "linear",
    "loss",
    "module",
    "normalization",
    "padding",
    "pixelshuffle",
    "pooling",
    "rnn",
    "sparse",
    "transformer",
    "upsampling",
)


def _from_nn(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("ember.nn"), name)


for _name in _SUBMODULES:
    _module = types.ModuleType(f"{__name__}.{_name}", f"torch.nn.modules.{_name}'s names")
    _module.__getattr__ = _from_nn
    sys.modules[_module.__name__] = _module
    globals()[_name] = _module
del _name, _module
