"""``nn.SyncBatchNorm``: batch normalization whose statistics span every rank's batch.

In training each rank reduces its (N, C, *) input to per-channel sums, ONE all-reduce of
a packed float64 buffer ``[sum(C), sum of squares(C), count]`` gives the global mean and
variance, and backward all-reduces the two per-channel gradient reductions (sum of dy,
sum of dy * (x - mean)) in one more, so the input gradient is BatchNorm's over the global
batch. Parameter gradients stay local (DDP averages them, as in PyTorch).
"""

from __future__ import annotations

import numpy as np

from ..core.autograd import Function
from ..core.nn.module import Module
from ..core.nn.normalization import _BatchNorm
from ..core.ops._util import check_same_device, xp_of
from ..core.tensor import Tensor, wrap_array
from .backends.base import ReduceOp
from .collectives import all_reduce
from .process_group import get_world_size, is_initialized


def _all_reduce_array(array, group) -> None:
    """Sum ``array`` in place across ``group``."""
    all_reduce(wrap_array(array), ReduceOp.SUM, group)


class SyncBatchNormFunction(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, group):
        xp = xp_of(x)
        acc = np.promote_types(x.dtype, np.float32)  # half inputs reduce in float32
        c = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        cshape = (c,) + (1,) * (x.ndim - 2)
        n_local = x.size // c if c else 0
        # Local mean and centred sum of squares M2 (no cancellation), packed in float64
        # as sum = n*m and sum of squares = M2 + n*m^2.
        packed = xp.zeros(2 * c + 1, dtype=np.float64)
        local_mean = xmu = None
        if n_local:
            local_mean = x.mean(axis=axes, dtype=acc)
            xmu = x - local_mean.reshape(cshape)
            m = local_mean.astype(np.float64)
            packed[:c] = n_local * m
            packed[c : 2 * c] = (xmu * xmu).sum(axis=axes) + n_local * m * m
        packed[2 * c] = n_local
        _all_reduce_array(packed, group)
        count = int(round(float(packed[2 * c])))
        if count <= 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got "
                f"{count} value(s) per channel over all ranks (input size {tuple(x.shape)} here)"
            )
        mean64 = packed[:c] / count
        var64 = xp.maximum(packed[c : 2 * c] / count - mean64 * mean64, 0.0)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += (momentum * mean64).astype(running_mean.dtype, copy=False)
            running_var *= 1 - momentum
            unbiased = var64 * (count / (count - 1))
            running_var += (momentum * unbiased).astype(running_var.dtype, copy=False)
        mean = mean64.astype(acc)
        invstd = (1.0 / xp.sqrt(var64 + eps)).astype(acc)
        if xmu is None:
            xmu = x - mean.reshape(cshape)
        else:  # re-centre on the global mean in place
            xmu += (local_mean - mean).reshape(cshape)
        y = xmu
        y *= (invstd if weight is None else invstd * weight).reshape(cshape)
        if bias is not None:
            y += bias.reshape(cshape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.count, ctx.group = count, group
        ctx.param_dtype = None if bias is None else bias.dtype
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd = ctx.saved_tensors
        xp = xp_of(grad)
        c = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        cshape = (c,) + (1,) * (x.ndim - 2)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        xmu = x - mean.reshape(cshape)
        sum_dy = grad.sum(axis=axes, dtype=mean.dtype)
        sum_dy_xmu = (grad * xmu).sum(axis=axes)
        gw = (sum_dy_xmu * invstd).astype(weight.dtype, copy=False) if need_w else None
        gb = sum_dy.astype(ctx.param_dtype, copy=False) if need_b else None
        gx = None
        if need_x:  # the input needs a gradient on every rank or on none: all join
            packed = xp.concatenate([sum_dy, sum_dy_xmu]).astype(np.float64)
            _all_reduce_array(packed, ctx.group)
            packed = packed.astype(mean.dtype, copy=False)
            g_sum_dy, g_sum_dy_xmu = packed[:c], packed[c:]
            a = invstd if weight is None else weight * invstd
            b = -a * invstd * invstd * g_sum_dy_xmu / ctx.count
            gx = xmu
            gx *= b.reshape(cshape)
            gx += grad * a.reshape(cshape)
            gx -= (a * g_sum_dy / ctx.count).reshape(cshape)
            gx = gx.astype(x.dtype, copy=False)
        return gx, gw, gb


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalization over (N, C, *) whose training statistics are those of the
    batch of every rank of ``process_group`` together (default: the whole world).

    With one rank, no process group, or in eval mode it is exactly ``BatchNorm``: eval
    uses the running statistics without communication. In training every rank must call
    forward (and backward) together, like any collective.

    Args:
        num_features: C of an (N, C, *) input.
        eps, momentum, affine, track_running_stats: as for ``BatchNorm1d``.
        process_group: the group whose batches are normalized together.

    Example::

        >>> model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        >>> model = DistributedDataParallel(model)
    """

    _input_dims = tuple(range(2, 65))  # any (N, C, *): checked in forward

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ):
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )
        self.process_group = process_group

    def _sync_size(self) -> int:
        if not (self.training and is_initialized()):
            return 1
        size = get_world_size(self.process_group)
        return max(size, 1)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"SyncBatchNorm({self.num_features}) got an input with {input.shape[1]} "
                f"channels (input size {tuple(input.shape)})"
            )
        if self._sync_size() == 1:
            return super().forward(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / int(self.num_batches_tracked) if self.momentum is None else factor
        track = self.track_running_stats and self.running_mean is not None
        check_same_device("SyncBatchNorm", input, self.running_mean, self.weight, self.bias)
        if track:
            self.running_mean._bump_version()
            self.running_var._bump_version()
        return SyncBatchNormFunction.apply(
            input,
            self.weight,
            self.bias,
            running_mean=self.running_mean._array if track else None,
            running_var=self.running_var._array if track else None,
            momentum=factor,
            eps=self.eps,
            group=self.process_group,
        )

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        r"""Replace every ``BatchNorm*`` layer in ``module`` (recursively, ``module``
        itself included) by a ``SyncBatchNorm`` that shares its parameters and buffers.

        Example::

            >>> sync = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(4)))
            >>> type(sync[0]).__name__
            'SyncBatchNorm'
        """
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
                bias=module.bias is not None,
            )
            _move_state(module, out)
            out._converted_from = type(module)
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out


def _move_state(src: _BatchNorm, dst: _BatchNorm) -> None:
    """Make ``dst`` use ``src``'s parameters and buffers (the same tensors) and mode."""
    for name in ("weight", "bias"):
        if name in src._parameters:
            dst.register_parameter(name, src._parameters[name])
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        if name in src._buffers:
            dst.register_buffer(name, src._buffers[name])
    dst.train(src.training)


def revert_sync_batchnorm(module: Module, batchnorm_class: type | None = None) -> Module:
    r"""Undo :meth:`SyncBatchNorm.convert_sync_batchnorm`: every ``SyncBatchNorm`` in
    ``module`` (recursively) becomes the ``BatchNorm*`` class it was converted from,
    sharing its parameters and buffers. One built directly as ``SyncBatchNorm`` becomes
    ``batchnorm_class`` (e.g. ``nn.BatchNorm2d``), which must then be given.

    Example::

        >>> model = revert_sync_batchnorm(nn.SyncBatchNorm.convert_sync_batchnorm(model))
    """
    out = module
    if isinstance(module, SyncBatchNorm):
        target = getattr(module, "_converted_from", None) or batchnorm_class
        if target is None:
            raise ValueError(
                "revert_sync_batchnorm: this SyncBatchNorm was not made by "
                "convert_sync_batchnorm, so pass batchnorm_class (e.g. nn.BatchNorm2d)"
            )
        if not (isinstance(target, type) and issubclass(target, _BatchNorm)):
            raise TypeError(f"batchnorm_class must be a BatchNorm class, got {target!r}")
        out = target(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            bias=module.bias is not None,
        )
        _move_state(module, out)
    for name, child in module.named_children():
        out.add_module(name, revert_sync_batchnorm(child, batchnorm_class))
    return out
