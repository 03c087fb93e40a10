"""``ZeroRedundancyOptimizer`` (ZeRO stage 1): the optimizer state is sharded across ranks.

Parameters are assigned to ranks greedily by size (largest first, each to the rank with
the fewest elements so far; deterministic, so every rank computes the same partition).
Each rank builds the wrapped optimizer for its shard only, steps it, and then every
parameter is broadcast from its owner. Checkpoints use the plain optimizer layout keyed
by global parameter index, so they load at any world size, or into the plain optimizer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ...core import backend
from ...core.optim.optimizer import Optimizer
from ...core.tensor import Tensor, wrap_array
from ..collectives import all_gather_object, broadcast, gather_object
from ..process_group import NON_GROUP_MEMBER, resolve

_LOCAL_KEYS = ("params", "param_names")  # group entries that are per-shard, not options


class ZeroRedundancyOptimizer(Optimizer):
    r"""Wrap ``optimizer_class`` so that each rank of ``process_group`` keeps the state
    of (and updates) only its share of the parameters; after ``step()`` every rank holds
    all the updated parameters. Gradients must already agree across ranks (as after
    ``DistributedDataParallel``'s backward).

    Args:
        params: parameters or parameter groups, as for any optimizer.
        optimizer_class: the optimizer to shard, e.g. ``ember.optim.Adam``.
        process_group: the ranks sharing the state (default: the world).
        parameters_as_bucket_view: keep each rank's parameters as views of one flat
            buffer per dtype, so the update is one broadcast per rank and dtype
            (default: one broadcast per parameter).
        overlap_with_ddp: overlapping with DDP's backward is not supported here (must
            stay False).
        **defaults: the options of ``optimizer_class`` (``lr``, ``betas``, ...).

    Example::

        >>> opt = ZeroRedundancyOptimizer(model.parameters(), optim.Adam, lr=1e-3)
        >>> loss.backward(); opt.step()
        >>> opt.consolidate_state_dict(to=0)
        >>> if dist.get_rank() == 0:
        ...     ember.save(opt.state_dict(), "opt.safetensors")
    """

    def __init__(
        self,
        params,
        optimizer_class: type[Optimizer],
        process_group=None,
        parameters_as_bucket_view: bool = False,
        overlap_with_ddp: bool = False,
        **defaults: Any,
    ):
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
            raise TypeError(
                f"optimizer_class must be an Optimizer subclass, got {optimizer_class!r}"
            )
        if overlap_with_ddp:
            raise ValueError(
                "ZeroRedundancyOptimizer: overlap_with_ddp=True is not supported; step() "
                "after DDP's backward instead"
            )
        if process_group is NON_GROUP_MEMBER:
            raise ValueError("ZeroRedundancyOptimizer: this rank is not part of process_group")
        pg = resolve(process_group)
        self.process_group = process_group
        self.rank, self.world_size = pg.rank(), pg.size()
        self._global_ranks = list(pg.ranks)
        self._optim_class, self._optim_defaults = optimizer_class, defaults
        self.parameters_as_bucket_view = parameters_as_bucket_view
        self._initialized = False
        super().__init__(params, defaults)
        self._partition()
        self._check_same_parameters()
        self.optim = optimizer_class(self._local_groups(), **defaults)
        self._state_shaped_like_params = self.optim._state_shaped_like_params
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        self._consolidated: dict | None = None
        self._initialized = True
        self._build_buckets()

    # -- partition -----------------------------------------------------------------------
    def _partition(self) -> None:
        """Assign every parameter to a rank: ``_owner[id(p)]`` and, per rank and group,
        the indices of the group's parameters it owns (in the group's order)."""
        sizes = [0] * self.world_size
        self._shards: list[list[list[int]]] = [[] for _ in range(self.world_size)]
        self._owner: dict[int, int] = {}
        for group in self.param_groups:
            params = group["params"]
            mine: list[list[int]] = [[] for _ in range(self.world_size)]
            for i in sorted(range(len(params)), key=lambda i: -params[i].numel()):
                rank = min(range(self.world_size), key=sizes.__getitem__)
                mine[rank].append(i)
                sizes[rank] += params[i].numel()
                self._owner[id(params[i])] = rank
            for rank in range(self.world_size):
                self._shards[rank].append(sorted(mine[rank]))

    def _local_groups(self) -> list[dict]:
        """This rank's parameter groups: every option of the global group, its params."""
        groups = []
        for group, indices in zip(self.param_groups, self._shards[self.rank]):
            local = {k: v for k, v in group.items() if k not in _LOCAL_KEYS}
            local["params"] = [group["params"][i] for i in indices]
            if "param_names" in group:
                local["param_names"] = [group["param_names"][i] for i in indices]
            groups.append(local)
        return groups

    def _check_same_parameters(self) -> None:
        """Every rank must optimize the same parameter shapes, or broadcasts would
        mismatch; one small all-gather at construction finds out."""
        mine = [[tuple(p.shape) for p in g["params"]] for g in self.param_groups]
        everyone: list = [None] * self.world_size
        all_gather_object(everyone, mine, group=self.process_group)
        for rank, theirs in enumerate(everyone):
            if theirs != mine:
                raise ValueError(
                    "ZeroRedundancyOptimizer: the parameters differ across ranks: rank "
                    f"{self._global_ranks[self.rank]} has shapes {mine}, rank "
                    f"{self._global_ranks[rank]} has {theirs}"
                )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        r"""Add a parameter group (e.g. layers unfrozen mid-training); every rank must
        call it with the same group. Earlier groups keep their owners."""
        super().add_param_group(param_group)
        if self._initialized:
            self._partition()
            self.optim.add_param_group(self._local_groups()[-1])
            self._build_buckets()

    @staticmethod
    def _sync_param_groups(source: list[dict], target: list[dict]) -> None:
        for src, dst in zip(source, target):
            for k, v in src.items():
                if k not in _LOCAL_KEYS:
                    dst[k] = v

    # -- stepping -----------------------------------------------------------------------------
    def step(self, closure=None, **kwargs):
        r"""Step the local shard's optimizer (with the current ``param_groups`` options,
        e.g. a scheduler's lr), then bring every rank's parameters up to date."""
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        if closure is not None:
            loss = self.optim.step(closure=closure, **kwargs)
        else:
            loss = self.optim.step(**kwargs)
        self._sync_params()
        self._sync_param_groups(self.optim.param_groups, self.param_groups)
        return loss

    def _build_buckets(self) -> None:
        """With ``parameters_as_bucket_view``: one flat buffer per (owner rank, device,
        dtype), every parameter's data a view of it."""
        self._buckets: list[tuple[int, Any, list[tuple[Tensor, Any]]]] = []
        if not self.parameters_as_bucket_view:
            return
        members: dict[tuple, list[Tensor]] = defaultdict(list)
        for group in self.param_groups:
            for p in group["params"]:
                key = (self._owner[id(p)], str(p.device), p._array.dtype.str)
                members[key].append(p)
        for (rank, _, _), params in sorted(members.items(), key=lambda kv: kv[0]):
            like = params[0]._array
            xp = backend.xp_of(like)
            with backend.device_context(params[0].device):
                flat = xp.empty(sum(p.numel() for p in params), dtype=like.dtype)
            views, offset = [], 0
            for p in params:
                view = flat[offset : offset + p.numel()].reshape(p._array.shape)
                view[...] = p._array
                p._array = view
                views.append((p, view))
                offset += p.numel()
            self._buckets.append((rank, flat, views))

    def _sync_params(self) -> None:
        src = self._global_ranks
        works = []
        if self.parameters_as_bucket_view:
            if any(p._array is not view for _, _, views in self._buckets for p, view in views):
                self._build_buckets()  # some p._array was rebound (e.g. by .to()): re-attach
            for rank, flat, _ in self._buckets:
                bucket = wrap_array(flat)
                works.append(broadcast(bucket, src[rank], self.process_group, async_op=True))
        else:
            for group in self.param_groups:
                for p in group["params"]:
                    owner = src[self._owner[id(p)]]
                    works.append(broadcast(p, owner, self.process_group, async_op=True))
        for work in works:
            if work is not None:
                work.wait()
        if self.parameters_as_bucket_view:
            for rank, _, views in self._buckets:
                if rank != self.rank:
                    for p, _ in views:
                        p._bump_version()

    # -- checkpoints ------------------------------------------------------------------------
    def _global_index(self) -> dict[int, int]:
        index: dict[int, int] = {}
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
        return index

    def consolidate_state_dict(self, to: int = 0) -> None:
        r"""Gather the full optimizer state on group rank ``to`` (a collective: every
        rank of the group must call it); ``state_dict()`` then works there."""
        if not 0 <= to < self.world_size:
            raise ValueError(f"consolidate_state_dict: to={to} is not a rank of the group")
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        index = self._global_index()
        local = self.optim.state_dict()["state"]
        local_params = [p for g in self.optim.param_groups for p in g["params"]]
        mine = {index[id(p)]: local[i] for i, p in enumerate(local_params) if i in local}
        gathered = [None] * self.world_size if self.rank == to else None
        gather_object(mine, gathered, dst=self._global_ranks[to], group=self.process_group)
        self._consolidated = None
        if self.rank == to:
            merged: dict[int, Any] = {}
            for part in gathered:
                merged.update(part)
            self._consolidated = dict(sorted(merged.items()))

    def state_dict(self) -> dict[str, Any]:
        r"""The full optimizer state in the plain optimizer's layout (state keyed by
        global parameter index), on the rank ``consolidate_state_dict`` gathered it to."""
        if self._consolidated is None:
            raise RuntimeError(
                "Optimizer state has not been consolidated on this rank. Please call "
                "`consolidate_state_dict(to=0)` on all ranks beforehand if you meant to save "
                "the global state."
            )
        state_dict = super().state_dict()
        state_dict["state"] = dict(self._consolidated)
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        r"""Load a full state (from ``state_dict()`` at any world size, or a plain
        optimizer's); each rank keeps the state of the parameters it owns."""
        if not isinstance(state_dict, dict) or "state" not in state_dict:
            raise ValueError(
                "optimizer state dict must be a dict with keys 'state' and 'param_groups'"
            )
        index = self._global_index()
        owned = {
            i for i, p in self._params_by_index(index).items() if self._owner[id(p)] == self.rank
        }
        local = dict(state_dict)
        local["state"] = {k: v for k, v in state_dict["state"].items() if k in owned}
        super().load_state_dict(local)
        loaded = self.state
        self.state = defaultdict(dict)
        self.optim.state = defaultdict(dict, loaded)
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        self._consolidated = None

    def _params_by_index(self, index: dict[int, int]) -> dict[int, Tensor]:
        by_id = {id(p): p for g in self.param_groups for p in g["params"]}
        return {i: by_id[pid] for pid, i in index.items()}
