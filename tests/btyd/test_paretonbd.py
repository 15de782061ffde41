"""Pareto/NBD: the likelihood against the printed formula on both sides of alpha = beta,
parameters recovered from simulated customers, the quadrature of P(no purchase) against
scipy's adaptive quad, predictions against what simulated customers did next."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import gammaln, hyp2f1

from fedmarket.btyd import CustomerHistory, fit_paretonbd, paretonbd
from fedmarket.btyd.optimise import log_covariance
from tests.btyd import simulate

H = CustomerHistory([0, 1, 2, 7, 12], [0, 5.0, 30.43, 12.0, 38.0], [38.86, 20.0, 38.86, 15.0, 38.5])


def _printed(theta: np.ndarray, h: CustomerHistory) -> np.ndarray:
    """FHL's note, eq. for L with the 2F1 as printed (fine for these small x)."""
    r, alpha, s, beta = theta
    x, t_x, T = h.x, h.t_x, h.T
    c = r + s + x
    if alpha >= beta:
        k, m, d = s + 1, alpha, alpha - beta
    else:
        k, m, d = r + x, beta, beta - alpha
    a0 = (
        hyp2f1(c, k, c + 1, d / (m + t_x)) / (m + t_x) ** c
        - hyp2f1(c, k, c + 1, d / (m + T)) / (m + T) ** c
    )
    lead = np.exp(gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta))
    return np.log(lead * ((alpha + T) ** -(r + x) * (beta + T) ** -s + s / c * a0))


@pytest.mark.parametrize(
    "theta", [(0.553, 10.578, 0.606, 11.669), (0.553, 15.0, 0.606, 3.0), (1.2, 5.0, 2.0, 5.0)]
)
def test_loglik_matches_the_printed_formula(theta):
    theta = np.array(theta)
    np.testing.assert_allclose(paretonbd.loglik(theta, H), _printed(theta, H), rtol=1e-10)


def test_loglik_is_continuous_across_alpha_equals_beta():
    below = paretonbd.loglik(np.array([0.5, 10.0 - 1e-9, 0.6, 10.0]), H)
    above = paretonbd.loglik(np.array([0.5, 10.0 + 1e-9, 0.6, 10.0]), H)
    np.testing.assert_allclose(below, above, rtol=1e-7)


def test_loglik_is_finite_for_heavy_buyers():
    heavy = CustomerHistory([500, 2000], [30.0, 1.0], [39.0, 39.0])
    for theta in ([0.5, 10.0, 0.6, 12.0], [0.5, 12.0, 0.6, 1.0]):
        ll, grad = paretonbd.loglik_grad(np.array(theta), heavy)
        assert np.isfinite(ll).all() and np.isfinite(grad).all()


def test_gradient_is_a_consistent_derivative():
    theta = np.array([0.553, 10.578, 0.606, 11.669])
    _, grad = paretonbd.loglik_grad(theta, H)
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1e-3  # a coarser step, fourth-order central difference
        f = [paretonbd.loglik(theta * np.exp(k * e), H) for k in (-2, -1, 1, 2)]
        fourth = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * 1e-3)
        np.testing.assert_allclose(grad[:, j], fourth, rtol=1e-6, atol=1e-9)


FIT = paretonbd.ParetoNBDFit(0.553, 10.578, 0.606, 11.669)


def test_p_no_purchase_quadrature_matches_adaptive_quad():
    t = 52.0
    got = FIT.p_no_purchase(t, H)
    alive = FIT.p_alive(H)
    for i in range(len(H)):
        A, B, shape = FIT.alpha + H.T[i], FIT.beta + H.T[i], FIT.r + H.x[i]

        def density(u, A=A, B=B, shape=shape):
            return FIT.s / (B + u) * (B / (B + u)) ** FIT.s * (A / (A + u)) ** shape

        died, _ = quad(density, 0, t, epsabs=1e-13)
        quiet = (A / (A + t)) ** shape * (B / (B + t)) ** FIT.s + died
        assert got[i] == pytest.approx(1 - alive[i] + alive[i] * quiet, abs=1e-12)
    assert np.all(FIT.p_no_purchase(0.0, H) == 1.0)


def test_expected_transactions_is_continuous_at_s_equal_one():
    at_one = paretonbd.ParetoNBDFit(0.5, 10.0, 1.0, 12.0).expected_transactions(26.0, H)
    near = paretonbd.ParetoNBDFit(0.5, 10.0, 1.0 + 1e-7, 12.0).expected_transactions(26.0, H)
    np.testing.assert_allclose(at_one, near, rtol=1e-6)


def test_recovers_the_simulating_parameters():
    """10,000 simulated customers (seeded): every log-parameter within 3 standard errors
    (observed information) of the truth; those errors are 4-32% here (s and beta are the
    weakly identified pair of this model)."""
    truth = np.array([0.55, 10.0, 0.6, 12.0])
    history, _, _ = simulate.paretonbd(10_000, *truth, horizon=26.0, seed=1)
    fit = fit_paretonbd(history)
    assert fit.optimum.converged
    se = np.sqrt(np.diag(log_covariance(paretonbd.MODEL, history, fit.optimum.params)))
    assert np.all(se < 0.35), se
    z = (np.log(fit.optimum.params) - np.log(truth)) / se
    assert np.all(np.abs(z) < 3), z


def test_holdout_predictions_match_the_simulated_holdout():
    """At the true parameters, 20,000 simulated customers: mean P(buy in 26 weeks) and
    E[purchases] within 3 standard errors of what they did."""
    truth = (0.55, 10.0, 0.6, 12.0)
    history, bought, purchases = simulate.paretonbd(20_000, *truth, horizon=26.0, seed=2)
    fit = paretonbd.ParetoNBDFit(*truth)
    p = fit.p_purchase(26.0, history)
    assert abs(p.mean() - bought.mean()) < 3 * np.sqrt((p * (1 - p)).sum()) / len(p)
    expected = fit.expected_transactions(26.0, history)
    assert abs(expected.mean() - purchases.mean()) < 3 * purchases.std() / np.sqrt(len(p))
    alive = fit.p_alive(history)
    assert np.all((alive > 0) & (alive <= 1))
