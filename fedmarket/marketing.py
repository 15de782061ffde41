"""Marketing lift: the measurable form of "the model improves conversion rates".

A retailer with budget for k % of its customers targets those the model ranks highest.
Lift at k is their conversion rate divided by the base rate, the rate random targeting of
the same number of customers converts at in expectation. Lift 3 at 5 % means the targeted
5 % buy three times as often as a random 5 %. It is measured on held-out customers from
what they actually did; it is not a campaign experiment (targeting may change behaviour).

Ties: customers with equal scores are interchangeable to the model, so when the cut at
k % falls inside a block of tied scores, the targeted part of that block is credited with
the block's mean conversion (the exact expectation under random tie-breaking). The result
is deterministic and does not depend on row order, which matters for tree models whose
scores come in a few leaf values and for pooled test sets ordered by retailer. Conversions
can therefore be fractional.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from fedmarket.errors import ConfigError, DataError

DEFAULT_KS: Final[tuple[float, ...]] = (0.01, 0.05, 0.10, 0.20)

# The cut at which precision, recall and F1 are reported: a campaign contacts a share of its
# customers, not everyone above a probability. At a 13 % base rate a 0.5 threshold predicts
# almost no buyers, and a tuned threshold needs a validation split that runs do not have;
# "the top 10 %" needs neither and is the decision a retailer actually makes.
TARGETING_K: Final[float] = 0.10
THRESHOLD_RULE: Final[str] = (
    "Precision, recall and F1 at the top-10% cut: the 10% of test customers the model ranks "
    "highest count as predicted buyers (ties shared), the decision a campaign takes."
)


def _inputs(y_true: object, score: object) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise DataError("y_true: empty; lift needs at least one customer")
    if t.size != s.size:
        raise DataError(
            f"y_true has {t.size} values but score has {s.size}; "
            f"they must describe the same customers"
        )
    if not np.isfinite(s).all():
        raise DataError(
            f"score: {int((~np.isfinite(s)).sum())} non-finite values; "
            f"check the model output for NaN or inf"
        )
    labels = np.unique(t)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DataError(
            f"y_true: conversions must be 0 or 1, found {labels[:5].tolist()}; "
            f"for counts pass (y_count > 0)"
        )
    return t, s


def _expected_hits(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Conversion credited to each rank position, best score first, ties averaged.

    Hand-written because sklearn's ranking metrics return curves only at distinct
    thresholds, not the per-position expectation that lift at an arbitrary k needs.
    """
    order = np.argsort(-s, kind="stable")
    sorted_t, sorted_s = t[order], s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    sizes = np.diff(np.r_[starts, sorted_t.size])
    block_means = np.add.reduceat(sorted_t, starts) / sizes
    return np.repeat(block_means, sizes)


def _n_targeted(k: float, n: int) -> int:
    # round() first: 0.1 * 30 is 3.0000000000000004 in floating point and must not become 4.
    return max(1, math.ceil(round(k * n, 9)))


def lift_at_k(
    y_true: object, score: object, ks: Sequence[float] = DEFAULT_KS
) -> list[dict[str, float]]:
    """One row per k: who is targeted, how many convert, and the lift over random targeting.

    ``n_targeted`` is ceil(k * N), at least 1. ``base_rate`` is the overall conversion rate
    (the expected rate of random targeting); ``lift`` is NaN when it is 0 (no buyers at all).
    ``capture_rate`` is the share of all buyers among the targeted (NaN without buyers):
    lift says how much better than random the targeted are, capture how much of the market
    the campaign reaches (a tiny k can have a huge lift and still miss most buyers).
    """
    t, s = _inputs(y_true, score)
    for k in ks:
        if not 0.0 < k <= 1.0:
            raise ConfigError(f"k={k}: targeting fractions must lie in (0, 1]")
    cumulative = np.cumsum(_expected_hits(t, s))
    base_rate, total = float(t.mean()), float(t.sum())
    rows = []
    for k in ks:
        n_targeted = _n_targeted(k, t.size)
        conversions = float(cumulative[n_targeted - 1])
        rate = conversions / n_targeted
        rows.append(
            {
                "k": float(k),
                "n_targeted": n_targeted,
                "conversions": conversions,
                "conversion_rate": rate,
                "base_rate": base_rate,
                "lift": rate / base_rate if base_rate > 0 else math.nan,
                "capture_rate": conversions / total if total > 0 else math.nan,
            }
        )
    return rows


def targeting_metrics(row: dict[str, float]) -> dict[str, float]:
    """Precision, recall and F1 of "the targeted are the predicted buyers", from a lift row.

    They are the conversion rate and the capture rate under their classification names, so
    a reader comparing with other models' F1 gets one at a decision that is actually taken.
    """
    precision, recall = row["conversion_rate"], row["capture_rate"]
    denom = precision + recall  # NaN without buyers, 0 when none of the targeted buys
    f1 = 2 * precision * recall / denom if denom != 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def cumulative_gains(y_true: object, score: object) -> tuple[np.ndarray, np.ndarray]:
    """(fraction of customers targeted, fraction of all buyers captured), from (0, 0) to (1, 1).

    One point per customer plus the origin, ties averaged as in `lift_at_k`, so the curve
    is monotone and a random scorer follows the diagonal in expectation.
    """
    t, s = _inputs(y_true, score)
    total = t.sum()
    if total == 0:
        raise DataError("y_true has no buyers; the share of buyers captured is undefined")
    # Increments are >= 0, so clipping float drift above 1 and pinning the end keep it monotone.
    captured = np.minimum(np.r_[0.0, np.cumsum(_expected_hits(t, s)) / total], 1.0)
    captured[-1] = 1.0
    targeted = np.arange(t.size + 1, dtype=np.float64) / t.size
    return targeted, captured


def random_targeting_rate(
    y_true: object, k: float, rng: np.random.Generator, n_draws: int = 1000
) -> float:
    """Monte-Carlo mean conversion rate of targeting ceil(k * N) customers at random.

    A check that ``base_rate`` is the right yardstick: the count of buyers in a random subset
    drawn without replacement is hypergeometric, so this samples it directly.
    """
    if not 0.0 < k <= 1.0:
        raise ConfigError(f"k={k}: targeting fractions must lie in (0, 1]")
    if n_draws < 1:
        raise ConfigError(f"n_draws={n_draws}: need at least one draw")
    t, _ = _inputs(y_true, np.zeros(np.asarray(y_true).size))
    n_targeted = _n_targeted(k, t.size)
    positives = int(t.sum())
    hits = rng.hypergeometric(positives, t.size - positives, n_targeted, size=n_draws)
    return float(hits.mean() / n_targeted)


def at_key(name: str, k: float) -> str:
    """Flat metrics key for ``name`` at fraction k: ("capture", 0.05) -> ``capture_at_5``."""
    percent = round(k * 100, 6)
    return f"{name}_at_{int(percent)}" if percent == int(percent) else f"{name}_at_{percent:g}"


def lift_key(k: float) -> str:
    """Flat metrics key for lift at fraction k: 0.05 -> ``lift_at_5``."""
    return at_key("lift", k)


def report_keys(ks: Sequence[float] = DEFAULT_KS) -> tuple[str, ...]:
    """The flat numeric keys `marketing_report` adds besides ``base_rate``, so a report
    without buyers can hold the same keys (as NaN) and readers need no special case."""
    return (
        *(at_key(name, k) for name in ("lift", "capture") for k in ks),
        *(at_key(name, TARGETING_K) for name in ("precision", "recall", "f1")),
    )


def marketing_report(
    y_true: object, score: object, ks: Sequence[float] = DEFAULT_KS
) -> dict[str, Any]:
    """Flat ``lift_at_<pct>`` and ``capture_at_<pct>`` keys, precision/recall/F1 at the
    `TARGETING_K` cut (``precision_at_10`` ...), ``base_rate`` and the full table."""
    table = lift_at_k(y_true, score, ks)
    report: dict[str, Any] = {lift_key(row["k"]): row["lift"] for row in table}
    report.update({at_key("capture", row["k"]): row["capture_rate"] for row in table})
    (cut,) = lift_at_k(y_true, score, (TARGETING_K,))
    report.update({at_key(m, TARGETING_K): v for m, v in targeting_metrics(cut).items()})
    report["base_rate"] = table[0]["base_rate"]
    report["lift_table"] = table
    return report
