"""Communication backends: one file per library behind the interface in ``base``."""

from .base import Backend, Future, ReduceOp, Request, Work
