"""BG/NBD: the likelihood against its formula, the analytic gradient against finite
differences, parameters recovered from simulated customers, predictions against what the
simulated customers did next."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import beta as beta_fn
from scipy.special import gamma as gamma_fn
from scipy.special import hyp2f1

from fedmarket.btyd import CustomerHistory, bgnbd, fit_bgnbd
from fedmarket.btyd.optimise import log_covariance
from tests.btyd import simulate

THETA = np.array([0.243, 4.414, 0.793, 2.426])
H = CustomerHistory([0, 1, 2, 7, 30], [0, 5.0, 30.43, 12.0, 38.0], [38.86, 20.0, 38.86, 15.0, 38.5])


def test_loglik_matches_the_formula_term_by_term():
    r, alpha, a, b = THETA
    x, t_x, T = H.x, H.t_x, H.T
    lead = gamma_fn(r + x) * alpha**r / gamma_fn(r)
    alive = beta_fn(a, b + x) / beta_fn(a, b) / (alpha + T) ** (r + x)
    dropped = (x > 0) * beta_fn(a + 1, b + x - 1) / beta_fn(a, b) / (alpha + t_x) ** (r + x)
    np.testing.assert_allclose(bgnbd.loglik(THETA, H), np.log(lead * (alive + dropped)), rtol=1e-12)


def test_gradient_matches_central_differences():
    ll, grad = bgnbd.loglik_grad(THETA, H)
    np.testing.assert_allclose(ll, bgnbd.loglik(THETA, H))
    step = 1e-6
    for j in range(4):
        e = np.zeros(4)
        e[j] = step
        up = bgnbd.loglik(THETA * np.exp(e), H)
        down = bgnbd.loglik(THETA * np.exp(-e), H)
        np.testing.assert_allclose(grad[:, j], (up - down) / (2 * step), rtol=1e-6, atol=1e-8)


def test_loglik_is_finite_for_heavy_buyers():
    heavy = CustomerHistory([500, 2000], [30.0, 38.0], [39.0, 39.0])
    ll, grad = bgnbd.loglik_grad(THETA, heavy)
    assert np.isfinite(ll).all() and np.isfinite(grad).all()


def test_expected_transactions_equals_the_untransformed_formula():
    """FHL 2005 eq. 10 as printed, against the Euler-transformed one used."""
    fit = bgnbd.BGNBDFit(*THETA)
    r, alpha, a, b = THETA
    x, t_x, T, t = H.x, H.t_x, H.T, 39.0
    tail = ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, t / (alpha + T + t)
    )
    odds = (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    printed = (a + b + x - 1) / (a - 1) * (1 - tail) / (1 + odds)
    np.testing.assert_allclose(fit.expected_transactions(t, H), printed, rtol=1e-10)
    np.testing.assert_allclose(fit.p_alive(H), 1 / (1 + odds), rtol=1e-12)
    assert fit.p_alive(H)[0] == 1.0  # x == 0: cannot have dropped out


def test_expected_transactions_is_continuous_at_a_equal_one():
    at_one = bgnbd.BGNBDFit(0.25, 4.0, 1.0, 2.5).expected_transactions(26.0, H)
    around = [
        bgnbd.BGNBDFit(0.25, 4.0, a, 2.5).expected_transactions(26.0, H) for a in (0.999, 1.001)
    ]
    assert np.isfinite(at_one).all()
    np.testing.assert_allclose(at_one, (around[0] + around[1]) / 2, rtol=1e-5)


def test_p_no_purchase_is_dead_or_quiet():
    fit = bgnbd.BGNBDFit(*THETA)
    alive = fit.p_alive(H)
    quiet = ((THETA[1] + H.T) / (THETA[1] + H.T + 10.0)) ** (THETA[0] + H.x)
    np.testing.assert_allclose(fit.p_no_purchase(10.0, H), 1 - alive + alive * quiet)
    np.testing.assert_allclose(fit.p_purchase(10.0, H), alive * (1 - quiet))
    assert np.all(fit.p_no_purchase(0.0, H) == 1.0)


def test_recovers_the_simulating_parameters():
    """20,000 simulated customers (seeded): every log-parameter within 3 standard errors
    (observed information) of the truth; those errors are 2-9% here."""
    truth = np.array([0.25, 4.0, 0.8, 2.5])
    history, _, _ = simulate.bgnbd(20_000, *truth, horizon=26.0, seed=1)
    fit = fit_bgnbd(history)
    assert fit.optimum.converged and fit.n == 20_000
    se = np.sqrt(np.diag(log_covariance(bgnbd.MODEL, history, fit.optimum.params)))
    assert np.all(se < 0.1)
    z = (np.log(fit.optimum.params) - np.log(truth)) / se
    assert np.all(np.abs(z) < 3), z


def test_holdout_predictions_match_the_simulated_holdout():
    """Mean predicted P(buy in 26 weeks) and E[purchases] against what 20,000 simulated
    customers did, at the true parameters: within 3 binomial / Poisson-ish standard errors."""
    truth = (0.25, 4.0, 0.8, 2.5)
    history, bought, purchases = simulate.bgnbd(20_000, *truth, horizon=26.0, seed=2)
    fit = bgnbd.BGNBDFit(*truth)
    p = fit.p_purchase(26.0, history)
    assert abs(p.mean() - bought.mean()) < 3 * np.sqrt((p * (1 - p)).sum()) / len(p)
    expected = fit.expected_transactions(26.0, history)
    assert abs(expected.mean() - purchases.mean()) < 3 * purchases.std() / np.sqrt(len(p))
    # and customer by customer: those predicted likelier to buy did buy more often
    top = p > np.quantile(p, 0.9)
    assert bought[top].mean() > 3 * bought[~top].mean()


def test_empty_history_is_refused():
    with pytest.raises(ValueError, match="cannot fit on no customers"):
        fit_bgnbd(CustomerHistory([], [], []))
