"""``ember.distributed.optim``: optimizers that shard their work across ranks."""

from .zero import ZeroRedundancyOptimizer
