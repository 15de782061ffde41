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
    """
    t, s = _inputs(y_true, score)
    for k in ks:
        if not 0.0 < k <= 1.0:
            raise ConfigError(f"k={k}: targeting fractions must lie in (0, 1]")
    cumulative = np.cumsum(_expected_hits(t, s))
    base_rate = float(t.mean())
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
            }
        )
    return rows


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


def lift_key(k: float) -> str:
    """Flat metrics key for lift at fraction k: 0.05 -> ``lift_at_5``."""
    percent = round(k * 100, 6)
    return f"lift_at_{int(percent)}" if percent == int(percent) else f"lift_at_{percent:g}"


def marketing_report(
    y_true: object, score: object, ks: Sequence[float] = DEFAULT_KS
) -> dict[str, Any]:
    """Flat ``lift_at_<pct>`` keys plus ``base_rate`` and the full table, for metrics.json."""
    table = lift_at_k(y_true, score, ks)
    report: dict[str, Any] = {lift_key(row["k"]): row["lift"] for row in table}
    report["base_rate"] = table[0]["base_rate"]
    report["lift_table"] = table
    return report
