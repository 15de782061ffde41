"""Factored per-sample gradients: the same clipped sum as Opacus' dense ones, and one
customer at a time, for the default models' shapes (two LSTM layers; convolutions + LSTM)."""

from __future__ import annotations

import copy

import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from fedmarket.errors import PrivacyError
from fedmarket.models import build_model
from fedmarket.models.dp_lstm import BatchedDPLSTM
from fedmarket.privacy import PrivacySettings, make_private
from fedmarket.privacy.factored import FactoredDPOptimizer
from fedmarket.tasks import get_task

F, T = 5, 6
PURCHASE = get_task("purchase")
SHAPES = {
    "lstm": {"hidden_size": 4, "num_layers": 2, "dropout": 0.0},
    "cnn-lstm": {"hidden_size": 4, "conv_channels": 3, "dropout": 0.0},
}
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook")


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(n, T, F, generator=gen)
    return X, (X[:, -1, 0] > 0).float()


def _clipped_step(model, X, y, clip: float, factored: bool) -> list[torch.Tensor]:
    """One noiseless step's clipped sum (``p.summed_grad``), dense (Opacus) or factored."""
    gsm = GradSampleModule(model, loss_reduction="mean")
    opt = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.0),
        noise_multiplier=0.0,
        max_grad_norm=clip,
        expected_batch_size=len(X),
    )
    if factored:
        opt = FactoredDPOptimizer.from_dp_optimizer(opt)
        for layer in model.modules():
            if hasattr(layer, "factored_grad_sample"):
                layer.factored_grad_sample = True
    PURCHASE.loss()(gsm(X), y).backward()
    assert any(getattr(p, "grad_factors", None) for p in model.parameters()) == factored
    opt.clip_and_accumulate()
    return [p.summed_grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("clip", [1e-3, 1e3], ids=["all-clipped", "none-clipped"])
def test_factored_clipped_sum_equals_opacus_dense(name: str, clip: float) -> None:
    X, y = _data()
    model = build_model(name, F, dp=True, seed=0, **SHAPES[name]).train()
    dense = _clipped_step(copy.deepcopy(model), X, y, clip, factored=False)
    factored = _clipped_step(copy.deepcopy(model), X, y, clip, factored=True)
    for a, b in zip(dense, factored, strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


def _one_at_a_time(model, X, y, clip: float) -> list[torch.Tensor]:
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(len(X)):
        grads = torch.autograd.grad(PURCHASE.loss()(model(X[i : i + 1]), y[i : i + 1]), params)
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
        factor = min(1.0, clip / (norm + 1e-6))
        total = [t + factor * g for t, g in zip(total, grads, strict=True)]
    return total


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_make_private_step_equals_one_customer_at_a_time(name: str) -> None:
    """The whole DP wiring (factored optimiser, detached weights, both LSTM layers or the
    convolutions) against each customer's gradient alone, clipped and summed."""
    X, y = _data()
    model = build_model(name, F, dp=True, seed=0, **SHAPES[name])
    reference = copy.deepcopy(model).train()
    clip = 0.05
    priv = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        (X, y),
        PrivacySettings(noise_multiplier=0.0, max_grad_norm=clip, poisson_sampling=False),
        None,
        batch_size=len(X),
        generator=torch.Generator().manual_seed(1),
        total_steps_planned=1,
        steps_now=1,
    )
    assert isinstance(priv.optimizer, FactoredDPOptimizer)
    before = [p.detach().clone() for p in model.parameters()]
    xb, yb = next(iter(priv.loader))
    priv.optimizer.zero_grad()
    PURCHASE.loss()(priv.module(xb), yb).backward()
    priv.step()
    assert len(xb) == len(X)  # one shuffled batch of everyone: the sum is over the same set
    expected = _one_at_a_time(reference, X, y, clip)
    for p0, p1, g in zip(before, model.parameters(), expected, strict=True):
        torch.testing.assert_close(p1.detach() - p0, -g / len(X), atol=1e-6, rtol=0)
    plain = priv.close()
    assert not any(getattr(m, "factored_grad_sample", False) for m in plain.modules())
    assert not any(hasattr(p, "grad_factors") for p in plain.parameters())


def test_empty_batch_and_zero_grad_clear_the_factors() -> None:
    X, y = _data(8)
    model = build_model("lstm", F, dp=True, seed=0, **SHAPES["lstm"])
    priv = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        (X, y),
        PrivacySettings(noise_multiplier=0.0, max_grad_norm=1.0),
        None,
        batch_size=4,
        generator=torch.Generator().manual_seed(1),
        total_steps_planned=2,
        steps_now=2,
    )
    PURCHASE.loss()(priv.module(X[:4]), y[:4]).backward()
    assert model.recurrent.layers[0].weight_hh_l0.grad_factors
    before = [p.detach().clone() for p in model.parameters()]
    priv.empty_step()  # zero_grad first: the factors of the batch above are dropped
    assert all(p.grad_factors is None for p in model.parameters())
    for p0, p1 in zip(before, model.parameters(), strict=True):
        assert torch.equal(p0, p1.detach())  # no noise, nobody sampled: no change
    priv.close()


def test_only_flat_clipping_optimisers_are_adopted() -> None:
    from opacus.optimizers import DPPerLayerOptimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    per_layer = DPPerLayerOptimizer(
        torch.optim.SGD(params, lr=1.0),
        noise_multiplier=0.0,
        max_grad_norm=[1.0],
        expected_batch_size=1,
    )
    with pytest.raises(PrivacyError, match="flat-clipping DPOptimizer, got DPPerLayerOptimizer"):
        FactoredDPOptimizer.from_dp_optimizer(per_layer)


def test_a_layer_run_twice_in_one_pass_is_refused_under_factored_clipping() -> None:
    """Its two factor sets would need one placeholder each; refused rather than mixed up."""

    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = BatchedDPLSTM(F, 3)
            self.lstm.factored_grad_sample = True

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.detach().requires_grad_()
            return (self.lstm(x)[0] + self.lstm(x)[0])[:, -1].sum(dim=1)

    model = Twice()
    for p in model.parameters():
        torch.nn.init.normal_(p)
    X, y = _data(4)
    gsm = GradSampleModule(model, loss_reduction="sum")
    with pytest.raises(PrivacyError, match="ran twice in one forward pass"):
        PURCHASE.loss("sum")(gsm(X), y).backward()
