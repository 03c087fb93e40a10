"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and the one-step ``RNNCell``,
``LSTMCell``, ``GRUCell``, with PyTorch's parameters, initialisation and call
conventions. Each layer-direction runs as one fused op (ops/recurrent.py)."""

from __future__ import annotations

import math
import numbers
import warnings

from .. import creation
from ..amp import _state as _autocast  # dtype checks relax inside a region
from ..ops._util import check_same_device
from ..ops.dropout import dropout as _dropout
from ..ops.join import cat, stack
from ..ops.recurrent import gru_layer, lstm_layer, rnn_layer
from ..ops.scatter import index_select
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence, _host_ints

_GATE_CHUNKS = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _run_layer(mode, x, h0, c0, weights, batch_sizes, reverse):
    """One layer-direction over the packed sequence: (output, h_n, c_n or None)."""
    if mode == "LSTM":
        return lstm_layer(x, h0, c0, weights, batch_sizes, reverse)
    if mode == "GRU":
        return (*gru_layer(x, h0, weights, batch_sizes, reverse), None)
    nonlinearity = "tanh" if mode == "RNN_TANH" else "relu"
    return (*rnn_layer(x, h0, weights, batch_sizes, reverse, nonlinearity), None)


def _check_dtype(input: Tensor, weight: Tensor) -> None:
    if input.dtype != weight.dtype and not _autocast:
        raise ValueError(
            f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}). "
            f"Convert input: input.to({weight.dtype}), or convert model: model.to({input.dtype})"
        )


def _check_hidden_dtype(input: Tensor, hidden: Tensor) -> None:
    if hidden.dtype != input.dtype and not _autocast:
        raise RuntimeError(
            "Input and hidden tensors are not the same dtype, found input tensor with "
            f"{input.dtype} and hidden tensor with {hidden.dtype}"
        )


def _check_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than zero")


class RNNBase(Module):
    r"""The multi-layer recurrent network behind ``RNN``, ``LSTM`` and ``GRU``.

    ``mode`` is ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``. Parameters of
    layer k are ``weight_ih_lk``, ``weight_hh_lk``, ``bias_ih_lk``, ``bias_hh_lk`` (and
    ``weight_hr_lk`` with ``proj_size``), with a ``_reverse`` copy for the backward
    direction, all initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability "
                f"of an element being zeroed, got {dropout!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        for name, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        _check_int("input_size", input_size)
        _check_int("hidden_size", hidden_size)
        _check_int("num_layers", num_layers)
        if proj_size < 0:
            raise ValueError(
                "proj_size should be a positive integer or zero to disable projections"
            )
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATE_CHUNKS:
            raise ValueError("Unrecognized RNN mode: " + mode)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size

        factory = {"device": device, "dtype": dtype}
        gate_size = _GATE_CHUNKS[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = [
                    ("weight_ih", (gate_size, layer_input)),
                    ("weight_hh", (gate_size, real_hidden)),
                ]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                names = []
                for base, shape in shapes:
                    setattr(self, base + suffix, Parameter(creation.empty(shape, **factory)))
                    names.append(base + suffix)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        r"""Does nothing: ember keeps no packed weight buffer (PyTorch's only matters for
        cuDNN). Present so PyTorch scripts run unchanged."""

    @property
    def _flat_weights(self) -> list:
        return [self._parameters.get(name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _layer_weights(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        params = self._parameters
        return tuple(
            params.get(base + suffix)
            for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        )

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward ----------------------------------------------------------------------------
    def _name(self) -> str:
        return self.mode if self.mode in ("LSTM", "GRU") else "RNN"

    def _check_input(self, input: Tensor, expected_dim: int) -> None:
        _check_dtype(input, self.weight_ih_l0)
        if input.dim() != expected_dim:
            raise RuntimeError(f"input must have {expected_dim} dimensions, got {input.dim()}")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {input.shape[-1]}"
            )

    def _check_hidden(self, input: Tensor, hidden: Tensor, width: int, batch: int, label: str):
        expected = (self.num_layers * (2 if self.bidirectional else 1), batch, width)
        if tuple(hidden.shape) != expected:
            raise RuntimeError(f"Expected {label} size {expected}, got {list(hidden.shape)}")
        _check_hidden_dtype(input, hidden)

    def _unpack_hx(self, hx, is_batched: bool):
        """(h0, c0) from the user's hx, unsqueezed to 3-D for an unbatched input."""
        if hx is None:
            return None, None
        want = 3 if is_batched else 2
        kind = "batched 3-D" if is_batched else "unbatched 2-D"
        if self.mode == "LSTM":
            if not (isinstance(hx, tuple | list) and len(hx) == 2):
                raise TypeError("LSTM expects hx to be a tuple (h_0, c_0)")
            h0, c0 = hx
            if h0.dim() != want or c0.dim() != want:
                raise RuntimeError(
                    f"For {kind} input, hx and cx should also be {want}-D but got "
                    f"({h0.dim()}-D, {c0.dim()}-D) tensors"
                )
        else:
            h0, c0 = hx, None
            if h0.dim() != want:
                raise RuntimeError(
                    f"For {kind} input, hx should also be {want}-D but got {h0.dim()}-D tensor"
                )
        if not is_batched:
            h0 = h0.unsqueeze(1)
            c0 = None if c0 is None else c0.unsqueeze(1)
        return h0, c0

    def forward(self, input, hx=None):
        r"""Run the network over ``input`` (a (T, B, input_size) tensor, (B, T, ...) with
        ``batch_first``, an unbatched (T, input_size) tensor, or a ``PackedSequence``).

        Returns ``(output, h_n)``, or ``(output, (h_n, c_n))`` for an LSTM; ``hx`` is the
        initial state in the same form (zeros when omitted).
        """
        packed = isinstance(input, PackedSequence)
        if packed:
            data, batch_sizes_tensor, sorted_indices, unsorted_indices = input
            self._check_input(data, 2)
            batch_sizes = tuple(_host_ints(batch_sizes_tensor).tolist())
            h0, c0 = self._unpack_hx(hx, True)
            if sorted_indices is not None:
                h0, c0 = (
                    None if s is None else index_select(s, 1, sorted_indices) for s in (h0, c0)
                )
            is_batched = True
        else:
            if not isinstance(input, Tensor):
                raise TypeError(
                    f"{self._name()} expects a Tensor or a PackedSequence, got "
                    f"{type(input).__name__}"
                )
            if input.dim() not in (2, 3):
                raise ValueError(
                    f"{self._name()}: Expected input to be 2D or 3D, got {input.dim()}D "
                    "tensor instead"
                )
            is_batched = input.dim() == 3
            batch_dim = 0 if self.batch_first else 1
            if not is_batched:
                input = input.unsqueeze(batch_dim)
            h0, c0 = self._unpack_hx(hx, is_batched)
            self._check_input(input, 3)
            x = input.transpose(0, 1) if self.batch_first else input
            steps, batch = x.shape[0], x.shape[1]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            data = x.reshape(steps * batch, self.input_size)
            batch_sizes = (batch,) * steps
        check_same_device(self._name(), data, h0, c0, self.weight_ih_l0)
        batch = batch_sizes[0]
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        if self.mode == "LSTM":
            if h0 is not None:
                self._check_hidden(data, h0, real_hidden, batch, "hidden[0]")
                self._check_hidden(data, c0, self.hidden_size, batch, "hidden[1]")
        elif h0 is not None:
            self._check_hidden(data, h0, self.hidden_size, batch, "hidden")
        out, h_n, c_n = self._layers(data, batch_sizes, h0, c0)
        if packed:
            output = PackedSequence(out, batch_sizes_tensor, sorted_indices, unsorted_indices)
            if unsorted_indices is not None:
                h_n = index_select(h_n, 1, unsorted_indices)
                c_n = None if c_n is None else index_select(c_n, 1, unsorted_indices)
        else:
            output = out.reshape(steps, batch, out.shape[-1])
            if self.batch_first:
                output = output.transpose(0, 1)
            if not is_batched:
                output = output.squeeze(batch_dim)
                h_n = h_n.squeeze(1)
                c_n = None if c_n is None else c_n.squeeze(1)
        return output, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def _layers(self, data: Tensor, batch_sizes: tuple, h0, c0):
        directions = 2 if self.bidirectional else 1
        layer_input = data
        h_last, c_last = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                out, h, c = _run_layer(
                    self.mode,
                    layer_input,
                    None if h0 is None else h0[k],
                    None if c0 is None else c0[k],
                    self._layer_weights(layer, direction),
                    batch_sizes,
                    direction == 1,
                )
                outs.append(out)
                h_last.append(h)
                c_last.append(c)
            layer_input = outs[0] if directions == 1 else cat(outs, 1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = _dropout(layer_input, self.dropout, True)
        c_n = stack(c_last, 0) if self.mode == "LSTM" else None
        return layer_input, stack(h_last, 0), c_n


class RNN(RNNBase):
    r"""Multi-layer Elman RNN: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``
    (or ReLU with ``nonlinearity="relu"``).

    Args:
        input_size, hidden_size: features of x and of h.
        num_layers: stacked layers (default 1).
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: use ``b_ih`` and ``b_hh`` (default True).
        batch_first: input and output are (B, T, *) instead of (T, B, *).
        dropout: dropout on each layer's output except the last (training only).
        bidirectional: also run each layer backwards in time and concatenate.

    Example::

        >>> rnn = nn.RNN(10, 20, 2)
        >>> output, h_n = rnn(ember.randn(5, 3, 10), ember.randn(2, 3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        **kwargs,
    ):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"RNN.__init__() got unexpected keyword arguments {sorted(kwargs)}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    r"""Multi-layer long short-term memory network, PyTorch's gates (i, f, g, o):
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``; with ``proj_size`` > 0,
    ``h_t`` is projected by ``weight_hr`` to ``proj_size`` features.

    Args are those of :class:`RNN` (no ``nonlinearity``) plus ``proj_size``.

    Example::

        >>> lstm = nn.LSTM(10, 20, 2, batch_first=True)
        >>> output, (h_n, c_n) = lstm(ember.randn(3, 5, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device=device,
            dtype=dtype,
        )


class GRU(RNNBase):
    r"""Multi-layer gated recurrent unit network, PyTorch's gates (r, z, n):
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    Args are those of :class:`RNN` (no ``nonlinearity``).

    Example::

        >>> gru = nn.GRU(10, 20, bidirectional=True)
        >>> output, h_n = gru(ember.randn(5, 3, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        **kwargs,
    ):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"GRU.__init__() got unexpected keyword arguments {sorted(kwargs)}")
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
