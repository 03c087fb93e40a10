"""``ember.nn``: modules and layers, PyTorch's names and semantics."""

from . import functional, init, utils
from .parameter import Buffer, Parameter

# --- module, containers, linear, activations, dropout, embedding, flatten, losses ---
# --- conv, pooling, normalization, attention ---
