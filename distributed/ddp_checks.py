"""DistributedDataParallel's consistency checks: the same model on every rank, every
parameter's gradient present on every rank (with the reason when one is missing), and
replicas that stay identical (the periodic parameter hash of ``check_sync_every``)."""

from __future__ import annotations

import numpy as np

from ..core import autograd
from ..core.tensor import Tensor


def parameters_reached(output, index_of) -> set[int]:
    """Indices of the parameters ``output``'s autograd graph reaches (``output`` may be a
    tensor or nested lists/tuples/dicts of them)."""
    roots = []
    stack = [output]
    while stack:
        o = stack.pop()
        if isinstance(o, Tensor):
            roots.append(o)
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list | tuple):
            stack.extend(o)
    used = set()
    nodes = []
    for t in roots:
        if t.grad_fn is not None:
            nodes.append(t.grad_fn)
        elif t.requires_grad and id(t) in index_of:
            used.add(index_of[id(t)])
    seen = set(map(id, nodes))
    while nodes:
        node = nodes.pop()
        if type(node) is autograd.AccumulateGrad:
            var = node.variable()
            if var is not None and id(var) in index_of:
                used.add(index_of[id(var)])
            continue
        for edge in node.next_edges:
            if edge is not None and id(edge[0]) not in seen:
                seen.add(id(edge[0]))
                nodes.append(edge[0])
    return used


def first_model_difference(a: list, b: list, rank_a: int, rank_b: int) -> str:
    """How rank_b's (kind, name, shape, dtype) list first differs from rank_a's."""
    for x, y in zip(a, b):
        if x != y:
            return (
                f"rank {rank_a} has {x[0]} {x[1]!r} of shape {list(x[2])} and dtype {x[3]}, "
                f"rank {rank_b} has {y[0]} {y[1]!r} of shape {list(y[2])} and dtype {y[3]}"
            )
    longer, rank, other = (a, rank_a, rank_b) if len(a) > len(b) else (b, rank_b, rank_a)
    extra = longer[min(len(a), len(b))]
    return (
        f"rank {rank} has {len(longer)} parameters and buffers, rank {other} has "
        f"{min(len(a), len(b))}; the first extra is {extra[0]} {extra[1]!r}"
    )


def missing_gradients_message(
    names: list[str], missing: np.ndarray, ranks: list[int], me: int, output, index_of
) -> str:
    r"""The error for parameters that got no gradient. ``missing[r, i]`` is nonzero when
    group rank r got none for parameter i (one row when only this rank is known). The
    cause on this rank comes from one walk of the forward output's graph: a parameter
    it does not reach was not used in forward; one it reaches was used, but the output
    it feeds did not reach the loss."""
    absent = np.flatnonzero(missing.any(axis=0))
    listed = [names[i] for i in absent]
    text = f"DistributedDataParallel: backward finished without gradients for parameters {listed}"
    if missing.shape[0] > 1:
        where = {names[i]: [ranks[r] for r in np.flatnonzero(missing[:, i])] for i in absent}
        if any(len(w) < missing.shape[0] for w in where.values()):
            text += " (missing on ranks: " + ", ".join(f"{n} {w}" for n, w in where.items()) + ")"
    here = [i for i in absent if missing[me if missing.shape[0] > 1 else 0, i]]
    if here:
        reached = parameters_reached(output, index_of) if output is not None else set()
        unused = [names[i] for i in here if i not in reached]
        cut = [names[i] for i in here if i in reached]
        causes = []
        if unused:
            causes.append(
                f"{unused} were not used in forward (the forward output's autograd graph does "
                "not reach them)"
            )
        if cut:
            causes.append(
                f"{cut} were used in forward, but the outputs they feed did not reach the "
                "loss (no gradient arrived)"
            )
        text += f". On rank {ranks[me]}: " + "; ".join(causes)
    else:
        text += f". Rank {ranks[me]} got all its gradients; the ranks above did not"
    return (
        text + ". Pass find_unused_parameters=True if some parameters legitimately get no "
        "gradient in some iterations, or make every parameter take part in the loss."
    )


def parameter_hashes(params: list[Tensor]) -> np.ndarray:
    """A cheap per-parameter fingerprint: float64 sum and sum of squares, shape (n, 2)."""
    out = np.empty((len(params), 2), np.float64)
    for k, p in enumerate(params):
        a = p._array.astype("float64").reshape(-1)
        out[k, 0] = float(a.sum())
        out[k, 1] = float(a @ a)
    return out


def replicas_differ(gathered: np.ndarray, names: list[str], ranks: list[int]) -> str | None:
    """The first parameter whose hash differs across ranks (``gathered``: (ranks, n, 2)),
    described with the ranks that differ from the first; None if all agree bitwise."""
    bits = np.ascontiguousarray(gathered).view(np.int64)
    differs = (bits != bits[:1]).any(axis=2)  # (ranks, n)
    columns = np.flatnonzero(differs.any(axis=0))
    if len(columns) == 0:
        return None
    i = int(columns[0])
    odd = [ranks[r] for r in np.flatnonzero(differs[:, i])]
    ref = gathered[0, i].tolist()
    other = gathered[int(np.flatnonzero(differs[:, i])[0]), i].tolist()
    return (
        f"parameter {names[i]!r} differs on ranks {odd} from rank {ranks[0]} "
        f"(sum {ref[0]!r} vs {other[0]!r}, sum of squares {ref[1]!r} vs {other[1]!r}); "
        f"{len(columns)} of {len(names)} parameters differ"
    )
