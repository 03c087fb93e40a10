"""Activation modules: thin wrappers over the functional forms, with PyTorch's
constructor arguments and reprs."""

from __future__ import annotations

from .. import creation
from ..ops import activation as act
from ..ops import activation_smooth as smooth
from ..ops import unary_math
from ..ops.softmax import log_softmax, softmax, softmin
from ..tensor import Tensor
from .module import Module
from .parameter import Parameter


def _run(fn, input: Tensor, inplace: bool, *args, **kwargs) -> Tensor:
    if inplace:
        return input._inplace_from(fn(input._snapshot(), *args, **kwargs))
    return fn(input, *args, **kwargs)


def _inplace_repr(inplace: bool, lead: str = "") -> str:
    if not inplace:
        return lead
    return f"{lead}, inplace=True" if lead else "inplace=True"


class _Simple(Module):
    """An activation with an optional ``inplace`` flag and no other arguments."""

    _fn = None

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _run(type(self)._fn, input, self.inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


class ReLU(_Simple):
    r"""``max(0, x)``."""

    _fn = staticmethod(act.relu)


class SiLU(_Simple):
    r"""``x * sigmoid(x)``."""

    _fn = staticmethod(smooth.silu)


class Mish(_Simple):
    r"""``x * tanh(softplus(x))``."""

    _fn = staticmethod(smooth.mish)


class SELU(_Simple):
    r"""Scaled ELU with the self-normalising constants."""

    _fn = staticmethod(act.selu)


class Hardswish(_Simple):
    r"""``x * relu6(x + 3) / 6``."""

    _fn = staticmethod(act.hardswish)

    def extra_repr(self) -> str:
        return ""


class Hardsigmoid(_Simple):
    r"""``relu6(x + 3) / 6``."""

    _fn = staticmethod(act.hardsigmoid)

    def extra_repr(self) -> str:
        return ""


class _Stateless(Module):
    _fn = None

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input)


class Sigmoid(_Stateless):
    r"""``1 / (1 + exp(-x))``."""

    _fn = staticmethod(unary_math.sigmoid)


class Tanh(_Stateless):
    _fn = staticmethod(unary_math.tanh)


class LogSigmoid(_Stateless):
    _fn = staticmethod(smooth.logsigmoid)


class Softsign(_Stateless):
    _fn = staticmethod(smooth.softsign)


class Hardtanh(Module):
    r"""Clamp to ``[min_val, max_val]``."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return act.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, f"min_val={self.min_val}, max_val={self.max_val}")


class ReLU6(Hardtanh):
    r"""``min(max(0, x), 6)``."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


class LeakyReLU(Module):
    r"""``x`` where positive, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _run(act.leaky_relu, input, self.inplace, self.negative_slope)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, f"negative_slope={self.negative_slope}")


class ELU(Module):
    r"""``x`` where positive, else ``alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _run(act.elu, input, self.inplace, self.alpha)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, f"alpha={self.alpha}")


class CELU(ELU):
    r"""``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    def forward(self, input: Tensor) -> Tensor:
        return _run(act.celu, input, self.inplace, self.alpha)


class GELU(Module):
    r"""Gaussian error linear unit; ``approximate="tanh"`` for the tanh form."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return smooth.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    r"""``log(1 + exp(beta * x)) / beta``, linear above ``threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input: Tensor) -> Tensor:
        return smooth.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    r"""Softmax along ``dim``."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    r"""Log-softmax along ``dim``."""

    def forward(self, input: Tensor) -> Tensor:
        return log_softmax(input, self.dim)


class PReLU(Module):
    r"""Parametric ReLU with a learnable slope (one, or one per channel).

    Example::

        >>> m = nn.PReLU(num_parameters=16)  # one slope per channel of (N, 16, H, W)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(creation.empty(num_parameters, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        from . import init as nn_init

        nn_init.constant_(self.weight, self.init)

    def forward(self, input: Tensor) -> Tensor:
        return act.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class GLU(Module):
    r"""Gated linear unit over ``dim``: ``a * sigmoid(b)`` for the two halves."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return smooth.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmin(Softmax):
    r"""``softmax(-x)`` along ``dim``."""

    def forward(self, input: Tensor) -> Tensor:
        return softmin(input, self.dim)


class Threshold(Module):
    r"""``x`` where ``x > threshold``, else ``value``."""

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold = threshold
        self.value = value
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return act.threshold(input, self.threshold, self.value, self.inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, f"threshold={self.threshold}, value={self.value}")


class Tanhshrink(_Stateless):
    _fn = staticmethod(smooth.tanhshrink)


class Softshrink(Module):
    r"""Shrink towards zero by ``lambd``."""

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = lambd

    def forward(self, input: Tensor) -> Tensor:
        return act.softshrink(input, self.lambd)

    def extra_repr(self) -> str:
        return str(self.lambd)


class Hardshrink(Softshrink):
    r"""Zero where ``|x| <= lambd``."""

    def forward(self, input: Tensor) -> Tensor:
        return act.hardshrink(input, self.lambd)


class RReLU(Module):
    r"""Randomized leaky ReLU: slope ~ U(lower, upper) per element while training,
    ``(lower + upper) / 2`` in eval mode."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__()
        self.lower = lower
        self.upper = upper
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return act.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, f"lower={self.lower}, upper={self.upper}")


class Softmax2d(Module):
    r"""Softmax over the channels of (N, C, H, W) or (C, H, W) inputs."""

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() not in (3, 4):
            raise ValueError(
                f"Softmax2d: expected input to be 3D or 4D, got {input.dim()}D instead"
            )
        return softmax(input, -3)
