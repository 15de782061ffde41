"""Federated BTYD fit: the sum of retailers' parts is the pooled fit; the DP options
clip, add seeded noise, and account as Opacus does."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fedmarket.btyd import (
    MODELS,
    Clipping,
    CustomerHistory,
    fit_federated,
    gaussian_epsilon,
    local_sums,
)
from tests.btyd import simulate

HISTORY, _, _ = simulate.bgnbd(3000, 0.25, 4.0, 0.8, 2.5, horizon=1.0, seed=5)


def _retailers(history, parts, **options):
    order = np.random.default_rng(0).permutation(len(history))
    return [
        functools.partial(local_sums, history=history.subset(np.sort(p)), **options)
        for p in np.array_split(order, parts)
    ]


def test_models_by_name():
    assert set(MODELS) == {"bg-nbd", "pareto-nbd"}


@pytest.mark.parametrize("model", ["bg-nbd", "pareto-nbd"])
def test_five_retailers_fit_the_pooled_model(model):
    pooled = MODELS[model](HISTORY)
    federated = fit_federated(_retailers(HISTORY, 5, model=model), model=model)
    assert type(federated) is type(pooled) and federated.n == len(HISTORY)
    for name, value in pooled.params.items():
        assert federated.params[name] == pytest.approx(value, abs=1e-6), name
    assert federated.loglik == pytest.approx(pooled.loglik, rel=1e-12)


def test_local_sums_add_up_to_the_pooled_sums():
    z = np.log([0.3, 5.0, 0.7, 2.0])
    parts = [answer(z) for answer in _retailers(HISTORY, 3)]
    whole = local_sums(z, HISTORY)
    assert sum(p[0] for p in parts) == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(sum(p[1] for p in parts), whole[1], rtol=1e-10)
    assert sum(p[2] for p in parts) == whole[2] == len(HISTORY)


def test_clipping_bounds_every_customer():
    z = np.log([0.3, 5.0, 0.7, 2.0])
    clip = Clipping(loglik_bound=2.0, grad_bound=0.5)
    one = HISTORY.subset(slice(0, 1))
    ll, grad, n = local_sums(z, one, clipping=clip)
    assert abs(ll) <= 2.0 and np.linalg.norm(grad) <= 0.5 + 1e-12 and n == 1
    ll_all, _, _ = local_sums(z, HISTORY, clipping=clip)
    assert abs(ll_all) <= 2.0 * len(HISTORY)


def test_noise_is_seeded_and_scaled_by_the_clipping_bounds():
    z = np.log([0.3, 5.0, 0.7, 2.0])
    clip = Clipping(1.0, 1.0)
    exact = local_sums(z, HISTORY, clipping=clip)
    draws = [
        local_sums(z, HISTORY, clipping=clip, noise_multiplier=2.0, rng=np.random.default_rng(s))
        for s in range(400)
    ]
    again = local_sums(
        z, HISTORY, clipping=clip, noise_multiplier=2.0, rng=np.random.default_rng(0)
    )
    assert again[0] == draws[0][0]
    ll_noise = np.array([d[0] for d in draws]) - exact[0]
    assert np.std(ll_noise) == pytest.approx(2.0, rel=0.15)  # z * C_ll


def test_noise_without_clipping_or_generator_is_refused():
    z = np.log([0.3, 5.0, 0.7, 2.0])
    with pytest.raises(ValueError, match="noise needs clipping"):
        local_sums(z, HISTORY, noise_multiplier=1.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise needs clipping"):
        local_sums(z, HISTORY, clipping=Clipping(1.0, 1.0), noise_multiplier=1.0)
    with pytest.raises(ValueError, match="grad_bound must be a finite number > 0"):
        Clipping(1.0, 0.0)


def test_noisy_fit_is_deterministic_and_counts_its_releases():
    def fit(seed):
        rngs = [np.random.default_rng([seed, i]) for i in range(3)]
        retailers = [
            lambda z, h=h, rng=rng: local_sums(
                z, h, clipping=Clipping(30.0, 10.0), noise_multiplier=0.5, rng=rng
            )
            for h, rng in zip(np.array_split(np.arange(len(HISTORY)), 3), rngs, strict=True)
            for h in [HISTORY.subset(h)]
        ]
        return fit_federated(retailers, max_evaluations=60, polish=False)

    first, second = fit(7), fit(7)
    assert first.params == second.params
    assert 0 < first.optimum.evaluations <= 70  # L-BFGS-B may finish its line search
    assert np.isfinite(gaussian_epsilon(0.5, first.optimum.evaluations, 1e-5))


def test_gaussian_epsilon_is_opacus_rdp_at_full_sampling():
    from fedmarket.privacy.accounting import AccountantState, epsilon

    for z, releases in [(1.0, 1), (2.0, 50), (10.0, 200)]:
        # Opacus' RDP accountant, Gaussian mechanism (sample rate 1), multiplier z / sqrt(2)
        state = AccountantState(history=((z / np.sqrt(2), 1.0, releases),))
        assert gaussian_epsilon(z, releases, 1e-5) == pytest.approx(epsilon(state, 1e-5), rel=1e-9)
    assert gaussian_epsilon(1.0, 0, 1e-5) == 0.0
    with pytest.raises(ValueError, match="needs noise_multiplier > 0"):
        gaussian_epsilon(0.0, 3, 1e-5)


def test_bad_federated_calls_are_refused():
    with pytest.raises(ValueError, match="no retailers"):
        fit_federated([])
    with pytest.raises(ValueError, match="unknown model 'bg/nbd'"):
        fit_federated(_retailers(HISTORY, 2), model="bg/nbd")
    with pytest.raises(ValueError, match="has no customers"):
        local_sums(np.zeros(4), CustomerHistory([], [], []))
