"""``torch.compile``: ember runs eagerly, so compiling returns the model or function as it
is (said once, at info level, on the ``ember`` logger)."""

from __future__ import annotations

import logging

_told = False


def compile(
    model=None,
    *,
    fullgraph: bool = False,
    dynamic=None,
    backend="inductor",
    mode=None,
    options=None,
    disable: bool = False,
):
    r"""Return ``model`` unchanged: ember has no graph compiler and runs every op eagerly.
    Usable as ``ember.compile(model)``, ``@ember.compile`` and ``@ember.compile(mode=...)``.

    Example::

        >>> model = ember.compile(model)  # the same object
    """
    if model is None:
        return lambda fn: compile(fn)
    global _told
    if not _told and not disable:
        _told = True
        logging.getLogger("ember").info(
            "ember.compile: ember runs eagerly; the model is returned unchanged"
        )
    return model
