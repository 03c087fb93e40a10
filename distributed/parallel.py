"""``ember.nn.parallel``: where torch scripts import DistributedDataParallel from."""

from .ddp import DistributedDataParallel

DDP = DistributedDataParallel
