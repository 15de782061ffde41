"""Sequence models: shapes, fast <-> DP weight exchange, Opacus compatibility, per-sample grads."""

from __future__ import annotations

import pytest
import torch
from opacus import GradSampleModule
from opacus.layers import DPGRU, DPLSTM, DPRNN
from opacus.validators import ModuleValidator

from fedmarket.errors import ConfigError, DataError
from fedmarket.models import RecurrentStack, build_model
from fedmarket.models.dp_lstm import BatchedDPLSTM, batched_lstm_grad_sample
from fedmarket.models.recurrent import recurrent_layer

NAMES = ["cnn-lstm", "gru", "lstm", "rnn"]
DP_FORMS = [True, "opacus"]  # the default (BatchedDPLSTM for LSTMs) and Opacus' own layers
F, T = 11, 8
SMALL = {"hidden_size": 8}


def _small(name: str, **extra) -> dict:
    hparams = dict(SMALL, **extra)
    if name == "cnn-lstm":
        hparams["conv_channels"] = 6
    return hparams


def _batch(batch: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, T, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dp", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_output_is_one_float_score_per_customer(name: str, dp: bool) -> None:
    model = build_model(name, F, dp=dp, seed=0, **_small(name)).eval()
    out = model(_batch(5))
    assert out.shape == (5,)
    assert out.dtype == torch.float32
    assert model(_batch(1)).shape == (1,)
    assert torch.equal(out, build_model(name, F, dp=dp, seed=0, **_small(name)).eval()(_batch(5)))


@pytest.mark.parametrize("form", DP_FORMS)
@pytest.mark.parametrize("name", NAMES)
def test_dp_form_uses_dp_layers(name: str, form) -> None:
    dp = build_model(name, F, dp=form, **_small(name))
    fast = build_model(name, F, dp=False, **_small(name))
    lstm = BatchedDPLSTM if form is True else DPLSTM
    expected = {"cnn-lstm": lstm, "lstm": lstm, "gru": DPGRU, "rnn": DPRNN}[name]
    assert all(type(layer) is expected for layer in dp.recurrent.layers)
    fast_type = {"cnn-lstm": torch.nn.LSTM, "lstm": torch.nn.LSTM}.get(name)
    fast_type = fast_type or {"gru": torch.nn.GRU, "rnn": torch.nn.RNN}[name]
    assert all(type(layer) is fast_type for layer in fast.recurrent.layers)


@pytest.mark.parametrize("form", DP_FORMS)
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_moves_between_forms_without_conversion(name: str, form) -> None:
    fast = build_model(name, F, seed=1, **_small(name)).eval()
    dp = build_model(name, F, seed=2, dp=form, **_small(name)).eval()
    # Same keys in the same order, for state dicts and parameters: Flower ships arrays by order.
    assert list(fast.state_dict()) == list(dp.state_dict())
    assert [n for n, _ in fast.named_parameters()] == [n for n, _ in dp.named_parameters()]
    assert not any(".ih." in key or ".hh." in key for key in dp.state_dict())
    x = _batch(6)
    dp.load_state_dict(fast.state_dict(), strict=True)
    torch.testing.assert_close(dp(x), fast(x), atol=1e-6, rtol=0)
    other = build_model(name, F, seed=3, dp=form, **_small(name)).eval()
    fast.load_state_dict(other.state_dict(), strict=True)
    torch.testing.assert_close(fast(x), other(x), atol=1e-6, rtol=0)
    layer = dp.recurrent.layers[0]
    if hasattr(layer, "l0"):  # Opacus: the aliases the DP cells train are the tensors loaded
        assert layer.l0.ih.weight is layer.weight_ih_l0


@pytest.mark.parametrize("form", DP_FORMS)
@pytest.mark.parametrize("name", NAMES)
def test_training_mode_dropout_is_identical_in_both_forms(name: str, form) -> None:
    hparams = _small(name, dropout=0.5, num_layers=3)
    fast = build_model(name, F, seed=0, **hparams).train()
    dp = build_model(name, F, seed=0, dp=form, **hparams).train()
    x = _batch(4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        fast_out = fast(x)
        torch.manual_seed(5)
        dp_out = dp(x)
    torch.testing.assert_close(dp_out, fast_out, atol=1e-6, rtol=0)
    assert not torch.allclose(fast_out, fast.eval()(x))  # dropout did act


def test_state_dict_survives_deeper_nesting_and_standalone_layers() -> None:
    fast = build_model("lstm", F, seed=0, **SMALL)
    wrapped = GradSampleModule(build_model("lstm", F, seed=1, dp=True, **SMALL))
    wrapped_keys = [key.removeprefix("_module.") for key in wrapped.state_dict()]
    assert wrapped_keys == list(fast.state_dict())
    wrapped.load_state_dict({"_module." + k: v for k, v in fast.state_dict().items()})
    torch.testing.assert_close(wrapped._module.head.weight, fast.head.weight)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch_layer = recurrent_layer("gru", 3, 4, dp=False)
        torch.manual_seed(0)
        dp_layer = recurrent_layer("gru", 3, 4, dp=True)
    assert list(dp_layer.state_dict()) == list(torch_layer.state_dict())
    assert list(dp_layer.state_dict()) == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
    ]
    for key, value in torch_layer.state_dict().items():
        assert torch.equal(value, dp_layer.state_dict()[key])


@pytest.mark.parametrize("form", DP_FORMS)
@pytest.mark.parametrize("name", NAMES)
def test_dp_form_passes_opacus_validation(name: str, form) -> None:
    assert ModuleValidator.validate(build_model(name, F, dp=form), strict=True) == []
    # the batched LSTM has its own grad sampler: it never falls back to functorch
    model = build_model(name, F, dp=form)
    for module in model.modules():
        if isinstance(module, BatchedDPLSTM):
            assert GradSampleModule.GRAD_SAMPLERS[BatchedDPLSTM] is batched_lstm_grad_sample


def test_fast_lstm_would_fail_opacus_validation() -> None:
    assert ModuleValidator.validate(build_model("lstm", F, **SMALL), strict=False) != []


# The input needs no gradient, so torch notes that Opacus' backward hooks see only outputs.
@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("form", DP_FORMS)
@pytest.mark.parametrize("name", NAMES)
def test_per_sample_gradients_match_one_at_a_time(name: str, form, reduction: str) -> None:
    """Against torch's own layers (cuDNN-free nn.LSTM etc.), one customer at a time; with a
    mean loss Opacus scales by the batch size, so per-sample gradients are of the sum."""
    batch = 4
    x = _batch(batch, seed=3)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = torch.nn.BCEWithLogitsLoss(reduction="sum")
    model = build_model(name, F, dp=form, seed=0, **_small(name, num_layers=2, dropout=0.0))
    gsm = GradSampleModule(model, loss_reduction=reduction).train()
    batch_loss = torch.nn.BCEWithLogitsLoss(reduction=reduction)
    batch_loss(gsm(x), y).backward()
    reference = build_model(name, F, seed=0, **_small(name, num_layers=2, dropout=0.0)).train()
    for i in range(batch):
        reference.zero_grad()
        loss(reference(x[i : i + 1]), y[i : i + 1]).backward()
        for (key, p_ref), p_dp in zip(
            reference.named_parameters(), model.parameters(), strict=True
        ):
            assert p_dp.grad_sample.shape == (batch, *p_dp.shape), key
            torch.testing.assert_close(p_dp.grad_sample[i], p_ref.grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dp", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name: str, dp: bool) -> None:
    model = build_model(name, F, dp=dp, seed=0, task="purchase-count", **_small(name)).train()
    out = model(_batch(3))
    torch.nn.functional.poisson_nll_loss(out, torch.tensor([0.0, 2.0, 1.0])).backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key
        assert param.grad.abs().sum() > 0, key


@pytest.mark.parametrize(
    "shape", [(4, F), (4, T, F - 1), (4, 0, F), (2, 4, T, F)], ids=["2d", "features", "empty", "4d"]
)
def test_wrong_input_shape_is_a_data_error(shape: tuple) -> None:
    model = build_model("lstm", F, **SMALL)
    with pytest.raises(DataError, match=r"\[batch, time >= 1, 11 features\]"):
        model(torch.zeros(shape))


def test_recurrent_stack_rejects_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="unknown recurrent kind 'lstmx'"):
        RecurrentStack("lstmx", 3, 4, 1, 0.0, dp=False)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_batched_lstm_stash_and_recompute_paths_agree(reduction: str) -> None:
    """The grad sampler takes D from the backward pass when the layer's input needs a
    gradient and recomputes it otherwise; both give the same per-sample gradients."""
    torch.manual_seed(0)
    x = _batch(6, seed=4)
    samples = []
    for needs_grad in (True, False):
        layer = BatchedDPLSTM.from_lstm(torch.nn.LSTM(F, 5, batch_first=True))
        layer.load_state_dict(BatchedDPLSTM.from_lstm(_seeded_lstm()).state_dict())
        gsm = GradSampleModule(layer, loss_reduction=reduction).train()
        out, _ = gsm(x.clone().requires_grad_(needs_grad))
        loss = out[:, -1].pow(2).sum(dim=1)
        (loss.mean() if reduction == "mean" else loss.sum()).backward()
        samples.append([p.grad_sample.clone() for p in layer.parameters()])
    for with_stash, recomputed in zip(*samples, strict=True):
        torch.testing.assert_close(with_stash, recomputed, atol=1e-6, rtol=1e-5)


def _seeded_lstm() -> torch.nn.LSTM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return torch.nn.LSTM(F, 5, batch_first=True)
