"""Confidence intervals for the metrics fedmarket reports, and the warning a small test set
deserves.

A ROC-AUC of 0.81 on 7 buyers and one on 7,000 are different claims; DESIGN.md asks every
estimate to carry its interval. scikit-learn reports none, so the three closed forms used
here are written out, each deterministic (no bootstrap: the same test set always gives the
same interval, in microseconds, in every table and every round):

* ROC-AUC: DeLong et al. (1988). The AUC is a two-sample U-statistic; its variance is
  ``var(V10) / m + var(V01) / n`` from the placements (structural components) of the ``m``
  positives and ``n`` negatives. Normal interval, clipped to [0, 1]. When the two classes
  are perfectly separated every placement is 1 and the interval collapses to (1, 1): an
  artefact of the method (worst on tiny test sets, which ``small_test_warning`` flags).
* PR-AUC (average precision): the logit interval of Boyd, Eng & Page (2013, "Area under the
  precision-recall curve: point estimates and confidence intervals", ECML PKDD), one of the
  two closed forms they found to cover well (no resampling):
  ``logit(AP) ± z / sqrt(n_pos · AP · (1 - AP))``, back-transformed, so it stays inside
  (0, 1) and is asymmetric near the ends.
* Pearson and Spearman correlation: Fisher's z, ``atanh(r) ± z · se``, back-transformed with
  ``tanh``; ``se = 1 / sqrt(n - 3)`` for Pearson, ``sqrt(1.06 / (n - 3))`` for Spearman
  (Fieller, Hartley & Pearson 1957).

An interval (or a count) describes one test set: never average one across clients
(``fedmarket.metrics.ONE_TEST_SET_KEYS`` names the keys that must not be).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from statistics import NormalDist
from typing import Any, Final

import numpy as np

from fedmarket.errors import ConfigError, DataError

CONFIDENCE: Final[float] = 0.95
# Below this many buyers (or non-buyers) in the test set, ranking metrics move by several
# hundredths between resamples: the warning says so instead of letting a table rank models.
SMALL_TEST_MINIMUM: Final[int] = 30
NAN_INTERVAL: Final[tuple[float, float]] = (math.nan, math.nan)


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence}: must lie strictly between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def delong_interval(
    scores: np.ndarray, is_positive: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Normal-approximation interval of the ROC-AUC with DeLong's variance, clipped to [0, 1].

    The placement of a positive is the share of negatives it outscores (ties count half),
    that of a negative the share of positives outscoring it; the AUC is the mean placement,
    and its variance is ``var(positive placements) / m + var(negative placements) / n``.
    Midranks give every placement in O(N log N). NaN when either class has fewer than two
    examples (a variance needs two).
    """
    z = _z(confidence)
    is_positive = np.asarray(is_positive, dtype=bool)
    m, n = int(is_positive.sum()), int((~is_positive).sum())
    if m < 2 or n < 2:
        return NAN_INTERVAL
    pos_place, neg_place = delong_placements(scores, is_positive)
    auc = float(pos_place.mean())
    se = float(np.sqrt(pos_place.var(ddof=1) / m + neg_place.var(ddof=1) / n))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def delong_placements(scores: Any, is_positive: Any) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: each positive's placement (the share of negatives it
    outscores, ties half) and each negative's (the share of positives outscoring it); their
    means are the AUC. Midranks give them in O(N log N). Needs a positive and a negative."""
    from scipy.stats import rankdata  # here: the CLI formats intervals without scipy

    scores, is_positive = np.asarray(scores, dtype=float), np.asarray(is_positive, dtype=bool)
    pos, neg = scores[is_positive], scores[~is_positive]
    m, n = len(pos), len(neg)
    rank_all = rankdata(np.concatenate([pos, neg]))
    return (rank_all[:m] - rankdata(pos)) / n, 1.0 - (rank_all[m:] - rankdata(neg)) / m


def average_precision_interval(
    average_precision: float, n_positive: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The logit interval of Boyd, Eng & Page (2013) for the average precision (PR-AUC).

    ``logit(AP) ± z / sqrt(n_positive · AP · (1 - AP))``, back-transformed. At AP = 1 (or 0)
    the width is infinite and the interval is its limit, (0, 1): perfect ranking on a test
    set says nothing precise about the next one. NaN when AP is NaN or there are no
    positives.
    """
    z = _z(confidence)
    if n_positive < 0:
        raise DataError(f"n_positive={n_positive}: a count of buyers cannot be negative")
    ap = float(average_precision)
    if math.isnan(ap) or n_positive == 0:
        return NAN_INTERVAL
    if not 0.0 <= ap <= 1.0:
        raise DataError(f"average precision {ap}: must lie in [0, 1]")
    if ap in (0.0, 1.0):
        return 0.0, 1.0
    centre = math.log(ap / (1.0 - ap))
    half = z / math.sqrt(n_positive * ap * (1.0 - ap))
    return _logistic(centre - half), _logistic(centre + half)


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def fisher_z_interval(
    r: float, n: int, confidence: float = CONFIDENCE, *, spearman: bool = False
) -> tuple[float, float]:
    """Fisher-z interval of a Pearson (or, with ``spearman``, a Spearman) correlation ``r``
    over ``n`` pairs; NaN when ``r`` is NaN or n <= 3, (r, r) when |r| = 1."""
    z = _z(confidence)
    if math.isnan(r) or n <= 3:
        return NAN_INTERVAL
    if not -1.0 <= r <= 1.0:
        raise DataError(f"correlation {r}: must lie in [-1, 1]")
    if abs(r) == 1.0:
        return r, r
    se = math.sqrt((1.06 if spearman else 1.0) / (n - 3))
    centre = math.atanh(r)
    return math.tanh(centre - z * se), math.tanh(centre + z * se)


def small_test_warning(
    n_positive: int, n_negative: int, minimum: int = SMALL_TEST_MINIMUM
) -> str | None:
    """A sentence when the test set has fewer than ``minimum`` buyers or non-buyers, None
    otherwise: with few of either class, ROC-AUC and PR-AUC move by several hundredths from
    one draw of customers to the next, and two models' order on it is mostly chance."""
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise ConfigError(f"minimum={minimum!r}: must be a whole number >= 1")
    counts = {"buyers": n_positive, "non-buyers": n_negative}
    for name, count in counts.items():
        if isinstance(count, float) and count.is_integer():
            counts[name] = int(count)
        if not isinstance(counts[name], int) or counts[name] < 0:
            raise DataError(f"{name}: expected a count >= 0, got {count!r}")
    short = [f"{count:,} {name}" for name, count in counts.items() if count < minimum]
    if not short:
        return None
    return (
        f"the test set has only {' and '.join(short)} (fewer than {minimum}): ROC-AUC and "
        "PR-AUC intervals are wide; do not rank models on it"
    )


def report_warning(report: Mapping[str, Any], minimum: int = SMALL_TEST_MINIMUM) -> str | None:
    """``small_test_warning`` for a metrics report (its ``n_positive`` and ``n_negative``);
    None when the report has no counts (a file written before they were reported)."""
    n_positive, n_negative = report.get("n_positive"), report.get("n_negative")
    if not _finite(n_positive) or not _finite(n_negative):
        return None
    return small_test_warning(int(n_positive), int(n_negative), minimum)


def interval_keys(key: str) -> tuple[str, str]:
    """The keys of the 95 % interval of metric ``key`` in a report: ``(key_low, key_high)``."""
    return f"{key}_low", f"{key}_high"


def metric_cell(report: Mapping[str, Any], key: str, plain: Callable[[Any], str]) -> str:
    """A table cell for ``report[key]``: with its interval (``0.812 (0.791-0.833)``) where
    the report has a finite one, else ``plain(value)``, each table's own number format."""
    value = report.get(key)
    low, high = (report.get(k) for k in interval_keys(key))
    if _finite(value) and _finite(low) and _finite(high):
        return with_interval(value, low, high)
    return plain(value)


def with_interval(value: object, low: object, high: object, digits: int = 3) -> str:
    """``0.812 (0.791-0.833)``: a number and its interval as every table shows them
    (``-0.120 (-0.310 to 0.080)`` when a bound is negative); the number alone when the
    interval is missing, ``n/a`` when the number is."""
    if not _finite(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    if _finite(low) and _finite(high):
        between = "-" if min(low, high) >= 0 else " to "  # a minus sign is not a dash
        text += f" ({low:.{digits}f}{between}{high:.{digits}f})"
    return text


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
