"""``linalg.vector_norm``: the same norms as ``norm`` (reduce.py), under torch.linalg's
name and signature."""

from __future__ import annotations

from ..tensor import Tensor
from ._util import numpy_names
from .reduce import _norm


@numpy_names
def vector_norm(x: Tensor, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    r"""``linalg.vector_norm``: the ``ord``-norm of ``x`` over ``dim`` (all by default).

    Example::

        >>> ember.linalg.vector_norm(ember.tensor([1.0, -2.0]), ord=-1)
        tensor(0.6667)
    """
    if dtype is not None:
        x = x.to(dtype)
    return _norm("linalg.vector_norm", x, ord, dim, keepdim)
