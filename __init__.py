"""ember: a data-parallel deep-learning framework with PyTorch's API."""

import sys as _sys

from .core import autograd_api as autograd
from .core.autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .core.backend import device
from .core import amp, cuda
from .core.amp import autocast
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
    bool_ as bool,
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
from .core.ops.elementwise import (
    abs,
    add,
    allclose,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
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
    log2,
    log10,
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
    relu,
    remainder,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    sub,
    tanh,
    trunc,
    where,
)
# --- movement and indexing ---
# --- reductions and linear algebra ---
# --- nn-level functions exposed at top level (softmax, conv2d, ...) ---
from .core.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from .core.tensor import Size, Tensor

half, float, double = float16, float32, float64
short, int, long = int16, int32, int64
clip, negative, multiply, divide, subtract = clamp, neg, mul, div, sub

__version__ = "0.1.0"


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
        "ember.amp": "ember.core.amp",
        "ember.nn": "ember.core.nn",
    }

    def find_spec(self, name, path=None, target=None):
        for alias, real in self.ALIASES.items():
            if name == alias or name.startswith(alias + "."):
                return _importlib_util.spec_from_loader(name, self, origin=real + name[len(alias) :])
        return None

    def create_module(self, spec):
        return _importlib.import_module(spec.origin)

    def exec_module(self, module):
        pass


import importlib as _importlib  # noqa: E402
import importlib.util as _importlib_util  # noqa: E402

if not any(isinstance(f, _AliasFinder) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _AliasFinder())
