"""ember: a data-parallel deep-learning framework with PyTorch's API.

This file only re-exports; the code lives in core/ (tensors, autograd, nn, optim, data),
distributed/ (process groups, DDP) and launch/ (ember-launch).
"""

import importlib as _importlib
import importlib.util as _importlib_util
import sys as _sys


class _AliasFinder:
    """Serves torch-style paths (``import ember.nn.functional as F``) from the modules
    that implement them under core/ and distributed/, as the same module objects."""

    ALIASES = {  # longest first: a path takes the first alias it starts with
        "ember.utils.data.distributed": "ember.distributed.sampler",
        "ember.nn.parallel": "ember.distributed.parallel",
        "ember.autograd": "ember.core.autograd_api",
        "ember.backends": "ember.core.backends",
        "ember.optim": "ember.core.optim",
        "ember.utils": "ember.core.utils",
        "ember.cuda": "ember.core.cuda",
        "ember.linalg": "ember.core.linalg",
        "ember.amp": "ember.core.amp",
        "ember.nn": "ember.core.nn",
    }

    def find_spec(self, name, path=None, target=None):
        for alias, real in self.ALIASES.items():
            if name == alias or name.startswith(alias + "."):
                return _importlib_util.spec_from_loader(
                    name, self, origin=real + name[len(alias) :]
                )
        return None

    def create_module(self, spec):
        module = _importlib.import_module(spec.origin)
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        # importlib has just replaced the module's __spec__ by the alias spec; restore the
        # real one so importlib.resources and reload() still see a package.
        module.__spec__ = module.__spec__.loader_state


if not [f for f in _sys.meta_path if isinstance(f, _AliasFinder)]:
    _sys.meta_path.insert(0, _AliasFinder())

from . import distributed
from .core import amp, backends, cuda, linalg, nn, optim, serialization, utils
from .core import autograd_api as autograd
from .core.amp import autocast
from .core.autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .core.backend import device
from .core.creation import (
    arange,
    as_tensor,
    bernoulli,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .core.dtypes import (
    bfloat16,
    dtype,
    float16,
    float32,
    float64,
    get_default_dtype,
    int8,
    int16,
    int32,
    int64,
    promote_types,
    set_default_dtype,
    uint8,
)
from .core.dtypes import (
    bool_ as bool,
)
from .core.ops.activation import relu
from .core.ops.bitwise import (
    bitwise_and,
    bitwise_left_shift,
    bitwise_not,
    bitwise_or,
    bitwise_right_shift,
    bitwise_xor,
)
from .core.ops.elementwise import (
    abs,
    add,
    allclose,
    ceil,
    clamp,
    clone,
    cos,
    div,
    eq,
    equal,
    exp,
    expm1,
    floor,
    floor_divide,
    fmod,
    ge,
    gt,
    isclose,
    isfinite,
    isinf,
    isnan,
    le,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    lt,
    masked_fill,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    reciprocal,
    remainder,
    round,
    rsqrt,
    sigmoid,
    sin,
    sqrt,
    sub,
    tanh,
    trunc,
    where,
)
from .core.ops.indexing import (
    argwhere,
    index_put,
    masked_scatter,
    masked_select,
    nonzero,
    select,
    take,
)
from .core.ops.join import (
    atleast_1d,
    atleast_2d,
    cat,
    chunk,
    concat,
    concatenate,
    hstack,
    split,
    stack,
    tensor_split,
    unbind,
    vstack,
)
from .core.ops.linalg import (
    addmm,
    baddbmm,
    bmm,
    dot,
    einsum,
    inner,
    matmul,
    mm,
    mv,
    outer,
    tensordot,
    trace,
)
from .core.ops.movement import (
    broadcast_to,
    diagonal,
    flatten,
    meshgrid,
    movedim,
    narrow,
    permute,
    reshape,
    squeeze,
    swapaxes,
    swapdims,
    t,
    transpose,
    unflatten,
    unsqueeze,
)
from .core.ops.reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    count_nonzero,
    logsumexp,
    max,
    mean,
    median,
    min,
    nanmean,
    nansum,
    norm,
    prod,
    std,
    std_mean,
    sum,
    var,
    var_mean,
)
from .core.ops.reorder import diag, flip, repeat_interleave, roll, tile, tril, triu
from .core.ops.scan import (
    argsort,
    cummax,
    cummin,
    cumprod,
    cumsum,
    log_softmax,
    logcumsumexp,
    softmax,
    sort,
    topk,
)
from .core.ops.scatter import (
    gather,
    index_add,
    index_copy,
    index_fill,
    index_select,
    scatter,
    scatter_add,
    take_along_dim,
)
from .core.ops.scatter_reduce import scatter_reduce
from .core.ops.unary_math import (
    acos,
    acosh,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    copysign,
    cosh,
    erf,
    erfc,
    erfinv,
    exp2,
    lerp,
    log2,
    log10,
    logaddexp,
    logaddexp2,
    sign,
    sinh,
    tan,
)
from .core.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from .core.serialization import load, save
from .core.tensor import Size, Tensor
from .distributed import sync_batchnorm as _sync_batchnorm  # for nn.SyncBatchNorm

half, float, double = float16, float32, float64
short, int, long = int16, int32, int64
clip, negative, multiply, divide, subtract = clamp, neg, mul, div, sub

__version__ = "0.1.0"

# torch-style attribute paths: ember.nn.parallel, ember.utils.data.distributed
nn.parallel = distributed.parallel
nn.SyncBatchNorm = _sync_batchnorm.SyncBatchNorm
utils.data.distributed = distributed.sampler
