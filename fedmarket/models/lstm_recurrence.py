"""The LSTM recurrence with a hand-written backward through time, for ``BatchedDPLSTM``.

Autograd of a Python loop over time steps records ~15 small operations per step and replays
each in the backward; at batch 256 and 50 units those are microsecond-sized tensors, so the
per-operation overhead, not arithmetic, was most of the DP model's forward and backward (two
to three times torch's fused ``nn.LSTM``). Here the forward keeps the gate activations and
cell states of all steps; the backward first computes every factor that does not depend on
the incoming gradient in a few operations over all steps at once, leaving five operations per
step (one of them the ``[B, 4H] x [4H, H]`` product). Same arithmetic as autograd's, so the
same numbers up to rounding; ``tests/models/test_lstm_recurrence.py`` checks it against
autograd with ``gradcheck`` in float64.

The gradient it returns for ``projected`` is ``D``, every step's gate pre-activation
gradient, which is what the DP grad sampler needs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class LSTMRecurrence(torch.autograd.Function):
    """``(projected [B, T, 4H], w_hh [4H, H], bias [4H]) -> (out [B, T, H], c_last [B, H])``.

    ``projected`` is the input projection ``x W_ih^T`` (torch's gate order i, f, g, o),
    ``bias`` both biases summed; the state starts at zero. Adding the bias at each step is
    cheaper than broadcasting it into the ``[B T, 4H]`` projection. ``out`` is a batch-first
    view of time-major memory, as ``nn.LSTM``'s batch-first output is (dropout draws its mask
    in memory order).
    """

    @staticmethod
    def forward(ctx: Any, projected: Tensor, w_hh: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        batch, steps, four_h = projected.shape
        hidden = four_h // 4
        proj = projected.transpose(0, 1)  # [T, B, 4H] view
        act = projected.new_empty(steps, batch, four_h)  # sigmoid(i, f, o), tanh(g)
        cells = projected.new_zeros(steps + 1, batch, hidden)  # c_{-1} = 0, c_0 .. c_{T-1}
        out = projected.new_empty(steps, batch, hidden)
        h = projected.new_zeros(batch, hidden)
        w_t = w_hh.t()
        g_part = slice(2 * hidden, 3 * hidden)
        for t in range(steps):
            gates = torch.addmm(proj[t], h, w_t)
            gates += bias
            gates[:, g_part] *= 2  # tanh(z) = 2 sigmoid(2z) - 1: one sigmoid for all gates
            a = torch.sigmoid(gates, out=act[t])
            i, f, g, o = a.chunk(4, dim=1)
            c = torch.addcmul(f * cells[t], i, g * 2 - 1, out=cells[t + 1])
            h = torch.addcmul(-o, o, torch.sigmoid(c * 2), value=2, out=out[t])  # o tanh(c)
        act[:, :, g_part] *= 2
        act[:, :, g_part] -= 1
        ctx.save_for_backward(act, cells, out, w_hh)
        return out.transpose(0, 1), cells[steps].clone()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor | None, grad_c: Tensor | None) -> tuple[Tensor, ...]:
        act, cells, out, w_hh = ctx.saved_tensors
        steps, batch, four_h = act.shape
        hidden = four_h // 4
        i, f, g, o = act.chunk(4, dim=2)
        tanh_c = torch.sigmoid(cells[1:] * 2) * 2 - 1  # torch's CPU tanh is ~10x slower
        # what multiplies the incoming gradients at each step, for all steps at once:
        # D = [dc*g*i', dc*c_prev*f', dc*i*g', dh*tanh(c)*o'] with x' the activation's slope
        by_dc = torch.cat([g * i * (1 - i), cells[:-1] * f * (1 - f), i * (1 - g * g)], dim=2)
        by_dc = by_dc.view(steps, batch, 3, hidden)
        by_dh = tanh_c * o * (1 - o)
        dh_to_dc = o * (1 - tanh_c * tanh_c)
        g_out = (
            grad_out.transpose(0, 1) if grad_out is not None else out.new_zeros(out.shape)
        )  # [T, B, H] view
        d = act.new_empty(batch, steps, four_h)  # batch first: the layout of ``projected``
        dc = grad_c.clone() if grad_c is not None else act.new_zeros(batch, hidden)
        dh = g_out[steps - 1].clone()
        for t in range(steps - 1, -1, -1):
            dc = torch.addcmul(dc, dh, dh_to_dc[t])
            d_t = d[:, t]
            torch.mul(dc.unsqueeze(1), by_dc[t], out=d_t[:, : 3 * hidden].view(batch, 3, hidden))
            torch.mul(dh, by_dh[t], out=d_t[:, 3 * hidden :])
            if t > 0:
                dc = dc * f[t]
                dh = torch.addmm(g_out[t - 1], d_t, w_hh)
        grad_w = None
        if ctx.needs_input_grad[1]:
            # sum_t D_t^T h_{t-1}; h_{-1} = 0 drops step 0
            d_prev = d[:, 1:].transpose(0, 1).flatten(0, 1)  # [(T-1) B, 4H], time-major
            grad_w = d_prev.t() @ out[:-1].flatten(0, 1)
        grad_b = d.sum(dim=(0, 1)) if ctx.needs_input_grad[2] else None
        return d, grad_w, grad_b


def lstm_recurrence(projected: Tensor, w_hh: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """Outputs ``[B, T, H]`` and the last cell state of a zero-state LSTM over ``projected``."""
    return LSTMRecurrence.apply(projected, w_hh, bias)
