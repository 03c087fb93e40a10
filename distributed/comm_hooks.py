"""DDP communication hooks: how a full gradient bucket is reduced across ranks.

A hook is ``hook(state, bucket: GradBucket) -> Future`` whose value is the bucket's
flat gradient tensor, averaged over the group; register it with
``ddp.register_comm_hook(state, hook)`` (``state`` is usually the process group or
None for the default group). These are torch's ``default_hooks``; in ember they live at
``ember.distributed.comm_hooks``.

Over MPI, ``fp16_compress_hook`` halves the bytes sent (float16 is native in MPICH);
bfloat16 has no MPI type, so ``bf16_compress_hook`` goes through float32 staging and
only changes rounding there. Both halve the bytes over NCCL.

Example::

    >>> from ember.distributed.comm_hooks import fp16_compress_hook
    >>> ddp.register_comm_hook(None, fp16_compress_hook)
"""

from __future__ import annotations

from ..core.dtypes import bfloat16, float16
from ..core.tensor import Tensor, wrap_array
from .backends.base import Future, ReduceOp
from .collectives import all_reduce
from .process_group import resolve


class GradBucket:
    """What a comm hook sees of one bucket (torch's ``dist.GradBucket``)."""

    __slots__ = ("_bucket", "_last")

    def __init__(self, bucket, is_last: bool):
        self._bucket, self._last = bucket, is_last

    def index(self) -> int:
        return self._bucket.index

    def buffer(self) -> Tensor:
        """The flat gradient buffer (one tensor for the whole bucket)."""
        return self._bucket.tensor

    def gradients(self) -> list[Tensor]:
        return [wrap_array(v) for v in self._bucket.views]

    def parameters(self) -> list[Tensor]:
        return list(self._bucket.params)

    def is_last(self) -> bool:
        return self._last

    def set_buffer(self, tensor: Tensor) -> None:
        self._bucket.buffer[...] = tensor._array


def allreduce_hook(process_group, bucket: GradBucket) -> Future:
    """Divide by the group size, then all-reduce (sum): DDP's default."""
    pg = resolve(process_group)
    buf = bucket.buffer()
    buf._array /= pg.size()
    work = all_reduce(buf, ReduceOp.SUM, group=pg, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def _compress_hook(dtype, process_group, bucket: GradBucket) -> Future:
    pg = resolve(process_group)
    buf = bucket.buffer()
    # divide in the bucket's precision, then round once (no 16-bit division on the device)
    compressed = wrap_array((buf._array / pg.size()).astype(dtype.np))
    work = all_reduce(compressed, ReduceOp.SUM, group=pg, async_op=True)

    def decompress(fut):
        buf._array[...] = fut.value()[0]._array
        return buf

    return work.get_future().then(decompress)


def fp16_compress_hook(process_group, bucket: GradBucket) -> Future:
    """Send gradients as float16 (divided by the group size first), cast back after."""
    return _compress_hook(float16, process_group, bucket)


def bf16_compress_hook(process_group, bucket: GradBucket) -> Future:
    """Like ``fp16_compress_hook`` with bfloat16 (float32's range, 8-bit mantissa)."""
    return _compress_hook(bfloat16, process_group, bucket)
