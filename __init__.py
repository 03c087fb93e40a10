"""ember: a data-parallel deep-learning framework with PyTorch's API.

This file only re-exports; the code lives in core/ (tensors, autograd, nn, optim, data),
distributed/ (process groups, DDP) and launch/ (ember-launch). The public names load on
first use (PEP 562): ``import ember`` alone, and ``ember-launch``, which needs only the
standard library, start without NumPy; a first tensor op loads tensors and ops only, and
``nn``, ``optim``, ``distributed`` and the other submodules load when first named.
"""

import importlib as _importlib
import importlib.util as _importlib_util
import sys as _sys

from .launch.env import export_torchrun_environment as _export_torchrun_environment

# Submodules and where they live, each imported when first named (``ember.nn`` or
# ``import ember.nn``); torch-style dotted paths are served by _AliasFinder.
_SUBMODULES = {
    "amp": "ember.core.amp",
    "autograd": "ember.core.autograd_public",
    "backends": "ember.core.cuda_flags",
    "cuda": "ember.core.cuda",
    "distributed": "ember.distributed",
    "linalg": "ember.core.linalg",
    "nn": "ember.core.nn",
    "optim": "ember.core.optim",
    "serialization": "ember.core.serialization",
    "utils": "ember.core.utils",
}
# ... and those that nothing else needs
_LEAF_SUBMODULES = {
    "accelerator": "ember.core.accelerator",
    "models": "ember.core.models",
    "multiprocessing": "ember.core.multiprocessing",
    "onnx": "ember.core.onnx",
}

# The public functions and classes, by the module that defines them.
_EXPORTS = {
    "ember.core.amp": """
        autocast
    """,
    "ember.core.autograd": """
        enable_grad inference_mode is_grad_enabled no_grad set_grad_enabled
    """,
    "ember.core.backend": """
        device
    """,
    "ember.core.creation": """
        arange as_tensor bernoulli empty empty_like eye from_dlpack from_numpy full
        full_like linspace multinomial normal ones ones_like rand rand_like randint
        randint_like randn randn_like randperm tensor zeros zeros_like
    """,
    "ember.core.dtypes": """
        bfloat16 dtype float16 float32 float64 get_default_dtype int16 int32 int64 int8
        promote_types set_default_dtype uint8
    """,
    "ember.core.cuda_flags": """
        get_float32_matmul_precision set_float32_matmul_precision
    """,
    "ember.core.eager": """
        compile
    """,
    "ember.core.legacy_tensors": """
        BFloat16Tensor BoolTensor ByteTensor CharTensor DoubleTensor FloatTensor
        HalfTensor IntTensor LongTensor ShortTensor
    """,
    "ember.core.ops.activation": """
        relu
    """,
    "ember.core.ops.arithmetic": """
        abs add div floor_divide fmod maximum minimum mul neg pow remainder sub
    """,
    "ember.core.ops.bitwise": """
        bitwise_and bitwise_left_shift bitwise_not bitwise_or bitwise_right_shift
        bitwise_xor
    """,
    "ember.core.ops.comparison": """
        allclose eq equal ge gt isclose isfinite isinf isnan le logical_and logical_not
        logical_or logical_xor lt ne
    """,
    "ember.core.ops.elementwise": """
        clamp clone masked_fill where
    """,
    "ember.core.ops.indexing": """
        argwhere index_put masked_scatter masked_select nonzero select take
    """,
    "ember.core.ops.join": """
        atleast_1d atleast_2d cat chunk concat concatenate hstack split stack
        tensor_split unbind vstack
    """,
    "ember.core.ops.linalg": """
        addmm baddbmm bmm dot einsum inner matmul mm mv outer tensordot trace
    """,
    "ember.core.ops.movement": """
        broadcast_to diagonal flatten meshgrid movedim narrow permute reshape squeeze
        swapaxes swapdims t transpose unflatten unsqueeze
    """,
    "ember.core.ops.reduce": """
        all amax amin any argmax argmin count_nonzero logsumexp max mean median min
        nanmean nansum norm prod std std_mean sum var var_mean
    """,
    "ember.core.ops.reorder": """
        diag flip repeat_interleave roll tile tril triu
    """,
    "ember.core.ops.scan": """
        argsort cummax cummin cumprod cumsum logcumsumexp sort topk
    """,
    "ember.core.ops.softmax": """
        log_softmax softmax
    """,
    "ember.core.ops.scatter": """
        gather index_add index_copy index_fill index_select scatter scatter_add
        take_along_dim
    """,
    "ember.core.ops.scatter_reduce": """
        scatter_reduce
    """,
    "ember.core.ops.unary_math": """
        acos acosh arccos arccosh arcsin arcsinh arctan arctan2 arctanh asin asinh atan
        atan2 atanh ceil copysign cos cosh erf erfc erfinv exp exp2 expm1 floor lerp log
        log10 log1p log2 logaddexp logaddexp2 reciprocal round rsqrt sigmoid sign sin
        sinh sqrt square tan tanh trunc
    """,
    "ember.core.random": """
        Generator get_rng_state initial_seed manual_seed seed set_rng_state
    """,
    "ember.core.serialization": """
        load save
    """,
    "ember.core.tensor": """
        Size Tensor
    """,
    "ember.core.threads": """
        get_num_interop_threads get_num_threads set_num_interop_threads set_num_threads
    """,
}

_ALIASES = {  # PyTorch's second names, and a name Python's keywords keep from its module
    "bool": "ember.core.dtypes.bool_",
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "short": "int16",
    "int": "int32",
    "long": "int64",
    "clip": "clamp",
    "negative": "neg",
    "multiply": "mul",
    "divide": "div",
    "subtract": "sub",
}


class _AliasFinder:
    """Serves torch-style paths (``import ember.nn.functional as F``) from the modules
    that implement them under core/ and distributed/, as the same module objects. Any
    import under ``ember.`` but ``ember.launch`` loads the tensor surface first, and a
    path under a public submodule loads that submodule with the attributes it takes from
    other packages (``ember.nn.parallel``)."""

    # every submodule's torch-style path, and the deeper paths torch has; longest first,
    # since a path takes the first alias it starts with
    ALIASES = dict(
        sorted(
            {
                **{
                    **{
                        f"ember.{name}": real
                        for name, real in (_SUBMODULES | _LEAF_SUBMODULES).items()
                        if real != f"ember.{name}"  # ember.distributed is a real package
                    },
                },
                "ember.utils.data.distributed": "ember.distributed.sampler",
                "ember.nn.parallel": "ember.distributed.parallel",
                "ember.cuda.amp": "ember.core.cuda_amp",
            }.items(),
            key=lambda item: -len(item[0]),
        )
    )

    def find_spec(self, name, path=None, target=None):
        if not name.startswith("ember.") or name.startswith("ember.launch"):
            return None
        _load()
        head = name.split(".")[1]
        if head in _CROSS_PACKAGE:
            _submodule(head)
        for alias, real in self.ALIASES.items():
            if name == alias or name.startswith(alias + "."):
                return _importlib_util.spec_from_loader(
                    name, self, origin=real + name[len(alias) :]
                )
        module = _sys.modules.get(name)
        if module is not None:
            # _load() has just imported it (or _submodule has). Python would run its code
            # again into a second
            # module object (one without the submodules bound to the first), unless the
            # spec it finds on the module is this finder's, which hands the module back.
            spec = _importlib_util.spec_from_loader(name, self, origin=name)
            spec.loader_state = module.__spec__
            module.__spec__ = spec
            return spec
        return None

    def create_module(self, spec):
        module = _importlib.import_module(spec.origin)
        if spec.loader_state is None:
            spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        # importlib has just replaced the module's __spec__ by the alias spec; restore the
        # real one so importlib.resources and reload() still see a package.
        module.__spec__ = module.__spec__.loader_state


if not [f for f in _sys.meta_path if isinstance(f, _AliasFinder)]:
    _sys.meta_path.insert(0, _AliasFinder())

# under a plain `mpirun python train.py`, scripts that read torchrun's RANK, LOCAL_RANK and
# WORLD_SIZE find them (ember-launch sets them before the script starts)
_export_torchrun_environment()

_state = {"loaded": False, "loading": False}


def _load() -> None:
    """Import the tensor surface into this module's namespace (once): every op (so Tensor
    has its methods) and the functions and classes in _EXPORTS. ``nn``, ``optim``,
    ``distributed`` and the other submodules load when first named (``_submodule``)."""
    if _state["loaded"] or _state["loading"]:
        return
    _state["loading"] = True
    try:
        allocator = _importlib.import_module("ember.core.allocator")
        allocator.tune()
        allocator.huge_pages()
        names = globals()
        for path, exported in _EXPORTS.items():
            module = _importlib.import_module(path)
            for name in exported.split():
                names[name] = getattr(module, name)
        for alias, name in _ALIASES.items():
            path, _, attr = name.rpartition(".")
            names[alias] = getattr(_importlib.import_module(path), attr) if path else names[name]
        _state["loaded"] = True
    finally:
        _state["loading"] = False


def _wire_nn(nn) -> None:
    nn.parallel = _importlib.import_module("ember.distributed.parallel")
    nn.SyncBatchNorm = _importlib.import_module("ember.distributed.sync_batchnorm").SyncBatchNorm


def _wire_utils(utils) -> None:
    utils.data.distributed = _importlib.import_module("ember.distributed.sampler")


def _wire_cuda(cuda) -> None:
    cuda.amp = _importlib.import_module("ember.core.cuda_amp")
    cuda.__path__ = []  # a package to the import system, so `import ember.cuda.amp` resolves


# torch-style attribute paths across packages, set when the submodule is first named
_CROSS_PACKAGE = {"nn": _wire_nn, "utils": _wire_utils, "cuda": _wire_cuda}


def _submodule(name: str):
    """The public submodule ``name`` (imported, and its cross-package attributes set, once)."""
    names = globals()
    module = names.get(name)
    if module is None:
        module = _importlib.import_module((_SUBMODULES | _LEAF_SUBMODULES)[name])
        names[name] = module  # before wiring, which may import packages that name it
        wire = _CROSS_PACKAGE.get(name)
        if wire is not None:
            wire(module)
    return module


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ember")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    if name.startswith("__") and name != "__all__":
        raise AttributeError(f"module 'ember' has no attribute {name!r}")
    _load()
    if name in _SUBMODULES or name in _LEAF_SUBMODULES:
        return _submodule(name)
    if name == "__all__":
        return sorted(
            set(_LEAF_SUBMODULES)
            | set(_SUBMODULES)
            | set(_ALIASES)
            | {n for v in _EXPORTS.values() for n in v.split()}
        )
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'ember' has no attribute {name!r}") from None


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))
