"""Gamma-Gamma: the likelihood against its formula, the gradient against finite
differences, parameters recovered from simulated spend, the conditional mean by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gamma as gamma_fn

from fedmarket.btyd import Spend, fit_gammagamma, gammagamma
from fedmarket.btyd.optimise import log_covariance
from fedmarket.errors import DataError
from tests.btyd import simulate

THETA = np.array([6.25, 3.74, 15.44])
SPEND = Spend([1, 2, 5], [10.0, 22.35, 40.0])


def test_loglik_matches_the_formula():
    p, q, g = THETA
    x, m = SPEND.x, SPEND.m
    direct = (
        gamma_fn(p * x + q) / (gamma_fn(p * x) * gamma_fn(q))
        * g**q * m ** (p * x - 1) * x ** (p * x) / (g + m * x) ** (p * x + q)
    )  # fmt: skip
    ll, _ = gammagamma.loglik_grad(THETA, SPEND)
    np.testing.assert_allclose(ll, np.log(direct), rtol=1e-10)


def test_gradient_matches_central_differences():
    _, grad = gammagamma.loglik_grad(THETA, SPEND)
    for j in range(3):
        e = np.zeros(3)
        e[j] = 1e-6
        up = gammagamma.loglik_grad(THETA * np.exp(e), SPEND)[0]
        down = gammagamma.loglik_grad(THETA * np.exp(-e), SPEND)[0]
        np.testing.assert_allclose(grad[:, j], (up - down) / 2e-6, rtol=1e-6, atol=1e-8)


def test_expected_average_spend_by_hand():
    fit = gammagamma.GammaGammaFit(*THETA)
    # x=2, m=22.35: (15.44 + 44.70) * 6.25 / (12.5 + 2.74) = 375.875 / 15.24
    got = fit.expected_average_spend(np.array([2.0, 0.0]), np.array([22.35, 99.0]))
    np.testing.assert_allclose(got, [375.875 / 15.24, 6.25 * 15.44 / 2.74])
    with pytest.raises(DataError, match=r"q = 0\.9 <= 1"):
        gammagamma.GammaGammaFit(6.0, 0.9, 15.0).expected_average_spend(np.ones(1), np.ones(1))


def test_recovers_the_simulating_parameters():
    """20,000 simulated repeat customers (seeded): each log-parameter within 3 standard
    errors (observed information; 1-7% here) of the truth."""
    truth = np.array([6.0, 4.0, 15.0])
    x, m = simulate.gammagamma(20_000, *truth, seed=1)
    fit = fit_gammagamma(Spend(x, m))
    se = np.sqrt(np.diag(log_covariance(gammagamma.MODEL, Spend(x, m), fit.optimum.params)))
    assert np.all(se < 0.08), se
    z = (np.log(fit.optimum.params) - np.log(truth)) / se
    assert np.all(np.abs(z) < 3), z


@pytest.mark.parametrize(
    ("x", "m", "message"),
    [([0, 1], [1.0, 1.0], "row 0"), ([1, 2], [1.0, 0.0], "row 1"), ([1], [np.nan], "row 0")],
)
def test_bad_spend_names_the_row(x, m, message):
    with pytest.raises(DataError, match=message + ".*keep only repeat customers"):
        Spend(x, m)
