"""Recurrent layers as fused ops: one Function runs one layer in one direction over a
whole sequence, with a hand-written backward through time.

The sequence arrives packed, as in ``PackedSequence``: ``x`` is (N, input_size) and
``batch_sizes[t]`` rows of it belong to time step t (a padded batch is the case where
every step has the full batch). Rows within a step are ordered by batch index, so the
first ``batch_sizes[t]`` rows of a (batch, features) state array are the sequences still
running at step t; sequences that have ended (or, in reverse, not yet begun) keep their
state untouched, which makes the final state array the per-sequence last state.

Forward computes ``x @ W_ih^T`` for all steps in one GEMM, then per step one GEMM with
``W_hh`` and a few in-place elementwise passes over all gates together. Backward walks
the steps in reverse with one GEMM each and leaves the weight and input gradients to
three large GEMMs over all steps at the end. Double backward is not implemented.
"""

from __future__ import annotations

from ..autograd import Function
from ._util import xp_of
from .declare import declared


def _steps(batch_sizes, reverse: bool):
    """(start, stop) rows of each time step, in the order the layer visits them."""
    bounds = []
    start = 0
    for size in batch_sizes:
        bounds.append((start, start + size))
        start += size
    return bounds[::-1] if reverse else bounds


def _initial_state(xp, state, batch: int, width: int, dtype):
    """A fresh (batch, width) state array the forward pass may overwrite."""
    if state is None:
        return xp.zeros((batch, width), dtype)
    return state.astype(dtype, copy=True)


def _sigmoid_tanh_affine(xp, hidden: int, sigmoid_chunks, dtype):
    """Per-column scale and shift with which one ``tanh`` gives sigmoid on some gate
    chunks and tanh on the others: sigmoid(v) = 0.5 * tanh(0.5 * v) + 0.5."""
    chunks = len(sigmoid_chunks)
    scale = xp.ones(chunks * hidden, dtype)
    shift = xp.zeros(chunks * hidden, dtype)
    for k, is_sigmoid in enumerate(sigmoid_chunks):
        if is_sigmoid:
            scale[k * hidden : (k + 1) * hidden] = 0.5
            shift[k * hidden : (k + 1) * hidden] = 0.5
    return scale, shift


def _activate(xp, gates, scale, shift):
    """In place: sigmoid or tanh per gate chunk (see ``_sigmoid_tanh_affine``)."""
    gates *= scale
    xp.tanh(gates, out=gates)
    gates *= scale
    gates += shift


def _input_projection(xp, x, w_ih, bias):
    gates = xp.matmul(x, w_ih.T)
    if bias is not None:
        gates += bias
    return gates


def _weight_grads(xp, needs, d_gates, x, h_prev, w_ih):
    """Gradients of x, W_ih, W_hh and of both biases (each the sum of the pre-activation
    gate gradients) from those gradients at every step; ``needs`` flags the five."""
    need_x, need_w_ih, need_w_hh, need_b_ih, need_b_hh = needs
    gx = xp.matmul(d_gates, w_ih) if need_x else None
    gw_ih = xp.matmul(d_gates.T, x) if need_w_ih else None
    gw_hh = xp.matmul(d_gates.T, h_prev) if need_w_hh else None
    total = d_gates.sum(axis=0) if need_b_ih or need_b_hh else None
    gb_ih = total if need_b_ih else None
    gb_hh = (total.copy() if need_b_ih else total) if need_b_hh else None
    return gx, gw_ih, gw_hh, gb_ih, gb_hh


class LSTMSequence(Function):
    """One LSTM layer-direction: (x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr) ->
    (output, h_n, c_n). ``W_hr`` (proj_size, hidden) projects h when not None."""

    # PyTorch's autocast runs the LSTM in the low-precision dtype on the CPU (oneDNN) and
    # on CUDA (cuDNN); the GRU and Elman RNN on CUDA only
    autocast = "lower"

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, *, batch_sizes, reverse=False):
        xp = xp_of(x)
        dt = x.dtype
        hidden, out_size = w_ih.shape[0] // 4, w_hh.shape[1]
        n, batch = x.shape[0], batch_sizes[0]
        bias = None if b_ih is None else b_ih + b_hh
        gates = _input_projection(xp, x, w_ih, bias)  # becomes the activated gates
        scale, shift = _sigmoid_tanh_affine(xp, hidden, (True, True, False, True), dt)
        h = _initial_state(xp, h0, batch, out_size, dt)
        c = _initial_state(xp, c0, batch, hidden, dt)
        out = xp.empty((n, out_size), dt)
        h_prev = xp.empty((n, out_size), dt)
        c_prev = xp.empty((n, hidden), dt)
        tanh_c = xp.empty((n, hidden), dt)
        unprojected = xp.empty((n, hidden), dt) if w_hr is not None else None
        steps = _steps(batch_sizes, reverse)
        for start, stop in steps:
            size = stop - start
            hp, cp = h[:size], c[:size]
            h_prev[start:stop] = hp
            c_prev[start:stop] = cp
            g = gates[start:stop]
            g += xp.matmul(w_hh, hp.T).T  # weights on the left: faster for a small batch
            _activate(xp, g, scale, shift)
            i, f, cand, o = (g[:, k * hidden : (k + 1) * hidden] for k in range(4))
            cp *= f  # c_t = f * c_{t-1} + i * g, written over the state
            cp += i * cand
            tc = xp.tanh(cp, out=tanh_c[start:stop])
            if w_hr is None:
                xp.multiply(o, tc, out=out[start:stop])
            else:
                xp.multiply(o, tc, out=unprojected[start:stop])
                xp.matmul(unprojected[start:stop], w_hr.T, out=out[start:stop])
            hp[...] = out[start:stop]
        ctx.save_for_backward(
            x, w_ih, w_hh, w_hr, gates, h_prev, c_prev, tanh_c, unprojected, steps
        )
        return out, h, c

    @staticmethod
    def backward(ctx, g_out, g_h, g_c):
        x, w_ih, w_hh, w_hr, act, h_prev, c_prev, tanh_c, unprojected, steps = ctx.saved_tensors
        xp = xp_of(x)
        hidden = w_ih.shape[0] // 4
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        dh_carry = g_h.astype(x.dtype, copy=True)
        dc_carry = g_c.astype(x.dtype, copy=True)
        d_gates = xp.empty(act.shape, x.dtype)
        d_projected = xp.empty(g_out.shape, x.dtype) if w_hr is not None else None
        for start, stop in reversed(steps):
            size = stop - start
            a = act[start:stop]
            i, f, cand, o = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
            tc = tanh_c[start:stop]
            if w_hr is None:
                dh = g_out[start:stop] + dh_carry[:size]
            else:
                dp = d_projected[start:stop]
                xp.add(g_out[start:stop], dh_carry[:size], out=dp)
                dh = xp.matmul(dp, w_hr)
            dc = xp.multiply(tc, tc)  # dc = dc_next + dh * o * (1 - tanh(c)^2)
            xp.subtract(1, dc, out=dc)
            dc *= o
            dc *= dh
            dc += dc_carry[:size]
            dg = d_gates[start:stop]
            di, df, dcand, do = (dg[:, k * hidden : (k + 1) * hidden] for k in range(4))
            xp.multiply(dc, cand, out=di)
            xp.multiply(dc, c_prev[start:stop], out=df)
            xp.multiply(dc, i, out=dcand)
            xp.multiply(dh, tc, out=do)
            slope = 1 - a  # sigmoid' = a (1 - a); tanh' = 1 - a^2 on the candidate chunk
            slope *= a
            cand_slope = slope[:, 2 * hidden : 3 * hidden]
            xp.multiply(cand, cand, out=cand_slope)
            xp.subtract(1, cand_slope, out=cand_slope)
            dg *= slope
            xp.multiply(dc, f, out=dc_carry[:size])
            dh_carry[:size] = xp.matmul(w_hh_t, dg.T).T
        need = ctx.needs_input_grad
        gx, gw_ih, gw_hh, gb_ih, gb_hh = _weight_grads(
            xp, (need[0], *need[3:7]), d_gates, x, h_prev, w_ih
        )
        gw_hr = None
        if w_hr is not None and need[7]:
            gw_hr = xp.matmul(d_projected.T, unprojected)
        return (
            gx,
            dh_carry if need[1] else None,
            dc_carry if need[2] else None,
            gw_ih,
            gw_hh,
            gb_ih,
            gb_hh,
            gw_hr,
        )


class GRUSequence(Function):
    """One GRU layer-direction: (x, h0, W_ih, W_hh, b_ih, b_hh) -> (output, h_n), with
    PyTorch's gates: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

    autocast = "cuda:lower"

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, *, batch_sizes, reverse=False):
        xp = xp_of(x)
        dt = x.dtype
        hidden = w_hh.shape[1]
        n, batch = x.shape[0], batch_sizes[0]
        gates = _input_projection(xp, x, w_ih, b_ih)  # becomes r, z, n
        scale, shift = _sigmoid_tanh_affine(xp, hidden, (True, True), dt)
        h = _initial_state(xp, h0, batch, hidden, dt)
        out = xp.empty((n, hidden), dt)
        h_prev = xp.empty((n, hidden), dt)
        hidden_n = xp.empty((n, hidden), dt)  # W_hn h + b_hn, which backward needs
        steps = _steps(batch_sizes, reverse)
        for start, stop in steps:
            size = stop - start
            hp = h[:size]
            h_prev[start:stop] = hp
            gh = xp.matmul(w_hh, hp.T).T
            if b_hh is not None:
                gh += b_hh
            g = gates[start:stop]
            rz = g[:, : 2 * hidden]
            rz += gh[:, : 2 * hidden]
            _activate(xp, rz, scale, shift)
            r, z, cand = (g[:, k * hidden : (k + 1) * hidden] for k in range(3))
            hidden_n[start:stop] = gh[:, 2 * hidden :]
            cand += r * hidden_n[start:stop]
            xp.tanh(cand, out=cand)
            h_new = out[start:stop]  # h' = n + z * (h - n)
            xp.subtract(hp, cand, out=h_new)
            h_new *= z
            h_new += cand
            hp[...] = h_new
        ctx.save_for_backward(x, w_ih, w_hh, gates, h_prev, hidden_n, steps)
        return out, h

    @staticmethod
    def backward(ctx, g_out, g_h):
        x, w_ih, w_hh, act, h_prev, hidden_n, steps = ctx.saved_tensors
        xp = xp_of(x)
        hidden = w_hh.shape[1]
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        dh_carry = g_h.astype(x.dtype, copy=True)
        d_input_gates = xp.empty(act.shape, x.dtype)
        d_hidden_gates = xp.empty(act.shape, x.dtype)
        for start, stop in reversed(steps):
            size = stop - start
            a = act[start:stop]
            r, z, cand = (a[:, k * hidden : (k + 1) * hidden] for k in range(3))
            hp = h_prev[start:stop]
            dh = g_out[start:stop] + dh_carry[:size]
            dxg, dhg = d_input_gates[start:stop], d_hidden_gates[start:stop]
            dr, dz, dn = (dxg[:, k * hidden : (k + 1) * hidden] for k in range(3))
            one_minus_z = 1 - z
            xp.multiply(cand, cand, out=dn)  # dn_pre = dh (1 - z) (1 - n^2)
            xp.subtract(1, dn, out=dn)
            dn *= dh
            dn *= one_minus_z
            xp.subtract(hp, cand, out=dz)  # dz_pre = dh (h - n) z (1 - z)
            dz *= dh
            dz *= z
            dz *= one_minus_z
            xp.multiply(dn, hidden_n[start:stop], out=dr)  # dr_pre = dn_pre hn r (1 - r)
            dr *= r
            dr *= 1 - r
            dhg[:, : 2 * hidden] = dxg[:, : 2 * hidden]
            xp.multiply(dn, r, out=dhg[:, 2 * hidden :])
            carry = dh_carry[:size]
            xp.multiply(dh, z, out=carry)
            carry += xp.matmul(w_hh_t, dhg.T).T
        need = ctx.needs_input_grad
        gx = xp.matmul(d_input_gates, w_ih) if need[0] else None
        gw_ih = xp.matmul(d_input_gates.T, x) if need[2] else None
        gw_hh = xp.matmul(d_hidden_gates.T, h_prev) if need[3] else None
        gb_ih = d_input_gates.sum(axis=0) if need[4] else None
        gb_hh = d_hidden_gates.sum(axis=0) if need[5] else None
        return gx, dh_carry if need[1] else None, gw_ih, gw_hh, gb_ih, gb_hh


class RNNSequence(Function):
    """One Elman RNN layer-direction: (x, h0, W_ih, W_hh, b_ih, b_hh) -> (output, h_n),
    h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh)."""

    autocast = "cuda:lower"

    @staticmethod
    def forward(
        ctx, x, h0, w_ih, w_hh, b_ih, b_hh, *, batch_sizes, reverse=False, nonlinearity="tanh"
    ):
        xp = xp_of(x)
        dt = x.dtype
        hidden = w_hh.shape[1]
        n, batch = x.shape[0], batch_sizes[0]
        pre = _input_projection(xp, x, w_ih, None if b_ih is None else b_ih + b_hh)
        h = _initial_state(xp, h0, batch, hidden, dt)
        out = xp.empty((n, hidden), dt)
        h_prev = xp.empty((n, hidden), dt)
        steps = _steps(batch_sizes, reverse)
        for start, stop in steps:
            size = stop - start
            hp = h[:size]
            h_prev[start:stop] = hp
            p = pre[start:stop]
            p += xp.matmul(w_hh, hp.T).T
            if nonlinearity == "tanh":
                xp.tanh(p, out=out[start:stop])
            else:
                xp.maximum(p, 0, out=out[start:stop])
            hp[...] = out[start:stop]
        ctx.save_for_backward(x, w_ih, w_hh, out, h_prev, steps, nonlinearity)
        return out, h

    @staticmethod
    def backward(ctx, g_out, g_h):
        x, w_ih, w_hh, out, h_prev, steps, nonlinearity = ctx.saved_tensors
        xp = xp_of(x)
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        dh_carry = g_h.astype(x.dtype, copy=True)
        d_pre = xp.empty(out.shape, x.dtype)
        for start, stop in reversed(steps):
            size = stop - start
            h = out[start:stop]
            dp = d_pre[start:stop]
            xp.add(g_out[start:stop], dh_carry[:size], out=dp)
            if nonlinearity == "tanh":
                dp *= 1 - h * h
            else:
                dp *= h > 0
            dh_carry[:size] = xp.matmul(w_hh_t, dp.T).T
        need = ctx.needs_input_grad
        gx, gw_ih, gw_hh, gb_ih, gb_hh = _weight_grads(
            xp, (need[0], *need[2:6]), d_pre, x, h_prev, w_ih
        )
        return gx, dh_carry if need[1] else None, gw_ih, gw_hh, gb_ih, gb_hh


# -- the layers' functional forms (nn.RNN, nn.LSTM, nn.GRU run one per layer-direction) ------


@declared(LSTMSequence, method=False)
def lstm_layer(input, h0, c0, weights, batch_sizes, reverse=False):
    r"""One LSTM layer-direction over a packed sequence; ``weights`` is ``(W_ih, W_hh,
    b_ih, b_hh, W_hr)`` (biases and ``W_hr`` may be None). Returns (output, h_n, c_n)."""
    return LSTMSequence.apply(input, h0, c0, *weights, batch_sizes=batch_sizes, reverse=reverse)


@declared(GRUSequence, method=False)
def gru_layer(input, h0, weights, batch_sizes, reverse=False):
    r"""One GRU layer-direction over a packed sequence: (output, h_n)."""
    w_ih, w_hh, b_ih, b_hh = weights[:4]
    return GRUSequence.apply(
        input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=batch_sizes, reverse=reverse
    )


@declared(RNNSequence, method=False)
def rnn_layer(input, h0, weights, batch_sizes, reverse=False, nonlinearity="tanh"):
    r"""One Elman RNN layer-direction (``tanh`` or ``relu``) over a packed sequence:
    (output, h_n)."""
    w_ih, w_hh, b_ih, b_hh = weights[:4]
    return RNNSequence.apply(
        input,
        h0,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        batch_sizes=batch_sizes,
        reverse=reverse,
        nonlinearity=nonlinearity,
    )
