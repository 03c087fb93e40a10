"""Ops grouped by family; importing this package attaches every Tensor method."""

from . import (
    activation,
    attention,
    conv,
    elementwise,
    indexing,
    join,
    linalg,
    movement,
    nn,
    nn_activation,
    nn_composite,
    nn_losses,
    norm,
    pad,
    pool,
    reduce,
    reorder,
    scan,
    scatter,
)
