"""A DP-SGD LSTM layer whose per-sample gradients are one batched product over time.

Opacus' ``DPLSTM`` computes gates with ``RNNLinear`` layers called once per time step, and
its hooks materialise a ``[B, 4H, in]`` per-sample gradient at every step and add them up:
T outer products per weight, which is where most of DP-SGD's time goes (about three quarters
on a CPU for the default 28 steps). This layer gets the same numbers from two ``bmm``:

    grad_n(W_ih) = sum_t d_nt x_nt^T = D_n^T X_n        grad_n(W_hh) = D_n^T H_n(prev)

with ``D_n`` the ``[T, 4H]`` gradients of customer n's loss with respect to the gate
pre-activations. Opacus only hands a grad sampler the layer's input and the gradient of its
output, so the sampler recomputes the (deterministic) layer forward from the input and
backpropagates the output gradient through it to get ``D``: one extra forward and backward
of the layer, far cheaper than T per-sample outer products. No other source of gradients is
used, so the result is exactly Opacus' contract (``tests/models/test_dp_lstm.py`` checks it
against one-customer-at-a-time gradients of ``torch.nn.LSTM``).

The parameters carry ``torch.nn.LSTM``'s names and order (``weight_ih_l0, weight_hh_l0,
bias_ih_l0, bias_hh_l0``), so the state dict moves between this layer and the fast form
without any conversion. One layer, batch first, zero initial state: what ``RecurrentStack``
builds its stacks from.
"""

from __future__ import annotations

import torch
from opacus.grad_sample import register_grad_sampler
from torch import Tensor, nn


class BatchedDPLSTM(nn.Module):
    """One batch-first LSTM layer (torch's gate order i, f, g, o) for DP-SGD."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size))

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM) -> BatchedDPLSTM:
        """The same weights as a one-layer, batch-first ``nn.LSTM``."""
        if lstm.num_layers != 1 or not lstm.batch_first or lstm.bidirectional or lstm.proj_size:
            raise ValueError("BatchedDPLSTM mirrors a one-layer, batch-first, plain nn.LSTM")
        layer = cls(lstm.input_size, lstm.hidden_size)
        layer.load_state_dict(lstm.state_dict(), strict=True)
        return layer

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first=True"

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        out, _, _, (h, c) = _unroll(
            x, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0
        )
        return out, (h.unsqueeze(0), c.unsqueeze(0))


def _unroll(
    x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, keep: bool = False
) -> tuple[Tensor, list[Tensor], list[Tensor], tuple[Tensor, Tensor]]:
    """Outputs ``[B, T, H]``; with ``keep`` also each step's gate pre-activations and the
    hidden state that entered it (what the per-sample gradients are made of)."""
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    projected = torch.nn.functional.linear(x, w_ih, b_ih + b_hh)  # every step in one product
    # unbind, not projected[:, t]: the backward of T selects would zero-fill T full-size
    # gradients (O(T^2) memory traffic); unbind's backward is one stack
    per_step = projected.unbind(dim=1)
    h = x.new_zeros(batch, hidden)
    c = x.new_zeros(batch, hidden)
    outputs, gates_kept, h_kept = [], [], []
    for t in range(steps):
        gates = torch.addmm(per_step[t], h, w_hh.t())
        if keep:
            gates_kept.append(gates)
            h_kept.append(h)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    # time-major memory, as nn.LSTM's batch-first output has: dropout draws its mask in memory
    # order, so the same RNG state drops the same units in both forms
    return torch.stack(outputs, dim=0).transpose(0, 1), gates_kept, h_kept, (h, c)


@register_grad_sampler(BatchedDPLSTM)
def batched_lstm_grad_sample(
    layer: BatchedDPLSTM, activations: list[Tensor], backprops: Tensor
) -> dict[nn.Parameter, Tensor]:
    """Per-sample gradients of every parameter from the layer's input and output gradient."""
    x = activations[0]
    with torch.enable_grad():
        weights = [
            p.detach().requires_grad_(True)
            for p in (layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)
        ]
        out, gates, h_prev, _ = _unroll(x.detach(), *weights, keep=True)
        grads = torch.autograd.grad(out, gates, grad_outputs=backprops, allow_unused=True)
    d = torch.stack(
        [g if g is not None else torch.zeros_like(z) for g, z in zip(grads, gates, strict=True)],
        dim=1,
    )  # [B, T, 4H]
    h = torch.stack(h_prev, dim=1).detach()  # [B, T, H]
    d_t = d.transpose(1, 2)  # [B, 4H, T]
    bias = d.sum(dim=1)
    out = {}
    if layer.weight_ih_l0.requires_grad:
        out[layer.weight_ih_l0] = torch.bmm(d_t, x.detach())
    if layer.weight_hh_l0.requires_grad:
        out[layer.weight_hh_l0] = torch.bmm(d_t, h)
    if layer.bias_ih_l0.requires_grad:
        out[layer.bias_ih_l0] = bias
    if layer.bias_hh_l0.requires_grad:
        out[layer.bias_hh_l0] = bias.clone()
    return out
