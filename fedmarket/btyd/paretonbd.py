"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987).

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha) and
dies after an exponential lifetime with rate mu ~ Gamma(s, beta), independent. The
likelihood is written as in Fader, Hardie & Lee (2005), "A note on deriving the
Pareto/NBD model and related expressions":

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ (alpha+T)^-(r+x) (beta+T)^-s
          + s/(r+s+x) * A0 ],
    A0 = F(t_x) - F(T),  F(y) = 2F1(r+s+x, k; r+s+x+1; |alpha-beta|/(m+y)) / (m+y)^(r+s+x)

with m = max(alpha, beta) and k = s+1 when alpha >= beta, else k = r+x (the usual choice
that keeps the argument in [0, 1)). The 2F1 goes through Euler's transformation,
2F1(c-1, k; c; z) = (1-z)^(1-k) 2F1(1, c-k; c; z), so its logarithm stays finite for large
x. The gradient (for the federated fit) is a central difference of the per-customer
log-likelihood in the log-parameters (step 1e-5, error ~1e-10): 2F1 has no closed-form
derivative in its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, hyp2f1

from fedmarket.btyd.data import CustomerHistory
from fedmarket.btyd.optimise import LikelihoodModel, Optimum, maximise, pooled_sums

PARAM_NAMES = ("r", "alpha", "s", "beta")
_STEP = 1e-5
# Gauss-Legendre nodes for P(no purchase): the integrand is smooth and monotone on [0, t].
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)


def _log_f(rsx: np.ndarray, k: np.ndarray, m: float, diff: float, y: np.ndarray) -> np.ndarray:
    """log F(y) of the module docstring, through Euler's transformation."""
    z = diff / (m + y)
    return (
        (1 - k) * np.log1p(-z) + np.log(hyp2f1(1.0, rsx + 1 - k, rsx + 1, z)) - rsx * np.log(m + y)
    )


def _parts(theta: np.ndarray, h: CustomerHistory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log of the leading factor, of the alive-at-T term, and of the died-in-(t_x, T] term."""
    r, alpha, s, beta = theta
    x, t_x, T = h.x, h.t_x, h.T
    lead = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    rsx = r + s + x
    k = np.full_like(x, s + 1) if alpha >= beta else r + x
    m, diff = max(alpha, beta), abs(alpha - beta)
    f_tx, f_T = _log_f(rsx, k, m, diff, t_x), _log_f(rsx, k, m, diff, T)
    with np.errstate(divide="ignore"):
        a0 = f_tx + np.log(-np.expm1(np.minimum(f_T - f_tx, 0.0)))  # log(F(t_x) - F(T))
    return lead, alive, np.log(s / rsx) + a0


def loglik(theta: np.ndarray, h: CustomerHistory) -> np.ndarray:
    """Per-customer log-likelihood at ``theta`` = (r, alpha, s, beta)."""
    lead, alive, died = _parts(np.asarray(theta, dtype=np.float64), h)
    return lead + np.logaddexp(alive, died)


def loglik_grad(theta: np.ndarray, h: CustomerHistory) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood (n,) and its central-difference gradient in the
    log-parameters (n, 4)."""
    log_theta = np.log(np.asarray(theta, dtype=np.float64))
    grad = np.empty((len(h), len(log_theta)))
    for j in range(len(log_theta)):
        step = np.zeros_like(log_theta)
        step[j] = _STEP
        up, down = loglik(np.exp(log_theta + step), h), loglik(np.exp(log_theta - step), h)
        grad[:, j] = (up - down) / (2 * _STEP)
    return loglik(theta, h), grad


MODEL = LikelihoodModel(
    name="pareto-nbd",
    param_names=PARAM_NAMES,
    loglik_grad=loglik_grad,
    starts=((1.0, 1.0, 1.0, 1.0), (0.5, 10.0, 0.5, 10.0), (0.2, 5.0, 2.0, 20.0)),
)


@dataclass(frozen=True)
class ParetoNBDFit:
    """Fitted Pareto/NBD parameters and the per-customer predictions they give."""

    r: float
    alpha: float
    s: float
    beta: float
    loglik: float = float("nan")  # at the fit; nan for parameters given by hand
    n: int = 0  # customers fitted on
    optimum: Optimum | None = None  # how the optimiser got there

    @classmethod
    def from_optimum(cls, optimum: Optimum) -> ParetoNBDFit:
        r, alpha, s, beta = (float(v) for v in optimum.params)
        return cls(r, alpha, s, beta, optimum.loglik, optimum.n, optimum)

    @property
    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "s": self.s, "beta": self.beta}

    def p_alive(self, h: CustomerHistory) -> np.ndarray:
        """P(alive at T | history): the alive-at-T term's share of the likelihood."""
        _, alive, died = _parts(np.array([self.r, self.alpha, self.s, self.beta]), h)
        return np.exp(alive - np.logaddexp(alive, died))

    def expected_transactions(self, t: float, h: CustomerHistory) -> np.ndarray:
        """E[purchases in (T, T+t] | history] = P(alive) (r+x)(beta+T)/((alpha+T)(s-1))
        [1 - ((beta+T)/(beta+T+t))^(s-1)], written with expm1 so s near 1 (the limit is
        a logarithm) is exact."""
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        B = beta + h.T
        log_q = np.log(B) - np.log(B + t)
        lifetime = -log_q if abs(s - 1) < 1e-12 else -np.expm1((s - 1) * log_q) / (s - 1)
        return self.p_alive(h) * (r + h.x) / (alpha + h.T) * B * lifetime

    def p_no_purchase(self, t: float, h: CustomerHistory) -> np.ndarray:
        """P(no purchase in (T, T+t] | history).

        Given alive at T, lambda ~ Gamma(r+x, alpha+T) and mu ~ Gamma(s, beta+T)
        independently (the history's likelihood is lambda^x e^-(lambda+mu)T). No purchase
        means: survive t with none, or die at u < t with none before, so (A = alpha+T,
        B = beta+T)

            (A/(A+t))^(r+x) (B/(B+t))^s + int_0^t s/(B+u) (B/(B+u))^s (A/(A+u))^(r+x) du,

        the expectation over the posterior done in closed form inside and the integral over
        u by 64-point Gauss-Legendre quadrature on [0, t] (fixed nodes: deterministic;
        checked against scipy's adaptive quad in the tests).
        """
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        A, B, shape = (alpha + h.T)[:, None], (beta + h.T)[:, None], (r + h.x)[:, None]
        u = 0.5 * t * (_NODES + 1)[None, :]
        density = s / (B + u) * (B / (B + u)) ** s * (A / (A + u)) ** shape
        died_quiet = 0.5 * t * density @ _WEIGHTS
        survived_quiet = ((A / (A + t)) ** shape * (B / (B + t)) ** s)[:, 0]
        alive = self.p_alive(h)
        return (1 - alive) + alive * (survived_quiet + died_quiet)

    def p_purchase(self, t: float, h: CustomerHistory) -> np.ndarray:
        """P(at least one purchase in (T, T+t] | history)."""
        return 1 - self.p_no_purchase(t, h)


def fit_paretonbd(history: CustomerHistory) -> ParetoNBDFit:
    """The pooled maximum-likelihood fit on ``history``."""
    return ParetoNBDFit.from_optimum(maximise(MODEL, pooled_sums(MODEL, history)))
