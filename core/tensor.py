"""The Tensor: an array (NumPy or CuPy) plus what autograd needs to know about it.

Math lives in ``core/ops``; each op module attaches its Tensor methods next to the
op, so this file holds only identity, conversion and autograd plumbing.
"""

from __future__ import annotations

import numpy as np

from . import autograd, autograd_engine, backend, dtypes
from .backend import xp_of
from .inplace_views import rebase_view
from .utils.hooks import add_hook


class Tensor:
    __slots__ = (
        "_array",
        "requires_grad",
        "grad",
        "grad_fn",
        "_output_nr",
        "_version_counter",
        "_base",
        "_acc",
        "_grad_hooks",
        "_post_acc_hooks",
        "_retains_grad",
        "__weakref__",
    )
    __array_priority__ = 1000  # make ndarray <op> Tensor defer to Tensor's reflected op

    def __init__(self, data=None, *, requires_grad: bool = False):
        if data is None:
            data = np.empty((0,), dtypes.get_default_dtype().np)
        elif not hasattr(data, "__array_namespace__") and not isinstance(data, np.ndarray):
            data = np.asarray(data, dtype=dtypes.get_default_dtype().np)
        self._init(data, requires_grad, None, 0)

    def _init(self, data, requires_grad, grad_fn, output_nr):
        self._array = data
        self.requires_grad = requires_grad
        self.grad = None
        self.grad_fn = grad_fn
        self._output_nr = output_nr
        self._version_counter = [0]
        self._base = None
        self._acc = None
        self._grad_hooks = None
        self._post_acc_hooks = None
        self._retains_grad = False

    @classmethod
    def _make(cls, data, requires_grad, grad_fn, output_nr):
        # _init inlined: this runs once per op output
        t = object.__new__(cls)
        t._array = data
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t._output_nr = output_nr
        t._version_counter = [0]
        t._base = None
        t._acc = None
        t._grad_hooks = None
        t._post_acc_hooks = None
        t._retains_grad = False
        return t

    # -- identity ---------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """This tensor's values without its autograd history: a new tensor that shares
        the memory, never requires grad and keeps its own version counter, so in-place
        changes through it (``p.data.add_(...)``) are not seen by autograd."""
        return Tensor._make(self._array, False, None, 0)

    @data.setter
    def data(self, value: Tensor) -> None:
        # p.data = t swaps the storage and keeps p's identity (shape and dtype may change)
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be assigned a Tensor, not {type(value).__name__}")
        self._array = value._array
        self._bump_version()

    @property
    def shape(self) -> Size:
        return Size(self._array.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._array.shape)
        return self._array.shape[wrap_dim(dim, self._array.ndim)]

    @property
    def dtype(self) -> dtypes.dtype:
        return dtypes.from_numpy(self._array.dtype)

    @property
    def device(self) -> backend.device:
        return backend.device_of(self._array)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def ndim(self) -> int:
        return self._array.ndim

    def dim(self) -> int:
        return self._array.ndim

    def numel(self) -> int:
        return int(self._array.size)

    def element_size(self) -> int:
        return self._array.itemsize

    @property
    def itemsize(self) -> int:
        return self._array.itemsize

    @property
    def nbytes(self) -> int:
        return int(self._array.nbytes)

    def is_floating_point(self) -> bool:
        return self._array.dtype.kind == "f" or dtypes.is_bfloat16(self._array.dtype)

    def is_contiguous(self) -> bool:
        return bool(self._array.flags.c_contiguous)

    def stride(self, dim: int | None = None):
        """Steps in elements between neighbours along each dim (PyTorch's ``stride()``), or
        along ``dim``; a view (transpose, slice, expand) shows its own."""
        steps = tuple(step // self._array.itemsize for step in self._array.strides)
        return steps if dim is None else steps[wrap_dim(dim, len(steps))]

    def data_ptr(self) -> int:
        if isinstance(self._array, np.ndarray):
            return self._array.__array_interface__["data"][0]
        return self._array.data.ptr

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        return self._version_counter[0]

    def _bump_version(self) -> None:
        self._version_counter[0] += 1

    def __len__(self) -> int:
        if self._array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    def __iter__(self):
        if self._array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        arr = backend.move_array(self._array, backend.CPU)
        if dtypes.is_bfloat16(arr.dtype):
            arr = arr.astype(np.float32)
        body = np.array2string(
            arr, separator=", ", precision=4, prefix="tensor(", threshold=1000, edgeitems=3
        )
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_):
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    def __format__(self, format_spec: str) -> str:
        # as PyTorch: a 0-d tensor formats as its Python number (f"{loss:.4f}"); anything
        # else only with an empty spec, as its str
        if self._array.ndim == 0 and type(self) is Tensor:
            value = self._array.item()
            if isinstance(value, np.generic):  # bfloat16 has no Python counterpart
                value = float(value)
            return format(value, format_spec)
        return object.__format__(self, format_spec)

    # -- conversion -------------------------------------------------------------------
    def item(self):
        if autograd._tracer is not None:
            autograd._tracer.to_python(self, "item")
        if self._array.size != 1:
            raise RuntimeError(
                f"a Tensor with {self._array.size} elements cannot be converted to Scalar"
            )
        return self._array.reshape(()).item()

    def tolist(self):
        if autograd._tracer is not None:
            autograd._tracer.to_python(self, "tolist")
        return backend.move_array(self._array, backend.CPU).tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        if autograd._tracer is not None:
            autograd._tracer.to_python(self, "numpy")
        if self.requires_grad and not force:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy()"
            )
        if not isinstance(self._array, np.ndarray):
            if not force:
                raise TypeError(
                    f"can't convert {self.device} tensor to numpy; use tensor.cpu() first"
                )
            return self._array.get()
        return self._array

    def __array__(self, dtype=None, copy=None):
        arr = backend.move_array(self._array, backend.CPU)
        return arr if dtype is None else arr.astype(dtype)

    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()

    @property
    def __cuda_array_interface__(self) -> dict:
        """CuPy's interface dict for CUDA tensors; CPU tensors have no such attribute."""
        if isinstance(self._array, np.ndarray):
            raise AttributeError(
                f"Can't get __cuda_array_interface__ on non-CUDA tensor of dtype {self.dtype}. "
                "If CUDA data is required use tensor.cuda() to copy tensor to device memory."
            )
        if self.requires_grad:
            raise RuntimeError(
                "Can't get __cuda_array_interface__ on Tensor that requires grad. If gradients "
                "aren't required, use tensor.detach() to get Tensor that doesn't require grad."
            )
        return self._array.__cuda_array_interface__

    def __bool__(self) -> bool:
        if autograd._tracer is not None:
            autograd._tracer.to_python(self, "bool")
        if self._array.size != 1:
            raise RuntimeError(
                f"Boolean value of Tensor with {self._array.size} values is ambiguous"
            )
        return bool(self._array.reshape(()).item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._array.dtype.kind not in "iub" or self._array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device=None) -> Tensor:
        return self.to(backend.normalize_device("cuda" if device is None else device))

    def type(self, dtype=None):
        if dtype is None:
            return f"ember.{self.dtype.name}"
        return self.to(dtype)

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def half(self) -> Tensor:
        return self.to(dtypes.float16)

    def bfloat16(self) -> Tensor:
        return self.to(dtypes.bfloat16)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool_)

    # -- autograd ---------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        r"""Accumulate the gradient of this tensor into the ``.grad`` of the leaves.

        Args:
            gradient: d(out)/d(self); may be omitted for a single-element tensor.
            retain_graph: keep saved values for another backward (default: create_graph).
            create_graph: record the backward pass so it can itself be differentiated.
            inputs: the tensors whose ``.grad`` to accumulate into (default: every leaf).
        """
        autograd_engine.backward(
            self, None if gradient is None else [gradient], retain_graph, create_graph, inputs
        )

    def detach(self) -> Tensor:
        t = Tensor._make(self._array, False, None, 0)
        t._version_counter = self._version_counter
        t._base = self if self._base is None else self._base
        return t

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to "
                "use a computed variable in a subgraph that doesn't require differentiation "
                "use var_no_grad = var.detach()."
            )
        if requires_grad and not (self.is_floating_point()):
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        if self.grad_fn is None:
            return
        if self._retains_grad:
            return
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        self._retains_grad = True
        import weakref

        ref = weakref.ref(self)

        def store(grad):
            t = ref()
            if t is not None:
                g = grad.detach() if not autograd._create_graph else grad
                t.grad = (
                    Tensor._make(g._array.copy(), False, None, 0) if t.grad is None else t.grad + g
                )

        self.grad_fn._add_pre_hook(self._output_nr, store)

    def register_hook(self, hook):
        r"""Call ``hook(grad)`` when the gradient w.r.t. this tensor is computed; a
        returned tensor replaces the gradient. Returns a handle with ``remove()``."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            if self._grad_hooks is None:
                self._grad_hooks = {}
            return add_hook(self._grad_hooks, hook)
        return self.grad_fn._add_pre_hook(self._output_nr, hook)

    def register_post_accumulate_grad_hook(self, hook):
        r"""Call ``hook(tensor)`` after a leaf's ``.grad`` has been accumulated."""
        if self.grad_fn is not None:
            raise RuntimeError(
                "post accumulate grad hooks cannot be registered on non-leaf tensors"
            )
        if self._post_acc_hooks is None:
            self._post_acc_hooks = {}
        return add_hook(self._post_acc_hooks, hook)

    def _accumulator(self):
        acc = self._acc
        if acc is None:
            acc = self._acc = autograd.AccumulateGrad(self)
        return acc

    # -- in-place support ---------------------------------------------------------------
    def _check_inplace(self):
        if autograd._grad_enabled and self.requires_grad and self.grad_fn is None:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )

    def _inplace_from(self, result: Tensor) -> Tensor:
        """Make ``self`` hold ``result``'s values (cast to self's dtype) in its own memory,
        and take over result's place in the graph."""
        self._check_inplace()
        if autograd._tracer is not None:
            autograd._tracer.rebind(self, result)
        # a view records the write on its base too (see inplace_views.rebase_view); a
        # detached alias of a tensor that requires grad (no grad itself) is left alone
        base = self._base
        rebase = base is not None and result.requires_grad
        rebase = rebase and (self.requires_grad or not base.requires_grad)
        if rebase and base.requires_grad and base.grad_fn is None:
            raise RuntimeError(
                "a view of a leaf Variable that requires grad is being used in an in-place "
                "operation."
            )
        data = result._array
        if data is not self._array:
            xp = xp_of(self._array)
            if data.shape != self._array.shape:
                raise RuntimeError(
                    f"output with shape {list(self._array.shape)} doesn't match the broadcast "
                    f"shape {list(data.shape)}"
                )
            xp.copyto(self._array, data, casting="unsafe")
        self._bump_version()
        if result.requires_grad:
            if rebase:
                rebase_view(self, result)
                return self
            self.requires_grad = True
            self.grad_fn = result.grad_fn
            self._output_nr = result._output_nr
        return self

    def _snapshot(self) -> Tensor:
        """An autograd-equivalent copy of self taken before an in-place change."""
        if not (autograd._grad_enabled and self.requires_grad):
            return self
        t = Tensor._make(self._array.copy(), True, self.grad_fn, self._output_nr)
        t._acc = self._acc
        return t


class Size(tuple):
    """A shape: a tuple with ``numel()``, as ``torch.Size``."""

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"ember.Size({list(self)})"


def wrap_array(array) -> Tensor:
    """A plain tensor backed by ``array`` (a NumPy or CuPy array, memory shared, not
    copied): no grad, no history. For the layers above the ops (``nn``, ``distributed``,
    ``optim``, serialization) that compute on raw arrays and hand back tensors; it does not
    check the dtype, so ``array`` must already have one of ember's."""
    return Tensor._make(array, False, None, 0)


def wrap_dim(dim: int, ndim: int) -> int:
    """``dim`` as an index in ``[0, ndim)`` (negative counts from the end; a 0-d tensor
    takes -1 and 0), or IndexError with PyTorch's message."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
        )
    return dim % n


autograd.register_tensor_class(Tensor)
