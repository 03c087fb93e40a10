"""``ember.linalg``: PyTorch's ``torch.linalg`` functions (re-exports)."""

from .ops.vector_norm import vector_norm

__all__ = ["vector_norm"]
