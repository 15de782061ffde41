"""Customers simulated from each model's own generative story, for the recovery tests.

Each simulator returns the calibration history (x, t_x, T) and whether the customer bought
in the holdout (T, T + horizon], so the tests can check the fitted parameters and the
conditional predictions against what the process really did.
"""

from __future__ import annotations

import numpy as np

from fedmarket.btyd import CustomerHistory


def _ages(n: int, rng: np.random.Generator) -> np.ndarray:
    """Ages T spread over 20-40 weeks, as with a cohort acquired over a quarter."""
    return rng.uniform(20.0, 40.0, n)


def bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, horizon: float, seed: int
) -> tuple[CustomerHistory, np.ndarray, np.ndarray]:
    """BG/NBD customers: (history, bought in the holdout, purchases in the holdout)."""
    rng = np.random.default_rng(seed)
    lam, p, T = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n), _ages(n, rng)
    x, t_x, holdout = np.zeros(n), np.zeros(n), np.zeros(n)
    clock, alive = np.zeros(n), np.ones(n, dtype=bool)
    while alive.any():
        clock = clock + rng.exponential(1 / np.maximum(lam, 1e-300))
        alive &= clock <= T + horizon
        in_cal, in_hold = alive & (clock <= T), alive & (clock > T)
        x += in_cal
        t_x = np.where(in_cal, clock, t_x)
        holdout += in_hold
        alive &= rng.uniform(size=n) >= p  # drops out right after this purchase
    return CustomerHistory(x, t_x, T), holdout > 0, holdout


def paretonbd(
    n: int, r: float, alpha: float, s: float, beta: float, horizon: float, seed: int
) -> tuple[CustomerHistory, np.ndarray, np.ndarray]:
    """Pareto/NBD customers: (history, bought in the holdout, purchases in the holdout)."""
    rng = np.random.default_rng(seed)
    lam, mu, T = rng.gamma(r, 1 / alpha, n), rng.gamma(s, 1 / beta, n), _ages(n, rng)
    death = rng.exponential(1 / mu)
    active = np.minimum(death, T)
    x = rng.poisson(lam * active).astype(np.float64)
    # the last of x uniform times on (0, active] is active * U^(1/x)
    with np.errstate(divide="ignore"):
        t_x = np.where(x > 0, active * rng.uniform(size=n) ** (1 / np.maximum(x, 1)), 0.0)
    hold_span = np.clip(np.minimum(death, T + horizon) - T, 0.0, None)
    holdout = rng.poisson(lam * hold_span).astype(np.float64)
    return CustomerHistory(x, t_x, T), holdout > 0, holdout


def gammagamma(
    n: int, p: float, q: float, gamma: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(x, mean spend) of ``n`` repeat customers with 1-10 transactions each."""
    rng = np.random.default_rng(seed)
    nu = rng.gamma(q, 1 / gamma, n)
    x = rng.integers(1, 11, n).astype(np.float64)
    mean = rng.gamma(p * x, 1 / (nu * x))  # the mean of x Gamma(p, nu) values
    return x, mean
