"""The federated DP generator (fedmarket/generative/federated_generator.py, dpvae.py): each
retailer's epsilon is exactly what Opacus' own RDP accountant gives for its noise, sample
rate and steps; a fit is a function of its seed; bad input fails before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from fedmarket.errors import ConfigError, DataError
from fedmarket.generative.dpvae import ConditionalVAE, GeneratorConfig
from fedmarket.generative.federated_generator import RetailerRows, train_federated_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = GeneratorConfig(latent_dim=2, hidden=8, rounds=2, local_epochs=1, batch_size=10)


def retailers(seed: int = 0) -> list[RetailerRows]:
    rng = np.random.default_rng(seed)
    out = []
    for name, n in (("a", 100), ("b", 90)):
        y = (rng.random(n) < 0.3).astype(np.float64)
        x = rng.normal(size=(n, 4)) + y[:, None]
        out.append(RetailerRows(name, x, y))
    return out


def test_each_retailers_epsilon_is_opacus_rdp_for_its_noise_rate_and_steps() -> None:
    fit = train_federated_generator(retailers(), SMALL, target_epsilon=1.0, seed=0)
    delta = 1 / (10 * 190)  # 1/(10 N) over both retailers' training customers
    assert fit.delta == pytest.approx(delta)
    for r, n in zip(fit.retailers, (100, 90), strict=True):
        q, steps = 1 / -(-n // 10), 2 * -(-n // 10)  # ceil(n / B) steps per epoch, 2 rounds
        assert (r.n, r.sample_rate, r.steps) == (n, q, steps)
        noise = get_noise_multiplier(
            target_epsilon=1.0, target_delta=delta, sample_rate=q, steps=steps, accountant="rdp"
        )
        assert r.noise_multiplier == pytest.approx(noise)
        accountant = RDPAccountant()
        accountant.history = [(noise, q, steps)]
        assert r.epsilon == pytest.approx(accountant.get_epsilon(delta=delta), rel=1e-9)
        assert 0.95 < r.epsilon <= 1.0


def test_same_seed_same_synthetic_customers_other_seed_others() -> None:
    a = train_federated_generator(retailers(), SMALL, target_epsilon=1.0, seed=1)
    b = train_federated_generator(retailers(), SMALL, target_epsilon=1.0, seed=1)
    c = train_federated_generator(retailers(), SMALL, target_epsilon=1.0, seed=2)
    xa, ya = a.sample(50, seed=5)
    xb, yb = b.sample(50, seed=5)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert xa.shape == (50, 4) and set(np.unique(ya)) <= {0.0, 1.0}
    assert not np.array_equal(xa, c.sample(50, seed=5)[0])
    assert not np.array_equal(xa, a.sample(50, seed=6)[0])


def test_loss_is_per_customer_and_label_prior_starts_near_a_coin() -> None:
    cfg = GeneratorConfig(latent_dim=2, hidden=8)
    model = ConditionalVAE(4, cfg)
    x, y = torch.zeros(3, 4), torch.tensor([0.0, 1.0, 1.0])
    loss = model(x, y, torch.zeros(3, 2))
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    assert 0.0 < model.label_rate() < 1.0


def test_bad_input_fails_before_training() -> None:
    with pytest.raises(ConfigError, match="target_epsilon"):
        train_federated_generator(retailers(), SMALL, target_epsilon=0.0, seed=0)
    with pytest.raises(DataError, match="no retailers"):
        train_federated_generator([], SMALL, target_epsilon=1.0, seed=0)
    with pytest.raises(DataError, match="labels 0/1"):
        RetailerRows("x", np.zeros((3, 2)), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ConfigError, match="rounds"):
        GeneratorConfig(rounds=0)


def test_hidden_zero_is_linear_and_smaller() -> None:
    linear = ConditionalVAE(308, GeneratorConfig())  # the default: probabilistic PCA + heads
    mlp = ConditionalVAE(308, GeneratorConfig(hidden=64, latent_dim=8))
    assert [type(m).__name__ for m in linear.decoder] == ["Linear"]
    n = sum(p.numel() for p in linear.parameters())
    assert n == (309 * 8 + 8) + (5 * 308 + 308) + 2 * (308 + 308) + 2
    assert n < sum(p.numel() for p in mlp.parameters()) / 9  # 5,562 against 51,162
