"""Communication backends behind the interface in ``base``: one file per library (``mpi``,
``nccl``) and ``local``, the world of one process."""

from .base import Backend, Future, ReduceOp, Request, Work
