"""DistributedDataParallel: the same model on every rank, gradients averaged in buckets
whose all-reduces overlap the rest of backward."""

from __future__ import annotations

import contextlib
import weakref

import numpy as np

from ..core import autograd, autograd_engine, multi_tensor
from ..core.backend import xp_of
from ..core.nn.module import Module
from ..core.tensor import Tensor, wrap_array
from .bucketing import FIRST_BUCKET_BYTES, build_buckets
from .collectives import all_gather_into_tensor, all_gather_object, all_reduce, broadcast
from .comm_hooks import GradBucket
from .ddp_checks import (
    first_model_difference,
    missing_gradients_message,
    parameter_hashes,
    parameters_reached,
    replicas_differ,
)
from .ddp_join import JoinState
from .process_group import resolve


class DistributedDataParallel(Module):
    r"""Data parallelism: wrap a model built identically on every rank; each rank runs
    its share of the batch, and backward leaves every rank with the gradients averaged
    over all ranks (so one optimizer step keeps the replicas identical).

    Construction checks that all ranks hold the same parameters (names, shapes, dtypes;
    a mismatch raises on every rank, naming the first difference) and copies rank 0's
    parameters and buffers to the others. During backward, a hook on each parameter
    copies its gradient into a flat bucket; a full bucket is all-reduced asynchronously
    while backward continues, and the end of backward waits for all of them. After the
    first iteration the buckets are rebuilt once, in the order gradients arrived.
    MPI advances a started all-reduce only inside MPI calls; ember makes one at every
    gradient hook. Where ranks have spare cores, MPICH's progress thread
    (``MPIR_CVAR_ASYNC_PROGRESS=1``) lets the reduction run fully behind backward.

    Args:
        module: the model.
        device_ids, output_device, dim: accepted for torch compatibility (one device
            per process; move the module there before wrapping).
        broadcast_buffers: copy rank 0's buffers (e.g. BatchNorm running stats) to all
            ranks before each forward.
        process_group: the group to average over (default: the world).
        bucket_cap_mb: bucket size in MiB (default 25; the first bucket is 1 MiB).
        find_unused_parameters: after each forward, find the parameters the output does
            not depend on and count them as ready; those unused on every rank keep their
            ``.grad`` untouched (None), like torch. Without it, a parameter that gets no
            gradient makes backward raise an error naming it and why (not used in
            forward, or used but its output did not reach the loss). The first backward
            checks this on every rank together (its reductions wait for that check), so
            a parameter missing on any rank raises the same error on all of them.
        gradient_as_bucket_view: make each ``.grad`` a view into its bucket (saves a
            copy and the memory of a second gradient).
        static_graph: the set of used parameters never changes, so with
            ``find_unused_parameters`` the graph is searched in the first iteration only.
        check_sync_every: every this many synced forwards (grad enabled, outside
            ``no_sync``), all-gather a hash of every parameter (float64 sum and sum of
            squares) and raise on every rank, naming the first parameter that differs
            and the ranks that hold another value, if the replicas have drifted apart
            (e.g. a rank stepped its optimizer differently). 0 (default) never checks;
            nor does a forward inside ``join()``, where ranks that ran out of inputs
            legitimately lag until the end of the context.

    Uneven inputs: give every rank the same number of batches, e.g. with
    ``DistributedSampler`` (it pads by repeating samples) and ``drop_last`` in the
    ``DataLoader``, or train inside ``with ddp.join():``. Otherwise a rank that runs an
    extra backward alone waits for the others until the group timeout aborts the job.

    Checkpoints: ``ddp.state_dict()`` prefixes keys with ``module.`` like torch; save
    ``ddp.module.state_dict()`` on rank 0 to get a checkpoint that loads into the bare
    model.

    Example::

        >>> dist.init_process_group("mpi")
        >>> model = DistributedDataParallel(Net())
        >>> loss = F.cross_entropy(model(x_shard), y_shard)
        >>> loss.backward()  # gradients now averaged over ranks
        >>> opt.step()
    """

    def __init__(
        self,
        module: Module,
        device_ids=None,
        output_device=None,
        dim: int = 0,
        broadcast_buffers: bool = True,
        process_group=None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
        check_reduction: bool = False,
        gradient_as_bucket_view: bool = False,
        static_graph: bool = False,
        check_sync_every: int = 0,
    ):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel wraps an nn.Module, got {type(module).__name__}"
            )
        pg = resolve(process_group)
        if pg is None:
            raise RuntimeError("DistributedDataParallel: this rank is not part of process_group")
        cap = 25.0 if bucket_cap_mb is None else float(bucket_cap_mb)
        if cap <= 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self.process_group = pg
        self.device_ids = device_ids
        self.output_device = output_device
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.bucket_bytes_cap = int(cap * 1024 * 1024)
        if not isinstance(check_sync_every, int) or check_sync_every < 0:
            raise ValueError(f"check_sync_every must be an int >= 0, got {check_sync_every!r}")
        self.check_sync_every = check_sync_every
        self._synced_forwards = 0
        self._output = None  # the armed forward's output, to explain missing gradients
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError(
                "DistributedDataParallel is not needed when a module doesn't have any "
                "parameter that requires a gradient."
            )
        self._param_names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._buffers_list = [b for _, b in module.named_buffers()]
        self._verify_model_across_ranks(module)
        self._broadcast_coalesced([p for _, p in module.named_parameters()] + self._buffers_list)
        self._size_limits = [min(FIRST_BUCKET_BYTES, self.bucket_bytes_cap), self.bucket_bytes_cap]
        self._build(list(reversed(range(len(self._params)))))
        self._comm_hook = None  # None: the default average, fused into the copy-in
        self._join = None
        self._rebuilt = False
        self._defer_launch = True  # the first backward checks before it reduces
        self._armed = False
        self._callback_queued = False
        self._used_cache = None
        self._arrival: list[int] = []
        self._ready = np.zeros(len(self._params), bool)
        self._local_used = np.zeros(len(self._params), np.int32)
        self._index_of = {id(p): i for i, p in enumerate(self._params)}
        ref = weakref.ref(self)
        self._hook_handles = [
            p.register_post_accumulate_grad_hook(_ready_hook(ref, i))
            for i, p in enumerate(self._params)
        ]

    # -- construction ---------------------------------------------------------------------
    def _verify_model_across_ranks(self, module: Module) -> None:
        pg = self.process_group
        if pg.size() == 1:
            return
        mine = [
            ("parameter", n, tuple(p.shape), str(p.dtype)) for n, p in module.named_parameters()
        ]
        mine += [("buffer", n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers()]
        everyone = [None] * pg.size()
        all_gather_object(everyone, mine, group=pg)
        problems = []
        for r, theirs in enumerate(everyone[1:], start=1):
            if theirs != everyone[0]:
                problems.append(
                    first_model_difference(everyone[0], theirs, pg.ranks[0], pg.ranks[r])
                )
        if problems:
            raise RuntimeError(
                "DistributedDataParallel: the model differs across ranks: " + "; ".join(problems)
            )

    def _broadcast_coalesced(self, tensors, src: int | None = None) -> None:
        """Copy global rank ``src``'s (default: the group's first rank's) values of
        ``tensors`` to all ranks, one broadcast per dtype."""
        pg = self.process_group
        if pg.size() == 1 or not tensors:
            return
        src = pg.ranks[0] if src is None else src
        by_kind: dict = {}
        for t in tensors:
            by_kind.setdefault((str(t._array.dtype), str(t.device)), []).append(t)
        for group in by_kind.values():
            xp = xp_of(group[0]._array)
            arrays = [t._array for t in group]
            if multi_tensor.fits(arrays):  # one CUDA launch each way
                with arrays[0].device:
                    flat = xp.empty(sum(a.size for a in arrays), arrays[0].dtype)
                multi_tensor.pack(arrays, flat)
                broadcast(wrap_array(flat), src, group=pg)
                multi_tensor.unpack(flat, arrays)
                for t in group:
                    t._bump_version()
                continue
            flat = xp.concatenate([t._array.reshape(-1) for t in group])
            broadcast(wrap_array(flat), src, group=pg)
            offset = 0
            for t in group:
                n = t._array.size
                t._array[...] = flat[offset : offset + n].reshape(t._array.shape)
                t._bump_version()
                offset += n

    def _unpack_bucket(self, b, globally_used) -> bool:
        """Copy bucket ``b`` into its parameters' existing gradients in one CUDA launch
        when every parameter of it has one (the common case after the first step)."""
        if self.gradient_as_bucket_view or globally_used is not None:
            return False
        grads = [self._params[i].grad for i in b.indices]
        if any(g is None for g in grads):
            return False
        arrays = [g._array for g in grads]
        if not multi_tensor.fits([b.buffer, *arrays]):
            return False
        multi_tensor.unpack(b.buffer, arrays)
        for g in grads:
            g._bump_version()
        return True

    def _build(self, order: list[int]) -> None:
        old_grads = [p.grad for p in self._params]
        self._buckets = build_buckets(self._params, order, self._size_limits)
        self._bucket_of = [None] * len(self._params)
        self._view_of = [None] * len(self._params)
        for b in self._buckets:
            for i, v in zip(b.indices, b.views):
                self._bucket_of[i], self._view_of[i] = b, v
        if self.gradient_as_bucket_view:
            for i, p in enumerate(self._params):
                if old_grads[i] is not None:
                    self._view_of[i][...] = old_grads[i]._array
                    p.grad = wrap_array(self._view_of[i])

    # -- forward --------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        sync = autograd.is_grad_enabled() and self.require_backward_grad_sync
        if self._join is not None and autograd.is_grad_enabled():
            self._join.step(self, active=1, sync=int(sync))
        if sync and self.broadcast_buffers and self._buffers_list:
            self._broadcast_coalesced(self._buffers_list)
        if self._armed:
            self._disarm()  # a forward whose backward never came (e.g. evaluation)
        if sync and self.check_sync_every and self._join is None:
            self._synced_forwards += 1
            if self._synced_forwards % self.check_sync_every == 0:
                self._check_replicas_in_sync()
        output = self.module(*inputs, **kwargs)
        if sync:
            self._arm(output)
        return output

    def _arm(self, output) -> None:
        for b in self._buckets:
            b.pending = len(b.indices)
            b.future = None
        self._ready[:] = False
        self._local_used[:] = 1
        self._next_launch = 0
        self._armed = True
        self._output = output
        if self.find_unused_parameters:
            used = self._used_cache
            if used is None:
                used = parameters_reached(output, self._index_of)
                if self.static_graph:
                    self._used_cache = used
            for i, p in enumerate(self._params):
                if i in used:
                    continue
                has_grad = p.grad is not None
                self._local_used[i] = int(has_grad)
                view = self._view_of[i]
                if not has_grad:
                    view[...] = 0
                elif p.grad._array is not view:
                    self._copy_in(view, p.grad._array)
                elif self._comm_hook is None and self.process_group.size() > 1:
                    view *= 1.0 / self.process_group.size()
                self._mark_ready(i)

    def _disarm(self) -> None:
        for b in self._buckets:
            if b.future is not None:
                b.future.wait()
                b.future = None
        self._armed = False
        self._output = None

    # -- backward: hooks, launches, the end-of-backward callback ----------------------------
    def _on_grad_ready(self, i: int, param: Tensor) -> None:
        if not self._armed:
            return
        if not self._callback_queued:
            self._callback_queued = True
            autograd_engine.queue_callback(self._finalize)
        view = self._view_of[i]
        grad = param.grad._array
        if grad is not view:
            self._copy_in(view, grad)
            if self.gradient_as_bucket_view:
                param.grad = wrap_array(view)
        elif self._comm_hook is None and self.process_group.size() > 1:
            view *= 1.0 / self.process_group.size()
        self._mark_ready(i)

    def _copy_in(self, view, grad) -> None:
        """``view[...] = grad``, pre-divided by the group size when the default average
        reduces the bucket (one pass over the gradient instead of two)."""
        n = self.process_group.size()
        if self._comm_hook is None and n > 1:
            xp_of(view).multiply(grad, 1.0 / n, out=view)
        else:
            view[...] = grad

    def _mark_ready(self, i: int) -> None:
        self._ready[i] = True
        if not self._rebuilt:
            self._arrival.append(i)
        bucket = self._bucket_of[i]
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready()
        else:
            self._progress()

    def _launch_ready(self) -> None:
        """Launch full buckets in bucket order, so every rank issues the same sequence
        (until one backward has passed ``_check_every_rank_ready``, only after it)."""
        if self._defer_launch:
            return
        buckets = self._buckets
        while self._next_launch < len(buckets) and buckets[self._next_launch].pending == 0:
            self._launch(buckets[self._next_launch])
            self._next_launch += 1

    def _launch(self, b) -> None:
        if self._comm_hook is None:  # gradients are already divided by the group size
            work = all_reduce(b.tensor, group=self.process_group, async_op=True)
            b.future = work.get_future().then(_first)
        else:
            state, hook = self._comm_hook
            b.future = hook(state, GradBucket(b, b.index == len(self._buckets) - 1))

    def _progress(self) -> None:
        """Let MPI advance launched all-reduces (it progresses only inside MPI calls)."""
        for b in self._buckets[: self._next_launch]:
            if not b.future.done():
                return

    def _finalize(self) -> None:
        self._callback_queued = False
        if self._defer_launch:
            self._check_every_rank_ready(~self._ready)
            self._defer_launch = False
            self._launch_ready()
        if self._next_launch < len(self._buckets):
            self._raise_missing((~self._ready)[None, :], 0)
        globally_used = None
        if self.find_unused_parameters:
            used = wrap_array(self._local_used.copy())
            all_reduce(used, group=self.process_group)
            globally_used = used._array
        for b in self._buckets:
            result = b.future.wait()
            b.future = None
            if result._array is not b.buffer:
                b.buffer[...] = result._array
            if self._join is not None and not self._join.divide_by_initial_world_size:
                b.buffer *= self.process_group.size() / self._join.active
            if self._unpack_bucket(b, globally_used):
                continue
            for i, view in zip(b.indices, b.views):
                if globally_used is not None and globally_used[i] == 0:
                    continue
                p = self._params[i]
                if self.gradient_as_bucket_view:
                    if p.grad is None or p.grad._array is not view:
                        p.grad = wrap_array(view)
                elif p.grad is None:
                    p.grad = wrap_array(view.copy())
                else:
                    p.grad._array[...] = view
                    p.grad._bump_version()
        self._armed = False
        self._output = None
        if not self._rebuilt:
            self._rebuild_buckets()

    def _check_every_rank_ready(self, missing_here: np.ndarray) -> None:
        """First iteration: all-reduce which parameters each rank is missing, so every
        rank raises the same error (and none waits in a reduction another never starts)."""
        pg = self.process_group
        if pg.size() == 1:
            if missing_here.any():
                self._raise_missing(missing_here[None, :], 0)
            return
        missing = np.zeros((pg.size(), len(self._params)), np.int32)
        missing[pg.rank()] = missing_here
        flags = wrap_array(missing)
        all_reduce(flags, group=pg)
        if flags._array.any():
            self._raise_missing(flags._array, pg.rank())

    def _raise_missing(self, missing: np.ndarray, me: int):
        pg = self.process_group
        output = self._output
        self._disarm()
        raise RuntimeError(
            missing_gradients_message(
                self._param_names, missing, pg.ranks, me, output, self._index_of
            )
        )

    def _check_replicas_in_sync(self) -> None:
        pg = self.process_group
        if pg.size() == 1:
            return
        mine = wrap_array(parameter_hashes(self._params))
        gathered = wrap_array(np.empty((pg.size(),) + mine.shape))
        all_gather_into_tensor(gathered, mine, group=pg)
        problem = replicas_differ(gathered._array, self._param_names, pg.ranks)
        if problem is not None:
            raise RuntimeError(
                f"DistributedDataParallel: the replicas are out of sync at synced forward "
                f"#{self._synced_forwards} (check_sync_every={self.check_sync_every}): "
                f"{problem}. Every rank must start from the same parameters and apply the "
                "same updates: step the optimizer on every rank after every synced "
                "backward, and change parameters outside DDP on all ranks alike."
            )

    def _rebuild_buckets(self) -> None:
        """Once: repack the buckets in the order gradients arrived (rank 0's order)."""
        self._rebuilt = True
        seen = set(self._arrival)
        order = self._arrival + [i for i in range(len(self._params)) if i not in seen]
        self._arrival = []
        agreed = wrap_array(np.asarray(order, np.int64))
        broadcast(agreed, self.process_group.ranks[0], group=self.process_group)
        self._build(agreed._array.tolist())

    # -- public API -----------------------------------------------------------------------
    @contextlib.contextmanager
    def no_sync(self):
        r"""Within this context, backward only accumulates gradients locally; the next
        backward outside it averages everything accumulated (one big batch).

        Example::

            >>> with ddp.no_sync():
            ...     ddp(x1).sum().backward()
            >>> ddp(x2).sum().backward()  # gradients of x1 and x2, averaged over ranks
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    @contextlib.contextmanager
    def join(
        self,
        divide_by_initial_world_size: bool = True,
        enable: bool = True,
        throw_on_early_termination: bool = False,
    ):
        r"""Train on uneven inputs: a rank that leaves this context early keeps joining
        the others' collectives with zero gradients until every rank has left; then all
        ranks take the parameters of the rank that ran the most iterations.

        Args:
            divide_by_initial_world_size: average over the whole group (the ranks that
                are done count as zero gradients); False averages over the ranks still
                training.
            enable: False makes this a no-op.
            throw_on_early_termination: raise on every rank as soon as one runs out of
                inputs, instead.

        Inside the context every forward run with gradients enabled must be followed
        by its backward (evaluate under ``no_grad``).

        Example::

            >>> with ddp.join():
            ...     for x, y in loader:  # loaders of different lengths on each rank
            ...         F.cross_entropy(ddp(x), y).backward(); opt.step(); opt.zero_grad()
        """
        if not enable or self.process_group.size() == 1:
            yield
            return
        if self._join is not None:
            raise RuntimeError("DistributedDataParallel.join() contexts cannot be nested")
        self._join = JoinState(divide_by_initial_world_size, throw_on_early_termination)
        try:
            yield
            self._join.drain(self)
        finally:
            self._join = None

    def _shadow_iteration(self) -> None:
        """The collectives of one synced iteration, with zero gradients from this rank."""
        if self.broadcast_buffers and self._buffers_list:
            self._broadcast_coalesced(self._buffers_list)
        if self._defer_launch:  # the others check every rank got all gradients first
            self._check_every_rank_ready(np.zeros(len(self._params), bool))
            self._defer_launch = False
        for b in self._buckets:
            b.buffer[...] = 0
            self._launch(b)
        if self.find_unused_parameters:
            all_reduce(
                wrap_array(np.zeros(len(self._params), np.int32)),
                group=self.process_group,
            )
        for b in self._buckets:
            b.future.wait()
            b.future = None
        if not self._rebuilt:
            self._rebuild_buckets()

    def register_comm_hook(self, state, hook) -> None:
        r"""Reduce each bucket with ``hook(state, bucket) -> Future`` instead of the
        default average (see ``ember.distributed.comm_hooks``). Register it once, before
        the first backward."""
        if self._comm_hook is not None:
            raise RuntimeError("register_comm_hook can only be called once")
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        self._comm_hook = (state, hook)

    @property
    def buckets(self):
        """The current buckets (for inspection)."""
        return list(self._buckets)

    def __getstate__(self):
        raise TypeError("DistributedDataParallel cannot be pickled; save ddp.module instead")


def _first(fut):
    return fut.value()[0]


def _ready_hook(ref, i):
    def hook(param):
        ddp = ref()
        if ddp is not None:
            ddp._on_grad_ready(i, param)

    return hook
