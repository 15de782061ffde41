"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after
each purchase they drop out with probability p ~ Beta(a, b). Per customer (x, t_x, T):

    L = Gamma(r+x) alpha^r / Gamma(r) * [ B(a, b+x)/B(a, b) (alpha+T)^-(r+x)
          + [x>0] B(a+1, b+x-1)/B(a, b) (alpha+t_x)^-(r+x) ]

computed in logs (gammaln, log-sum-exp). The gradient is analytic (digamma), so a
retailer can return it for the federated fit; the tests check it against finite
differences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import digamma, gammaln, hyp2f1

from fedmarket.btyd.data import CustomerHistory
from fedmarket.btyd.optimise import LikelihoodModel, Optimum, maximise, pooled_sums

PARAM_NAMES = ("r", "alpha", "a", "b")


def _terms(theta: np.ndarray, h: CustomerHistory) -> tuple[np.ndarray, ...]:
    """log of the leading factor, of the "still alive at T" term and of the "dropped out
    after the last purchase" term (-inf when x == 0)."""
    r, alpha, a, b = theta
    x, t_x, T = h.x, h.t_x, h.T
    lead = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    beta_ratio = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    alive = beta_ratio - (r + x) * np.log(alpha + T)
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            repeat,
            beta_ratio + np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return lead, alive, dropped


def loglik_grad(theta: np.ndarray, h: CustomerHistory) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood (n,) and its gradient in log(r, alpha, a, b) (n, 4)."""
    r, alpha, a, b = theta
    x, t_x, T = h.x, h.t_x, h.T
    lead, alive, dropped = _terms(theta, h)
    mix = np.logaddexp(alive, dropped)
    w_alive, w_drop = np.exp(alive - mix), np.exp(dropped - mix)  # shares of the two terms
    shared_ab = digamma(a + b) - digamma(a + b + x)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_bx1 = np.where(x > 0, 1.0 / (b + x - 1), 0.0)
    d_r = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - w_alive * np.log(alpha + T)
        - w_drop * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - (r + x) * (w_alive / (alpha + T) + w_drop / (alpha + t_x))
    d_a = shared_ab + w_drop / a
    d_b = shared_ab + digamma(b + x) - digamma(b) - w_drop * inv_bx1
    grad = np.stack([d_r, d_alpha, d_a, d_b], axis=1) * np.asarray(theta)  # chain rule to logs
    return lead + mix, grad


def loglik(theta: np.ndarray, h: CustomerHistory) -> np.ndarray:
    """Per-customer log-likelihood at ``theta`` = (r, alpha, a, b)."""
    lead, alive, dropped = _terms(np.asarray(theta, dtype=np.float64), h)
    return lead + np.logaddexp(alive, dropped)


MODEL = LikelihoodModel(
    name="bg-nbd",
    param_names=PARAM_NAMES,
    loglik_grad=loglik_grad,
    starts=((1.0, 1.0, 1.0, 1.0), (0.5, 5.0, 0.5, 2.0), (0.2, 10.0, 2.0, 5.0)),
)


@dataclass(frozen=True)
class BGNBDFit:
    """Fitted BG/NBD parameters and the per-customer predictions they give."""

    r: float
    alpha: float
    a: float
    b: float
    loglik: float = float("nan")  # at the fit; nan for parameters given by hand
    n: int = 0  # customers fitted on
    optimum: Optimum | None = None  # how the optimiser got there

    @classmethod
    def from_optimum(cls, optimum: Optimum) -> BGNBDFit:
        r, alpha, a, b = (float(v) for v in optimum.params)
        return cls(r, alpha, a, b, optimum.loglik, optimum.n, optimum)

    @property
    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def _log_odds_dropped(self, h: CustomerHistory) -> np.ndarray:
        """log P(dropped out after the last purchase) - log P(alive), per customer."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = (
                np.log(a)
                - np.log(b + h.x - 1)
                + (r + h.x) * (np.log(alpha + h.T) - np.log(alpha + h.t_x))
            )
        return np.where(h.x > 0, odds, -np.inf)

    def p_alive(self, h: CustomerHistory) -> np.ndarray:
        """P(still alive at T | history) (FHL 2005, eq. 11); 1 for x == 0, since in BG/NBD
        a customer can drop out only right after a purchase."""
        return np.exp(-np.logaddexp(0.0, self._log_odds_dropped(h)))

    def expected_transactions(self, t: float, h: CustomerHistory) -> np.ndarray:
        """E[purchases in (T, T+t] | history] (FHL 2005, eq. 10).

        The hypergeometric term uses Euler's transformation, 2F1(a,b;c;z) =
        (1-z)^(c-a-b) 2F1(c-a,c-b;c;z), so that ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x;
        a+b+x-1; z) becomes ((alpha+T)/(alpha+T+t))^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z),
        whose size no longer grows with x. At a = 1 the formula is 0/0 with a smooth limit:
        within 1e-7 of a = 1 it is the mean of the values at a = 1 +- 1e-5 (error ~1e-10).
        """
        if abs(self.a - 1) < 1e-7:
            return 0.5 * sum(
                replace(self, a=1 + d).expected_transactions(t, h) for d in (-1e-5, 1e-5)
            )
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x, T = h.x, h.T
        z = t / (alpha + T + t)
        tail = ((alpha + T) / (alpha + T + t)) ** (a - 1) * hyp2f1(
            a + b - 1 - r, a - 1, a + b + x - 1, z
        )
        return (a + b + x - 1) / (a - 1) * (1 - tail) * self.p_alive(h)

    def p_no_purchase(self, t: float, h: CustomerHistory) -> np.ndarray:
        """P(no purchase in (T, T+t] | history): dead, or alive with none in t (while
        alive with no purchase the customer cannot drop out)."""
        alive = self.p_alive(h)
        quiet = ((self.alpha + h.T) / (self.alpha + h.T + t)) ** (self.r + h.x)
        return (1 - alive) + alive * quiet

    def p_purchase(self, t: float, h: CustomerHistory) -> np.ndarray:
        """P(at least one purchase in (T, T+t] | history)."""
        return 1 - self.p_no_purchase(t, h)


def fit_bgnbd(history: CustomerHistory) -> BGNBDFit:
    """The pooled maximum-likelihood fit on ``history``."""
    return BGNBDFit.from_optimum(maximise(MODEL, pooled_sums(MODEL, history)))
