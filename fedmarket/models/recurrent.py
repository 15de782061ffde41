"""The recurrent core of every sequence model, in a fast form and a DP form with one layout.

Federated clients train the DP form (Opacus needs ``DPLSTM``/``DPGRU``/``DPRNN``, whose gates are
``RNNLinear`` layers it can take per-sample gradients of), while the server, the centralised
reference and evaluation use the fast form (``torch.nn.LSTM``/``GRU``/``RNN``, cuDNN on a GPU).
Weights cross between the two as plain state dicts, so both forms must produce the same keys in
the same order: Flower ships a state dict as a list of arrays in key order, and a different order
would silently swap same-shaped tensors (``weight_ih_l1`` and ``weight_hh_l1`` are both
``[4H, H]``).

Opacus 1.6 almost gets there with ``RenameParamsMixin`` but not quite, verified against
torch 2.13 (see tests/models/test_models.py):

* its state-dict filter is registered with the private ``_register_state_dict_hook`` and returns
  a new dict, which torch ignores for any module that is not the root (pytorch issue 117437):
  nested in a model, the DP layer's state dict carries every weight twice (``l0.ih.weight`` as
  well as ``weight_ih_l0``), and loading a fast-form state dict reports the cell keys missing;
* the renamed keys come in the order ``weight_ih, bias_ih, weight_hh, bias_hh``, torch uses
  ``weight_ih, weight_hh, bias_ih, bias_hh``;
* ``DPRNNBase`` applies its ``dropout`` to the hidden state of every layer at every time step
  (the recurrent state included), while torch drops only the outputs passed to the next layer.

``_adopt_torch_layout`` fixes the first two with public state-dict hooks on each DP layer. The
third is avoided by building the stack from single-layer RNNs in both forms, with the between-layer
dropout applied here, identically for both: one code path, the same masks for the same RNG state.
The DP layers stay instances of Opacus' own classes because Opacus recognises them by exact type
(``type(module) in [DPRNN, DPLSTM, DPGRU]`` in GradSampleModule); a subclass would be mishandled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from fedmarket.errors import ConfigError

if TYPE_CHECKING:  # Opacus is imported by the DP form only: a model without DP never loads it
    from opacus.layers.dp_rnn import DPRNNBase

RECURRENT_KINDS: tuple[str, ...] = ("gru", "lstm", "rnn")
# False: the fast form; True: the default DP form; "opacus": Opacus' own DP layers everywhere
# (the slower reference the batched LSTM is measured and tested against).
DP_FORMS: tuple[bool | str, ...] = (False, True, "opacus")

_FAST: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def _dp_layer_class(kind: str) -> type[DPRNNBase]:
    from opacus.layers import DPGRU, DPLSTM, DPRNN

    return {"lstm": DPLSTM, "gru": DPGRU, "rnn": DPRNN}[kind]


def _drop_cell_keys(module: DPRNNBase, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """Remove the cell-level aliases (``l0.ih.weight``) so only torch's names remain."""
    for old_name in module.old_to_new:
        state_dict.pop(prefix + old_name, None)


def _alias_cell_keys(
    module: DPRNNBase,
    state_dict: dict,
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list,
    unexpected_keys: list,
    error_msgs: list,
) -> None:
    """Feed torch-named tensors to the cells too, so a torch state dict loads with strict=True.

    torch hands each child the entries of this (already copied) dict under its prefix, so the
    aliases added here reach the ``RNNLinear`` cells; both names point at the same Parameter.
    """
    for old_name, new_name in module.old_to_new.items():
        if prefix + new_name in state_dict and prefix + old_name not in state_dict:
            state_dict[prefix + old_name] = state_dict[prefix + new_name]


def _adopt_torch_layout(dp_layer: DPRNNBase, torch_names: list[str]) -> DPRNNBase:
    """Make ``dp_layer`` save and load exactly the keys, in the order, of its torch twin."""
    from opacus.layers.param_rename import filter_out_old_keys

    opacus_names = sorted(dp_layer.new_to_old)
    if opacus_names != sorted(torch_names):
        raise RuntimeError(
            f"opacus names {opacus_names} differ from torch's {sorted(torch_names)}; "
            "the installed opacus no longer matches the one fedmarket was written for (1.6)"
        )
    for handle_id, hook in list(dp_layer._state_dict_hooks.items()):
        if hook is filter_out_old_keys:  # superseded by _drop_cell_keys, which works when nested
            del dp_layer._state_dict_hooks[handle_id]
    for name in torch_names:  # re-insert in torch order: state_dict() and parameters() follow it
        dp_layer._parameters[name] = dp_layer._parameters.pop(name)
    dp_layer.register_state_dict_post_hook(_drop_cell_keys)
    dp_layer.register_load_state_dict_pre_hook(_alias_cell_keys)
    return dp_layer


def recurrent_layer(kind: str, input_size: int, hidden_size: int, *, dp: bool | str) -> nn.Module:
    """One batch-first recurrent layer; the DP form starts from the fast form's initial weights.

    The fast layer is built from the caller's RNG; the DP layer is built under a forked RNG and
    then loaded with the fast layer's weights, so for one RNG state both forms get identical
    parameters and the RNG ends in the same state whichever form is asked for. ``dp`` True is
    the default DP form: ``BatchedDPLSTM`` for an LSTM (per-sample gradients batched over
    time), Opacus' layers otherwise; ``dp="opacus"`` asks for Opacus' ``DPLSTM`` too.
    """
    if kind not in _FAST:
        raise ConfigError(f"unknown recurrent kind {kind!r}; known: {', '.join(RECURRENT_KINDS)}")
    if dp not in DP_FORMS:
        raise ConfigError(f"dp must be one of {DP_FORMS}, got {dp!r}")
    fast = _FAST[kind](input_size, hidden_size, num_layers=1, batch_first=True)
    if not dp:
        return fast
    if kind == "lstm" and dp is True:
        from fedmarket.models.dp_lstm import BatchedDPLSTM

        return BatchedDPLSTM.from_lstm(fast)
    with torch.random.fork_rng(devices=[]):
        dp_layer = _dp_layer_class(kind)(input_size, hidden_size, num_layers=1, batch_first=True)
    _adopt_torch_layout(dp_layer, list(fast.state_dict()))
    dp_layer.load_state_dict(fast.state_dict(), strict=True)
    return dp_layer


class RecurrentStack(nn.Module):
    """Stacked single-layer RNNs with dropout between layers, as ``nn.LSTM(dropout=p)`` has.

    Input ``[B, T, F]``, output ``[B, T, H]`` (the last layer's hidden state at every step).
    State-dict keys are ``layers.<i>.weight_ih_l0`` etc. in both forms.
    """

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        *,
        dp: bool | str,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.dp = dp
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(
            recurrent_layer(kind, size, hidden_size, dp=dp) for size in sizes
        )
        self.between = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.between(x)
            elif _is_batched_dp_lstm(layer) and self.training and not x.requires_grad:
                # an input that needs a gradient makes Opacus' layer hook fire after the
                # layer's backward, so its grad sampler finds D ready instead of recomputing
                x = x.detach().requires_grad_(torch.is_grad_enabled())
            x, _ = layer(x)
        return x


def _is_batched_dp_lstm(layer: nn.Module) -> bool:
    # by name, so that the fast form's forward does not import the DP layer (and Opacus)
    return type(layer).__name__ == "BatchedDPLSTM"
