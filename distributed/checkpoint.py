r"""Checkpoints for data-parallel jobs: rank 0 writes one file atomically, every rank loads it.

A checkpoint is one ``ember.save`` file holding a dict::

    {"format": "ember.checkpoint/1", "world_size": N,
     "model": ..., "optimizer": ..., "scheduler": ..., "scaler": ..., "sampler": {"epoch": e},
     "epoch": e, "step": s, "extra": {...},
     "rng": [{"ember": ..., "numpy": ..., "python": ...} for each rank]}

(keys whose object was not given are left out). The RNG states of every rank are kept, so
a resumed job continues each rank's random stream exactly where it stopped.
"""

from __future__ import annotations

import os
import random
import re

import numpy as np

FORMAT = "ember.checkpoint/1"


def _dist():
    from .. import distributed as dist

    return dist


def _rank_and_size() -> tuple[int, int]:
    dist = _dist()
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    dist = _dist()
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _unwrap(model):
    """The module inside a DistributedDataParallel-style wrapper (one child named
    ``module``); save and load unwrap alike, so wrapped and bare models share checkpoints."""
    while hasattr(model, "module") and [name for name, _ in model.named_children()] == ["module"]:
        model = model.module
    return model


def _rng_state() -> dict:
    import ember

    _, key, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "ember": ember.get_rng_state(),
        "numpy": {
            "keys": [int(k) for k in key],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def _set_rng_state(state: dict) -> None:
    import ember

    ember.set_rng_state(state["ember"])
    n = state["numpy"]
    keys = np.asarray(n["keys"], dtype=np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def _gather_rng_states(world_size: int) -> list[dict]:
    mine = _rng_state()
    if world_size == 1:
        return [mine]
    states: list = [None] * world_size
    _dist().all_gather_object(states, mine)
    return states


def save_checkpoint(
    path,
    *,
    model,
    optimizer=None,
    scheduler=None,
    sampler=None,
    scaler=None,
    epoch: int | None = None,
    step: int | None = None,
    extra: dict | None = None,
) -> None:
    r"""Save a training checkpoint; call it on every rank.

    Rank 0 writes `path` atomically (a temporary file in the same directory, fsync, rename),
    so a crash mid-write leaves the previous checkpoint intact; the other ranks wait at a
    barrier until the file is complete.

    Args:
        path: the file to write.
        model: the model (a DistributedDataParallel wrapper is unwrapped).
        optimizer, scheduler, scaler: objects with ``state_dict()``, saved when given.
        sampler: a sampler with an ``epoch`` (DistributedSampler), saved when given.
        epoch, step: progress counters returned by :func:`load_checkpoint`.
        extra: any other ember.save-able data (a dict), returned by :func:`load_checkpoint`.

    Example::

        >>> save_checkpoint(f"ckpt/epoch{epoch}.ckpt", model=ddp, optimizer=opt, epoch=epoch)
    """
    from ..core.serialization import save

    rank, world_size = _rank_and_size()
    checkpoint = {"format": FORMAT, "world_size": world_size}
    checkpoint["model"] = _unwrap(model).state_dict()
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            checkpoint[name] = obj.state_dict()
    if sampler is not None:
        checkpoint["sampler"] = {"epoch": int(sampler.epoch)}
    for name, value in (("epoch", epoch), ("step", step), ("extra", extra)):
        if value is not None:
            checkpoint[name] = value
    checkpoint["rng"] = _gather_rng_states(world_size)
    if rank == 0:
        save(checkpoint, path)  # atomic: temp file, fsync, rename, fsync of the directory
    _barrier()


def _model_device(model):
    for p in model.parameters():
        return p.device
    return "cpu"


def load_checkpoint(
    path,
    *,
    model,
    optimizer=None,
    scheduler=None,
    sampler=None,
    scaler=None,
    strict: bool = True,
    restore_rng: bool = True,
) -> dict:
    r"""Load a checkpoint written by :func:`save_checkpoint`; call it on every rank.

    Tensors are mapped to the model's device. Each rank restores its own RNG states
    (ember's default generator, NumPy's and Python's global ones) when the checkpoint was
    written by a job of the same size, else rank 0's.

    Args:
        path: the checkpoint file.
        model, optimizer, scheduler, sampler, scaler: objects to restore in place; each one
            given must have been saved.
        strict: passed to ``model.load_state_dict``.
        restore_rng: also restore the random number generators.

    Returns:
        ``{"epoch": ..., "step": ..., "extra": ...}`` (None for what was not saved).

    Example::

        >>> start = load_checkpoint(latest_checkpoint("ckpt"), model=ddp, optimizer=opt)["epoch"] + 1
    """
    from ..core.serialization import load

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    target = _unwrap(model)
    checkpoint = load(path, map_location=_model_device(target))
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise RuntimeError(f"{path!r} is not an ember checkpoint (written by save_checkpoint)")
    target.load_state_dict(checkpoint["model"], strict=strict)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            if name not in checkpoint:
                raise KeyError(f"checkpoint {path!r} has no {name} state to load")
            obj.load_state_dict(checkpoint[name])
    if sampler is not None:
        if "sampler" not in checkpoint:
            raise KeyError(f"checkpoint {path!r} has no sampler state to load")
        sampler.set_epoch(checkpoint["sampler"]["epoch"])
    if restore_rng:
        rank, world_size = _rank_and_size()
        states = checkpoint["rng"]
        _set_rng_state(states[rank] if len(states) == world_size else states[0])
    return {name: checkpoint.get(name) for name in ("epoch", "step", "extra")}


def latest_checkpoint(directory) -> str | None:
    r"""The checkpoint in `directory` with the highest number in its name
    (``epoch3.ckpt`` < ``epoch12.ckpt``), or the newest one when names carry no number;
    None when there is none. Temporary files of interrupted saves are ignored.

    Example::

        >>> path = latest_checkpoint("ckpt")
        >>> start = 0 if path is None else load_checkpoint(path, model=model)["epoch"] + 1
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return None
    names = [
        n
        for n in os.listdir(directory)
        if not n.startswith(".") and os.path.isfile(os.path.join(directory, n))
    ]
    if not names:
        return None

    def order(name: str):
        numbers = [int(x) for x in re.findall(r"\d+", name)]
        return (numbers, os.path.getmtime(os.path.join(directory, name)))

    return os.path.join(directory, max(names, key=order))
