"""Ops grouped by family; importing this package attaches every Tensor method."""

from . import elementwise  # noqa: F401

# --- movement and indexing ops (views, shape ops, getitem/setitem, gather/scatter) ---
# --- reductions and linear algebra ---
# --- nn ops (conv, pooling, normalization, attention, losses, dropout, embedding) ---
