"""A DP-SGD LSTM layer whose per-sample gradients are one batched product over time.

Opacus' ``DPLSTM`` computes gates with ``RNNLinear`` layers called once per time step, and
its hooks materialise a ``[B, 4H, in]`` per-sample gradient at every step and add them up:
T outer products per weight, which is where most of DP-SGD's time goes (about three quarters
on a CPU for the default 28 steps). This layer gets the same numbers from two ``bmm``:

    grad_n(W_ih) = sum_t d_nt x_nt^T = D_n^T X_n        grad_n(W_hh) = D_n^T H_n(prev)

with ``D_n`` the ``[T, 4H]`` gradients of customer n's loss with respect to the gate
pre-activations. ``D`` is the gradient of the input projection (computed for all steps in one
product; the recurrence's own backward, ``fedmarket/models/lstm_recurrence.py``, returns it),
so a tensor hook on it collects ``D`` during the ordinary backward pass; Opacus then
hands the grad sampler the layer's input and output gradient, and the sampler only has to scale
``D`` the way Opacus scales the output gradient (by the batch size for a mean loss). When the
hook cannot have fired yet (Opacus calls the sampler as soon as the output gradient is known
if the layer's input needs no gradient; ``RecurrentStack`` avoids that), the sampler recomputes
the deterministic layer forward and backpropagates the output gradient through it. Either way
the per-sample gradients are built from customer n's own rows only, and
``tests/models/test_models.py`` checks them against one-customer-at-a-time gradients of
``torch.nn.LSTM``, for both paths.

The parameters carry ``torch.nn.LSTM``'s names and order (``weight_ih_l0, weight_hh_l0,
bias_ih_l0, bias_hh_l0``), so the state dict moves between this layer and the fast form
without any conversion. One layer, batch first, zero initial state: what ``RecurrentStack``
builds its stacks from.

With ``factored_grad_sample`` set (``fedmarket.privacy.make_private`` sets it, and its optimiser
reads the form) the two weights' per-sample gradients are not built at all: the sampler leaves
the factors ``(D_n, X_n)`` and ``(D_n, H_n(prev))`` in ``param.grad_factors``, from which the
optimiser takes per-sample norms through ``T x T`` Gram matrices and the clipped sum as one
product over all customers and steps (ghost clipping without a second backward). The
``[B, 4H, in]`` tensors it skips, with Opacus' buffers, norms and weighted sums over them, were
12% (cnn-lstm) to 39% (lstm) of a DP step's CPU time (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from opacus.grad_sample import register_grad_sampler
from torch import Tensor, nn

from fedmarket.errors import PrivacyError
from fedmarket.models.lstm_recurrence import lstm_recurrence


class BatchedDPLSTM(nn.Module):
    """One batch-first LSTM layer (torch's gate order i, f, g, o) for DP-SGD."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size))
        self._stash: _Stash | None = None
        # True: per-sample weight gradients are left as factors (see the module docstring);
        # only an optimiser that reads ``grad_factors`` may train the layer so
        self.factored_grad_sample = False

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
        weights = (self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)
        if self.factored_grad_sample and self.training and x.requires_grad:
            # the factored optimiser builds the weights' gradients from D alone: the backward
            # need not sum them too (the gradient still reaches x, so D is still collected)
            weights = tuple(w.detach() for w in weights)
        out, projected, (h, c) = _unroll(x, *weights)
        self._stash = None
        if self.training and projected.requires_grad:
            # the backward of this very pass hands over D (the gradient at ``projected``)
            # and the raw output gradient; the grad sampler uses them if they are complete
            stash = _Stash(x.detach(), out.detach())
            projected.register_hook(stash.take_d)
            out.register_hook(stash.take_g)
            self._stash = stash
        return out, (h.unsqueeze(0), c.unsqueeze(0))


@dataclass
class _Stash:
    """What one training forward leaves for its grad sampler."""

    x: Tensor
    out: Tensor
    d: Tensor | None = None
    g: Tensor | None = None

    def take_d(self, grad: Tensor) -> None:
        self.d = grad

    def take_g(self, grad: Tensor) -> None:
        self.g = grad

    def matches(self, x: Tensor) -> bool:
        return (
            self.d is not None
            and self.g is not None
            and self.x.shape == x.shape
            and self.x.data_ptr() == x.data_ptr()
        )


def _unroll(
    x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
    """Outputs ``[B, T, H]``, the input projection ``[B, T, 4H]`` (whose gradient is every
    step's gate gradient: the gates are the projection plus the recurrent term) and the last
    state."""
    batch, steps, features = x.shape
    # every step in one product; through a 2-d view, as torch.matmul would broadcast the weight
    # into a batched product (and its backward into per-sample weight gradients) for an input
    # that is not contiguous, such as the convolution front's transposed output
    projected = (x.reshape(batch * steps, features) @ w_ih.t()).view(batch, steps, -1)
    # out: a batch-first view of time-major memory, as nn.LSTM's output is
    out, c = lstm_recurrence(projected, w_hh, b_ih + b_hh)
    return out, projected, (out[:, -1], c)


def _output_scale(backprops: Tensor, raw: Tensor, batch: int) -> float:
    """Opacus hands the sampler the output gradient times the batch size (``max_batch_len``)
    for a mean loss and times 1 for a sum; the stashed gradients are raw. Which of the two,
    read off the data (in float64) and snapped to it, so the factor is exact and the same
    for every customer."""
    raw, backprops = raw.reshape(-1).double(), backprops.reshape(-1).double()
    den = float(torch.dot(raw, raw))
    if den == 0.0:  # no gradient reached the layer: D is zero whatever the factor
        return 1.0
    ratio = float(torch.dot(backprops, raw)) / den
    return float(batch) if abs(ratio - batch) < abs(ratio - 1.0) else 1.0


@register_grad_sampler(BatchedDPLSTM)
def batched_lstm_grad_sample(
    layer: BatchedDPLSTM, activations: list[Tensor], backprops: Tensor
) -> dict[nn.Parameter, Tensor]:
    """Per-sample gradients of every parameter from the layer's input and output gradient.

    ``D`` comes from this pass's own backward when the stash is complete (the layer's input
    required a gradient, so Opacus' hook fired after the layer's backward), else from
    recomputing the layer forward and backpropagating ``backprops`` through it.
    """
    x = activations[0].detach()
    stash, layer._stash = getattr(layer, "_stash", None), None
    scale = 1.0
    if stash is not None and stash.matches(x):
        # the scale goes onto the narrower inputs and the bias sums, not onto the [B, T, 4H] D
        d, out = stash.d, stash.out
        scale = _output_scale(backprops, stash.g, getattr(layer, "max_batch_len", len(x)))
    else:
        with torch.enable_grad():
            weights = [
                p.detach().requires_grad_(True)
                for p in (
                    layer.weight_ih_l0,
                    layer.weight_hh_l0,
                    layer.bias_ih_l0,
                    layer.bias_hh_l0,
                )
            ]
            out, projected, _ = _unroll(x, *weights)
            (d,) = torch.autograd.grad(out, projected, grad_outputs=backprops)
        out = out.detach()
    h_prev = torch.cat([out.new_zeros(len(out), 1, out.shape[2]), out[:, :-1]], dim=1)
    bias = d.sum(dim=1)
    if scale != 1.0:
        x, h_prev, bias = x * scale, h_prev.mul_(scale), bias.mul_(scale)
    grads = {}
    weights = ((layer.weight_ih_l0, x), (layer.weight_hh_l0, h_prev))
    if getattr(layer, "factored_grad_sample", False):
        for weight, inputs in weights:
            if weight.requires_grad:
                _leave_factors(weight, d, inputs)
    else:
        d_t = d.transpose(1, 2)  # [B, 4H, T]
        for weight, inputs in weights:
            if weight.requires_grad:
                grads[weight] = torch.bmm(d_t, inputs)
    if layer.bias_ih_l0.requires_grad:
        grads[layer.bias_ih_l0] = bias
    if layer.bias_hh_l0.requires_grad:
        grads[layer.bias_hh_l0] = bias.clone()
    return grads


def _leave_factors(weight: nn.Parameter, d: Tensor, inputs: Tensor) -> None:
    """Record grad_n = D_n^T A_n as its factors instead of a ``[B, out, in]`` tensor.

    Opacus still expects a per-sample tensor to move into ``grad_sample`` when the backward
    pass ends; it gets a zero-strided placeholder of the right shape, no memory, which the
    factored optimiser recognises by ``grad_factors`` and never reads.
    """
    if hasattr(weight, "_current_grad_sample"):
        raise PrivacyError(
            "a BatchedDPLSTM under DP-SGD (factored per-sample gradients) ran twice in one "
            "forward pass; use one layer instance per position in the network"
        )
    factors = getattr(weight, "grad_factors", None) or []
    weight.grad_factors = [*factors, (d, inputs)]
    weight._current_grad_sample = d.new_zeros(()).expand(len(d), *weight.shape)
