"""A campaign's realised effect: contacted against held-out customers, after the fact.

`fedmarket score --holdout-fraction` draws the control group at random among the *selected*
customers, so contacted and held-out customers differ only by the contact: the difference of
their purchase rates in the weeks after is the campaign's effect on the customers it targets
(an estimate of the uplift the model itself does not predict), and its ratio is the realised
lift of contacting them.

Intervals: Newcombe's hybrid score interval for the difference of two independent
proportions (his method 10, from the two Wilson intervals; good coverage at small counts and
rates near 0, where the Wald interval fails), the Katz log interval for the ratio
(``scipy.stats.contingency.relative_risk``), and Fisher's exact test for the p-value.
statsmodels is not a dependency; scipy has each piece.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, fisher_exact
from scipy.stats.contingency import relative_risk

from fedmarket.errors import ConfigError, DataError


@dataclass(frozen=True)
class CampaignOutcome:
    """Purchase rates of the contacted and the held out in the report window."""

    contacted: int
    contacted_buyers: int
    holdout: int
    holdout_buyers: int
    difference: float  # rate contacted - rate held out
    difference_low: float
    difference_high: float
    ratio: float  # rate contacted / rate held out (inf when no held-out buyer)
    ratio_low: float
    ratio_high: float
    p_value: float  # Fisher's exact, two-sided
    predicted_contacted: float  # mean propensity: the model's purchase rate, no contact effect
    predicted_holdout: float
    confidence: float = 0.95

    @property
    def rate_contacted(self) -> float:
        return self.contacted_buyers / self.contacted

    @property
    def rate_holdout(self) -> float:
        return self.holdout_buyers / self.holdout

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "rate_contacted": self.rate_contacted,
            "rate_holdout": self.rate_holdout,
        }


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n."""
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 (Newcombe 1998, method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def campaign_outcome(
    bought: object,
    holdout: object,
    propensity: object,
    *,
    confidence: float = 0.95,
) -> CampaignOutcome:
    """The outcome among *selected* customers: ``bought`` and ``holdout`` are booleans per
    selected customer (True: held out, not contacted), ``propensity`` the model's score."""
    b = np.asarray(bought, dtype=bool).reshape(-1)
    h = np.asarray(holdout, dtype=bool).reshape(-1)
    p = np.asarray(propensity, dtype=np.float64).reshape(-1)
    if not len(b) == len(h) == len(p):
        raise DataError(f"{len(b)} outcomes, {len(h)} holdout marks, {len(p)} scores")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence {confidence}: must lie in (0, 1)")
    n1, n2 = int((~h).sum()), int(h.sum())
    if n1 == 0 or n2 == 0:
        raise DataError(f"{n1} contacted and {n2} held-out customers; the realised lift needs both")
    k1, k2 = int(b[~h].sum()), int(b[h].sum())
    low, high = newcombe(k1, n1, k2, n2, confidence)
    rr = relative_risk(k1, n1, k2, n2)
    ratio_ci = rr.confidence_interval(confidence_level=confidence)
    return CampaignOutcome(
        contacted=n1,
        contacted_buyers=k1,
        holdout=n2,
        holdout_buyers=k2,
        difference=k1 / n1 - k2 / n2,
        difference_low=low,
        difference_high=high,
        ratio=float(rr.relative_risk),
        ratio_low=float(ratio_ci.low),
        ratio_high=float(ratio_ci.high),
        p_value=float(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue),
        predicted_contacted=float(p[~h].mean()),
        predicted_holdout=float(p[h].mean()),
        confidence=confidence,
    )
