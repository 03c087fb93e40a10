"""``RemovableHandle``: what every ``register_*_hook`` returns - on modules, tensors and
optimizers - as in ``torch.utils.hooks``. Standard library only, so ``core.tensor`` and
``core.autograd`` can import it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any


class RemovableHandle:
    r"""Removes a hook. A hook lives in a dict under the handle's ``id``; ``remove()``
    takes that entry out of the dict and out of any ``extra_dict`` (flags kept beside
    the hook), and may be called more than once. ``with handle:`` removes the hook when
    the block ends.

    Args:
        hooks_dict: the dict that holds the hook under ``handle.id``.
        extra_dict: a dict, or a list of dicts, with entries under ``handle.id`` too.

    Example::

        >>> with model.register_forward_hook(lambda m, args, out: print(out.shape)):
        ...     model(x)  # prints; the hook is gone after the block
    """

    _next_id = itertools.count()

    def __init__(self, hooks_dict: dict, *, extra_dict: dict | list[dict] | None = None):
        extra = [] if extra_dict is None else extra_dict
        self.hooks_dicts = [hooks_dict, *(extra if isinstance(extra, list) else [extra])]
        self.id = next(RemovableHandle._next_id)

    def remove(self) -> None:
        for hooks in self.hooks_dicts:
            hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def add_hook(
    hooks_dict: dict, hook: Callable, *, prepend: bool = False, extra_dict: dict | None = None
) -> RemovableHandle:
    """Store ``hook`` in ``hooks_dict`` (last, or first with ``prepend``, which needs an
    ``OrderedDict``) and return its handle (which also clears ``extra_dict``'s entry)."""
    handle = RemovableHandle(hooks_dict, extra_dict=extra_dict)
    hooks_dict[handle.id] = hook
    if prepend:
        hooks_dict.move_to_end(handle.id, last=False)
    return handle


def pre_hook_result(result: Any, args: tuple, kwargs: dict, hook_kind: str) -> tuple:
    """``(args, kwargs)`` after a pre-hook that sees both returned ``result``: unchanged
    for None, replaced by a ``(new_args, new_kwargs)`` pair; anything else is an error
    naming the ``hook_kind``."""
    if result is None:
        return args, kwargs
    if not (isinstance(result, tuple) and len(result) == 2):
        raise RuntimeError(
            f"{hook_kind} must return None or a tuple of (new_args, new_kwargs), but got {result!r}"
        )
    return result
