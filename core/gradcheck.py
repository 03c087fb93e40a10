"""Finite-difference gradient checks (float64), PyTorch's ``gradcheck`` in spirit."""

from __future__ import annotations

import numpy as np

from . import backend
from .autograd import no_grad
from .autograd_engine import run_backward
from .tensor import Tensor


def _differentiable_outputs(out):
    """Positions of the outputs that require grad (None for a single tensor)."""
    if isinstance(out, Tensor):
        return None
    return [i for i, o in enumerate(out) if isinstance(o, Tensor) and o.requires_grad]


def _flat_outputs(out, positions):
    return [out] if positions is None else [out[i] for i in positions]


def gradcheck(
    func,
    inputs,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    check_grad_dtypes: bool = False,
    seed: int = 0,
) -> bool:
    r"""Compare autograd's gradients of ``func(*inputs)`` with central differences.

    Every floating-point input that requires grad is checked along a random projection
    of the outputs (a vector-Jacobian product), element by element. Use float64 inputs.

    Example::

        >>> x = ember.randn(3, dtype=ember.float64, requires_grad=True)
        >>> ember.autograd.gradcheck(lambda t: (t * t).sin(), (x,))
        True
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in checked:
        if inputs[i].dtype.name != "float64":
            import warnings

            warnings.warn(
                f"gradcheck input {i} is {inputs[i].dtype}, not float64; the check may fail "
                "for lack of precision",
                stacklevel=2,
            )
    rng = np.random.default_rng(seed)
    result = func(*inputs)
    positions = _differentiable_outputs(result)
    outputs = _flat_outputs(result, positions)
    projections = [
        backend.move_array(rng.standard_normal(o.shape).astype(o._array.dtype), o.device)
        for o in outputs
    ]

    def projected(*args):
        with no_grad():
            outs = _flat_outputs(func(*args), positions)
        return sum(float((o._array * v).sum()) for o, v in zip(outs, projections))

    analytical = run_backward(
        outputs,
        projections,
        retain_graph=False,
        create_graph=False,
        inputs=[inputs[i] for i in checked],
        accumulate=False,
    )
    for slot, i in enumerate(checked):
        x = inputs[i]
        flat = x._array.reshape(-1)
        numerical = np.zeros(flat.size)
        for k in range(flat.size):
            orig = flat[k].item()
            flat[k] = orig + eps
            plus = projected(*inputs)
            flat[k] = orig - eps
            minus = projected(*inputs)
            flat[k] = orig
            numerical[k] = (plus - minus) / (2 * eps)
        got = analytical[slot]
        got = (
            np.zeros(flat.size)
            if got is None
            else np.asarray(backend.move_array(got._array, backend.CPU), dtype=np.float64).reshape(
                -1
            )
        )
        if not np.allclose(got, numerical, atol=atol, rtol=rtol):
            worst = int(np.argmax(np.abs(got - numerical)))
            msg = (
                f"Jacobian mismatch for input {i} (shape {list(x.shape)}): at flat index "
                f"{worst} analytical {got[worst]:.8g} vs numerical {numerical[worst]:.8g}"
            )
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


class GradcheckError(RuntimeError):
    pass
