"""Gamma-Gamma spend model (Colombo & Jiang 1999; Fader, Hardie & Lee 2005, "RFM and
CLV: using iso-value curves for customer base analysis"; Fader & Hardie's note "The
Gamma-Gamma model of monetary value").

A customer's transaction values are Gamma(p, nu) with nu ~ Gamma(q, gamma) across
customers, independent of the transaction process, so the mean m of x transactions is
Gamma(p x, nu x) and, marginally,

    L = Gamma(p x + q) / (Gamma(p x) Gamma(q)) gamma^q m^(p x - 1) x^(p x)
        / (gamma + m x)^(p x + q).

Fitted on repeat customers only (x > 0, m > 0), as in the literature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from fedmarket.btyd.optimise import LikelihoodModel, Optimum, maximise, pooled_sums
from fedmarket.errors import DataError

PARAM_NAMES = ("p", "q", "gamma")


@dataclass(frozen=True)
class Spend:
    """Repeat customers' transaction counts ``x`` (> 0) and mean spend ``m`` (> 0)."""

    x: np.ndarray
    m: np.ndarray

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float64).reshape(-1)
        m = np.asarray(self.m, dtype=np.float64).reshape(-1)
        if len(x) != len(m):
            raise DataError(f"spend: x and m have lengths {len(x)} and {len(m)}; give one each")
        bad = ~(np.isfinite(x) & np.isfinite(m)) | (x <= 0) | (x != np.round(x)) | (m <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"spend row {i} (x={x[i]}, m={m[i]}): needs a whole x > 0 and a finite mean "
                "spend m > 0; keep only repeat customers with positive spend"
            )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "m", m)

    def __len__(self) -> int:
        return len(self.x)


def loglik_grad(theta: np.ndarray, spend: Spend) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood (n,) and its analytic gradient in log(p, q, gamma)."""
    p, q, g = theta
    x, m = spend.x, spend.m
    px = p * x
    log_gm = np.log(g + m * x)
    ll = (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
        + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * log_gm
    )  # fmt: skip
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_gm)
    d_q = digamma(px + q) - digamma(q) + np.log(g) - log_gm
    d_g = q / g - (px + q) / (g + m * x)
    return ll, np.stack([d_p, d_q, d_g], axis=1) * np.asarray(theta)


@dataclass(frozen=True)
class GammaGammaFit:
    """Fitted Gamma-Gamma parameters and conditional expected average spend."""

    p: float
    q: float
    gamma: float
    loglik: float = float("nan")  # at the fit; nan for parameters given by hand
    n: int = 0  # customers fitted on
    optimum: Optimum | None = None  # how the optimiser got there

    @property
    def params(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    def expected_average_spend(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """E[mean transaction value | x, m] = (gamma + m x) p / (p x + q - 1): a weighted
        mean of the population mean p gamma / (q - 1) and the customer's own m. A customer
        with x == 0 gets the population mean. Needs q > 1 (a finite population mean)."""
        if not self.q > 1:
            raise DataError(
                f"gamma-gamma: q = {self.q:.4g} <= 1, so the mean spend is infinite; the "
                "model does not fit this data"
            )
        x = np.asarray(x, dtype=np.float64)
        m = np.where(x > 0, np.asarray(m, dtype=np.float64), 0.0)
        return (self.gamma + m * x) * self.p / (self.p * x + self.q - 1)


MODEL = LikelihoodModel(
    name="gamma-gamma",
    param_names=PARAM_NAMES,
    loglik_grad=loglik_grad,
    starts=((1.0, 1.0, 1.0), (5.0, 3.0, 10.0), (1.0, 2.0, 50.0)),
)


def fit_gammagamma(spend: Spend) -> GammaGammaFit:
    """The maximum-likelihood fit on repeat customers' (x, mean spend)."""
    optimum = maximise(MODEL, pooled_sums(MODEL, spend))
    p, q, g = (float(v) for v in optimum.params)
    return GammaGammaFit(p, q, g, optimum.loglik, optimum.n, optimum)
