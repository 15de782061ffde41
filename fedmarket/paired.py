"""Paired comparison of two models scored on the same customers: the difference, its interval.

Two models tested on the same customers make correlated errors, so the difference of their
metrics varies much less than either metric: intervals computed for each model alone overlap
where the paired difference is clearly not zero. Two methods, one result type:

* ROC-AUC: the paired test of DeLong, DeLong & Clarke-Pearson (1988, Biometrics 44:837),
  from the structural components of each AUC (per positive, the share of negatives it
  outranks; per negative, the share of positives that outrank it; ties count half). The
  components come from mid-ranks (Sun & Xu 2014, IEEE SPL 21:1389): O(n log n).
* Any other metric (PR-AUC, lift at 10 %, RMSE, Pearson's r for counts): a paired bootstrap,
  resampling customers with replacement (both models' scores move together), with the
  percentile interval and the two-sided p-value of that interval's inversion. Resamples on
  which a metric is undefined (no buyer drawn) are dropped and counted.

Both are asymptotic: with few positives or negatives (under 30 of either) the intervals are
rough, which ``small_test`` says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score

from fedmarket.errors import ConfigError, DataError
from fedmarket.intervals import delong_placements
from fedmarket.marketing import lift_at_k
from fedmarket.names import BINARY_TASKS, did_you_mean

SMALL_TEST: Final[int] = 30  # positives or negatives below which intervals are rough
DEFAULT_BOOTSTRAP: Final[int] = 2000


@dataclass(frozen=True)
class PairedDifference:
    """metric(A) - metric(B) on the same customers, its interval and two-sided p-value."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    method: str  # "delong" | "bootstrap"
    confidence: float = 0.95
    resamples: int | None = None  # bootstrap: resamples on which the metric was defined

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Metric:
    """A metric of (label, score): ``fn`` returns NaN where it is undefined."""

    fn: Callable[[np.ndarray, np.ndarray], float]
    tasks: tuple[str, ...]
    higher_is_better: bool
    description: str


def _checked(y: Any, score_a: Any, score_b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (y, score_a, score_b)]
    if len({a.size for a in arrays}) != 1:
        raise DataError(
            f"labels and the two models' scores must have one value per customer, got "
            f"{arrays[0].size}, {arrays[1].size} and {arrays[2].size}"
        )
    if arrays[0].size == 0:
        raise DataError("no customers to compare the models on")
    if not all(np.isfinite(a).all() for a in arrays):
        raise DataError("labels and scores must be finite numbers; NaN or inf found")
    return arrays[0], arrays[1], arrays[2]


def delong_components(y: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components (V10 per positive, V01 per negative); their means are
    the AUC. ``y`` is 0/1 (or a count: positive is > 0)."""
    positive = np.asarray(y, dtype=np.float64).reshape(-1) > 0
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise DataError(
            f"ROC-AUC needs buyers and non-buyers; the customers hold {m} buyers and {n} non-buyers"
        )
    return delong_placements(np.asarray(score, dtype=np.float64).reshape(-1), positive)


def paired_delong(
    y: Any, score_a: Any, score_b: Any, *, confidence: float = 0.95
) -> PairedDifference:
    """AUC(A) - AUC(B) with DeLong's paired variance, normal interval and two-sided p-value.

    Var = Var(V10_A - V10_B) / m + Var(V01_A - V01_B) / n (the contrast [1, -1] of DeLong's
    covariance matrix, written so that identical models give exactly 0). A zero variance
    (identical or perfectly separating models) gives a degenerate interval at the difference
    and a p-value of 1 (no difference) or 0, not NaN.
    """
    _confidence(confidence)
    y, a, b = _checked(y, score_a, score_b)
    v10_a, v01_a = delong_components(y, a)
    v10_b, v01_b = delong_components(y, b)
    if v10_a.size < 2 or v01_a.size < 2:
        raise DataError(
            f"DeLong's variance needs at least 2 buyers and 2 non-buyers; the customers hold "
            f"{v10_a.size} and {v01_a.size}"
        )
    auc_a, auc_b = float(v10_a.mean()), float(v10_b.mean())
    diff = auc_a - auc_b
    var = np.var(v10_a - v10_b, ddof=1) / v10_a.size + np.var(v01_a - v01_b, ddof=1) / v01_a.size
    se = math.sqrt(max(float(var), 0.0))
    z = float(norm.ppf(0.5 + confidence / 2))
    # a zero variance: no difference at all (p = 1), or a certain one (p = 0)
    p_value = float(2 * norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
    return PairedDifference(
        "roc_auc", auc_a, auc_b, diff, diff - z * se, diff + z * se, p_value, "delong", confidence
    )


def paired_bootstrap(
    y: Any,
    score_a: Any,
    score_b: Any,
    metric: str,
    *,
    rng: np.random.Generator,
    resamples: int = DEFAULT_BOOTSTRAP,
    confidence: float = 0.95,
) -> PairedDifference:
    """metric(A) - metric(B) with a paired percentile bootstrap over customers.

    Each resample draws customers with replacement and scores both models on the same draw.
    The p-value is two-sided, 2 * min(P(d* <= 0), P(d* >= 0)) capped at 1: where 0 falls in
    the bootstrap distribution (0 means below about 1 / resamples, not exactly 0).
    """
    _confidence(confidence)
    if resamples < 100:
        raise ConfigError(f"resamples={resamples}: use at least 100 bootstrap resamples")
    fn = get_metric(metric).fn
    y, a, b = _checked(y, score_a, score_b)
    value_a, value_b = fn(y, a), fn(y, b)
    if not (math.isfinite(value_a) and math.isfinite(value_b)):
        raise DataError(f"{metric} is undefined on these customers (no buyers, or no spread)")
    diffs = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, y.size, y.size)
        diffs[i] = fn(y[idx], a[idx]) - fn(y[idx], b[idx])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size < resamples / 2:
        raise DataError(
            f"{metric} was undefined on {resamples - diffs.size} of {resamples} bootstrap "
            "resamples (too few buyers); compare on more test customers"
        )
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    p_value = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return PairedDifference(
        metric,
        value_a,
        value_b,
        value_a - value_b,
        float(low),
        float(high),
        p_value,
        "bootstrap",
        confidence,
        int(diffs.size),
    )


def compare(
    y: Any,
    score_a: Any,
    score_b: Any,
    metric: str,
    *,
    rng: np.random.Generator,
    resamples: int = DEFAULT_BOOTSTRAP,
    confidence: float = 0.95,
) -> PairedDifference:
    """DeLong for ``roc_auc``, the paired bootstrap for every other metric."""
    if metric == "roc_auc":
        return paired_delong(y, score_a, score_b, confidence=confidence)
    return paired_bootstrap(
        y, score_a, score_b, metric, rng=rng, resamples=resamples, confidence=confidence
    )


def _confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence}: must lie strictly between 0 and 1")


def _both_classes(y: np.ndarray) -> bool:
    return bool(0 < np.count_nonzero(y > 0) < y.size)


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    if not _both_classes(y):
        return math.nan
    return float(delong_components(y, s)[0].mean())


def _pr_auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(average_precision_score(y > 0, s)) if _both_classes(y) else math.nan


def _lift_at_10(y: np.ndarray, s: np.ndarray) -> float:
    """Lift in the top 10 % on "buys at all" (count > 0), as every test report has it."""
    if not _both_classes(y):
        return math.nan
    return float(lift_at_k((y > 0).astype(np.float64), s, ks=(0.10,))[0]["lift"])


def _rmse(y: np.ndarray, s: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - s) ** 2)))


def _mae(y: np.ndarray, s: np.ndarray) -> float:
    return float(np.mean(np.abs(y - s)))


def _pearson(y: np.ndarray, s: np.ndarray) -> float:
    dy, ds = y - y.mean(), s - s.mean()
    denom = math.sqrt(float(dy @ dy) * float(ds @ ds))
    return float(dy @ ds) / denom if denom > 0 else math.nan


METRICS: Final[dict[str, Metric]] = {
    "roc_auc": Metric(_roc_auc, (*BINARY_TASKS, "purchase-count"), True, "ROC-AUC (DeLong)"),
    "pr_auc": Metric(_pr_auc, (*BINARY_TASKS, "purchase-count"), True, "average precision"),
    "lift_at_10": Metric(_lift_at_10, (*BINARY_TASKS, "purchase-count"), True, "lift at 10%"),
    "rmse": Metric(_rmse, ("purchase-count",), False, "root mean squared error"),
    "mae": Metric(_mae, ("purchase-count",), False, "mean absolute error"),
    "pearson": Metric(_pearson, ("purchase-count",), True, "Pearson's r"),
}
# What `fedmarket compare` reports when no metric is named.
DEFAULT_METRICS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(BINARY_TASKS, ("roc_auc", "pr_auc", "lift_at_10")),
    "purchase-count": ("rmse", "pearson", "lift_at_10"),
}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; ConfigError listing the known ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(
            f"unknown metric {name!r} for a paired comparison; {did_you_mean(name, METRICS)}"
            f"known: {', '.join(METRICS)}"
        ) from None
