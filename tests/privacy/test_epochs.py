"""The shared DP-SGD epoch loop: every loader batch is a step the accountant counts, an empty
Poisson batch takes a noise-only step, the callbacks run where the trainers need them, and
Opacus' backward-hook warning stays inside."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fedmarket.models import build_model
from fedmarket.privacy import PrivacySettings, PrivateTraining, make_private
from fedmarket.privacy.epochs import private_epochs

T, F = 4, 3


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _private(n: int, batch_size: int, epochs: int) -> PrivateTraining:
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(n, T, F)).astype(np.float32))
    y = (X[:, -1, 0] > 0).float()
    model = build_model("lstm", F, dp=True, seed=0, hidden_size=4, num_layers=1, dropout=0.0)
    steps = epochs * n // batch_size
    return make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), (X, y),
        PrivacySettings(noise_multiplier=1.0), None,
        batch_size=batch_size, generator=torch.Generator().manual_seed(1),
        noise_generator=torch.Generator().manual_seed(2),
        total_steps_planned=steps, steps_now=steps,
    )  # fmt: skip


def test_every_batch_is_a_counted_step_and_empty_ones_only_add_noise() -> None:
    # n = 30, batch 1: q = 1/30, so about a third of the Poisson batches are empty
    priv = _private(30, 1, epochs=2)
    losses: list[tuple[float, int]] = []
    noise_calls, after_calls = [], []
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def batch_loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        assert all(p.grad is None for p in priv.module.parameters())  # zeroed first
        loss = loss_fn(priv.module(xb), yb)
        losses.append((float(loss.detach()), len(xb)))
        return loss

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the hook warning must not escape the loop
        total, seen, steps = private_epochs(
            priv, 2, batch_loss,
            after_noise=lambda: noise_calls.append(1),
            after_step=lambda: after_calls.append(1),
        )  # fmt: skip
    try:
        assert steps == 60 == priv.state.steps  # 30 planned steps an epoch, as accounted
        empty = steps - len(losses)
        assert 0 < empty < steps  # some empty batches: each still a (noise-only) step
        assert len(noise_calls) == steps and len(after_calls) == len(losses)
        assert seen == sum(n for _, n in losses)
        assert total == pytest.approx(sum(loss * n for loss, n in losses))
        assert all(p.grad is None for p in priv.module.parameters())
        assert all(getattr(p, "grad_sample", None) is None for p in priv.module.parameters())
    finally:
        priv.close()


def test_no_epochs_takes_no_step() -> None:
    priv = _private(8, 4, epochs=1)
    try:
        called = []
        assert private_epochs(priv, 0, lambda xb, yb: called.append(1)) == (0.0, 0, 0)
        assert not called and priv.state.steps == 0
    finally:
        priv.close()
