"""One-step recurrent cells: ``RNNCell``, ``LSTMCell``, ``GRUCell``, each a single step
of the fused recurrent ops (ops/recurrent.py), with PyTorch's parameters and checks."""

from __future__ import annotations

import math

from .. import creation
from ..ops._util import check_same_device
from ..ops.recurrent import GRUSequence, LSTMSequence, RNNSequence
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter
from .rnn import _check_dtype, _check_hidden_dtype


class RNNCellBase(Module):
    r"""Parameters shared by the cells: ``weight_ih`` (chunks * hidden, input),
    ``weight_hh`` (chunks * hidden, hidden), ``bias_ih`` and ``bias_hh`` (or None),
    initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        gates = num_chunks * hidden_size
        self.weight_ih = Parameter(creation.empty((gates, input_size), **factory))
        self.weight_hh = Parameter(creation.empty((gates, hidden_size), **factory))
        if bias:
            self.bias_ih = Parameter(creation.empty(gates, **factory))
            self.bias_hh = Parameter(creation.empty(gates, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _prepare(self, name: str, input: Tensor, states, state_label: str):
        """Check dims and sizes; returns (input, states, is_batched) with 2-D tensors."""
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for idx, s in enumerate(states):
            if s is not None and s.dim() not in (1, 2):
                label = state_label.format(idx=idx)
                raise ValueError(f"{name}: Expected {label} to be 1D or 2D, got {s.dim()}D instead")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
            states = [None if s is None else s.unsqueeze(0) for s in states]
        _check_dtype(input, self.weight_ih)
        check_same_device(name, input, *states, self.weight_ih)
        if input.shape[1] != self.input_size:
            raise RuntimeError(
                f"input has inconsistent input_size: got {input.shape[1]} expected "
                f"{self.input_size}"
            )
        for idx, s in enumerate(states):
            if s is None:
                continue
            if s.dim() != 2:
                raise RuntimeError(
                    f"{name}: hidden{idx} must be 2-D for a batched input, got shape "
                    f"{list(s.shape)}"
                )
            if s.shape[0] != input.shape[0]:
                raise RuntimeError(
                    f"Input batch size {input.shape[0]} doesn't match hidden{idx} batch size "
                    f"{s.shape[0]}"
                )
            if s.shape[1] != self.hidden_size:
                raise RuntimeError(
                    f"hidden{idx} has inconsistent hidden_size: got {s.shape[1]}, expected "
                    f"{self.hidden_size}"
                )
            _check_hidden_dtype(input, s)
        return input, states, is_batched

    def _weights(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh


class RNNCell(RNNCellBase):
    r"""One Elman RNN step: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ReLU).

    Example::

        >>> cell = nn.RNNCell(10, 20)
        >>> h = cell(ember.randn(3, 10), ember.randn(3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ):
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        input, (hx,), is_batched = self._prepare("RNNCell", input, [hx], "hidden")
        h, _ = RNNSequence.apply(
            input,
            hx,
            *self._weights(),
            batch_sizes=(input.shape[0],),
            nonlinearity=self.nonlinearity,
        )
        return h if is_batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    r"""One LSTM step: returns ``(h', c')`` from ``input`` and ``hx = (h, c)`` (zeros
    when omitted).

    Example::

        >>> cell = nn.LSTMCell(10, 20)
        >>> h, c = cell(ember.randn(3, 10))
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx=None) -> tuple[Tensor, Tensor]:
        states = [None, None] if hx is None else list(hx)
        if len(states) != 2:
            raise TypeError("LSTMCell expects hx to be a tuple (h_0, c_0)")
        input, (h0, c0), is_batched = self._prepare("LSTMCell", input, states, "hx[{idx}]")
        h, _, c = LSTMSequence.apply(
            input, h0, c0, *self._weights(), None, batch_sizes=(input.shape[0],)
        )
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    r"""One GRU step: ``h' = (1 - z) * n + z * h`` with PyTorch's gates (r, z, n).

    Example::

        >>> cell = nn.GRUCell(10, 20)
        >>> h = cell(ember.randn(3, 10))
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (hx,), is_batched = self._prepare("GRUCell", input, [hx], "hidden")
        h, _ = GRUSequence.apply(input, hx, *self._weights(), batch_sizes=(input.shape[0],))
        return h if is_batched else h.squeeze(0)
