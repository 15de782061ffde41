"""Federated BTYD fit: one model for the consortium without pooling any customer.

The log-likelihood is a sum over customers, so the server's optimiser (the very one of
the pooled fit, ``optimise.maximise``) only needs, at each point it tries, each
retailer's (log-likelihood sum, gradient sum, customer count). ``local_sums`` computes
that at a retailer; ``fit_federated`` adds the parts at the server. Without noise the
result is the pooled fit up to floating-point summation order.

Optional differential privacy of each retailer's answers (``clipping`` + ``noise_multiplier``):
each customer's log-likelihood is clipped to [-C_ll, C_ll] and its gradient row to L2
norm C_g, then Gaussian noise N(0, (z C_ll)^2) and N(0, (z C_g)^2 I) is added to the
sums with the retailer's own ``numpy.random.Generator``. Adding or removing one customer
moves (ll_sum / C_ll, grad_sum / C_g) by at most sqrt(2) in L2, so each answer is a
Gaussian mechanism with noise multiplier z / sqrt(2) protecting that retailer's
customers (customer-level, add/remove) from the server and anyone who sees the sums.
Without clipping the sums have unbounded sensitivity and noise gives no guarantee, so
noise requires clipping. Accounting is per answer: every evaluation the optimiser asks
for is one release, and ``gaussian_epsilon`` composes them with RDP (Opacus' RDP
conversion, sampling rate 1). Not protected: the customer count n (sent exactly, as
fedmarket's federated training already reports num_examples), and clipping biases the
fit. A noisy objective also stops L-BFGS-B early (its line search sees noise), so cap
the releases with ``max_evaluations``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedmarket.btyd import bgnbd, paretonbd
from fedmarket.btyd.data import CustomerHistory
from fedmarket.btyd.optimise import LikelihoodModel, Optimum, maximise
from fedmarket.errors import ConfigError, DataError

RetailerSums = Callable[[np.ndarray], tuple[float, np.ndarray, int]]
# name -> (likelihood, how an optimum becomes that model's fit object)
LIKELIHOODS: dict[str, tuple[LikelihoodModel, Callable[[Optimum], Any]]] = {
    "bg-nbd": (bgnbd.MODEL, bgnbd.BGNBDFit.from_optimum),
    "pareto-nbd": (paretonbd.MODEL, paretonbd.ParetoNBDFit.from_optimum),
}
# Opacus' RDPAccountant.DEFAULT_ALPHAS
_ORDERS = np.array([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)), dtype=np.float64)


@dataclass(frozen=True)
class Clipping:
    """Per-customer bounds: |log-likelihood| <= loglik_bound, ||gradient||_2 <= grad_bound."""

    loglik_bound: float
    grad_bound: float

    def __post_init__(self) -> None:
        for name in ("loglik_bound", "grad_bound"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"btyd clipping: {name} must be a finite number > 0, not {value}")

    def apply(self, ll: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        norms = np.linalg.norm(grad, axis=1, keepdims=True)
        scale = np.minimum(1.0, self.grad_bound / np.maximum(norms, 1e-300))
        return np.clip(ll, -self.loglik_bound, self.loglik_bound), grad * scale


def _model(name: str) -> tuple[LikelihoodModel, Callable[[Optimum], Any]]:
    if name not in LIKELIHOODS:
        raise ConfigError(f"btyd: unknown model {name!r}; choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name]


def local_sums(
    params: np.ndarray,
    history: CustomerHistory,
    *,
    model: str = "bg-nbd",
    clipping: Clipping | None = None,
    noise_multiplier: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[float, np.ndarray, int]:
    """A retailer's answer at the server's ``params`` (the log-parameters it optimises):
    (sum of log-likelihoods, sum of their gradients in the log-parameters, customers)."""
    likelihood, _ = _model(model)
    if len(history) == 0:
        raise DataError("btyd local sums: this retailer has no customers; leave it out")
    ll, grad = likelihood.loglik_grad(np.exp(np.asarray(params, dtype=np.float64)), history)
    if clipping is not None:
        ll, grad = clipping.apply(ll, grad)
    ll_sum, grad_sum = float(ll.sum()), grad.sum(axis=0)
    if noise_multiplier:
        if clipping is None or rng is None or not noise_multiplier > 0:
            raise ConfigError(
                "btyd local sums: noise needs clipping (the sums' sensitivity), an explicit "
                f"numpy Generator and a noise multiplier > 0 (got {noise_multiplier})"
            )
        ll_sum += float(rng.normal(0.0, noise_multiplier * clipping.loglik_bound))
        grad_sum = grad_sum + rng.normal(
            0.0, noise_multiplier * clipping.grad_bound, grad_sum.shape
        )
    return ll_sum, grad_sum, len(history)


def fit_federated(
    retailer_sums: Sequence[RetailerSums],
    *,
    model: str = "bg-nbd",
    max_evaluations: int = 15000,
    polish: bool = True,
) -> Any:
    """The server's fit from each retailer's ``local_sums`` (a callable taking the
    log-parameters); returns the same fit object as the pooled fit (e.g. ``BGNBDFit``).
    ``fit.optimum.evaluations`` is how many answers each retailer gave; set ``polish``
    False when the retailers add noise (Newton steps on noisy gradients only spend budget)."""
    if not retailer_sums:
        raise ConfigError("btyd federated fit: no retailers; give at least one local_sums")
    likelihood, to_fit = _model(model)

    def total(log_params: np.ndarray) -> tuple[float, np.ndarray, int]:
        parts = [answer(log_params) for answer in retailer_sums]
        return (
            float(sum(p[0] for p in parts)),
            np.sum([p[1] for p in parts], axis=0),
            int(sum(p[2] for p in parts)),
        )

    return to_fit(maximise(likelihood, total, max_evaluations=max_evaluations, polish=polish))


def gaussian_epsilon(noise_multiplier: float, releases: int, delta: float) -> float:
    """Epsilon at ``delta`` of one retailer's ``releases`` noisy answers with
    ``local_sums(noise_multiplier=z)``: each a Gaussian mechanism of multiplier z/sqrt(2)
    (see the module docstring), composed with RDP and converted as Opacus does."""
    if releases == 0:
        return 0.0
    if not (noise_multiplier > 0 and 0 < delta < 1 and releases > 0):
        raise ConfigError(
            f"gaussian_epsilon: needs noise_multiplier > 0, 0 < delta < 1, releases >= 0 "
            f"(got {noise_multiplier}, {delta}, {releases})"
        )
    sigma = noise_multiplier / np.sqrt(2.0)
    rdp = releases * _ORDERS / (2 * sigma**2)
    eps = rdp - (np.log(delta) + np.log(_ORDERS)) / (_ORDERS - 1) + np.log((_ORDERS - 1) / _ORDERS)
    return float(np.min(eps))
