"""Who to contact: a scored customer list turned into a campaign's selection and control group.

Three rules a marketing lead can reason about:

* ``top_fraction`` k: the k share of customers the model ranks highest (ceil(k N), at least 1,
  as ``fedmarket.marketing`` counts its top k %);
* ``top_n`` N: the N ranked highest (all of them when there are fewer);
* expected profit: everyone whose expected return of a contact is positive,
  ``p x margin - contact_cost > 0`` (``expected purchases x margin - contact_cost`` when the
  run predicts purchase counts).

The profit rule assumes the model's probability is the probability that the customer buys *if
contacted*: fedmarket fits no uplift model, so it cannot tell the customers a contact persuades
from those who would have bought anyway, and contacting a sure buyer is counted as profit the
campaign did not cause. It is also only as good as the calibration: a model whose 0.3 means 0.15
contacts twice the customers it should. The control group (``holdout_fraction``) is what measures
the real effect afterwards (`fedmarket campaign-report`).

Ties: customers with equal scores are interchangeable to the model. Ranks break ties by a seeded
random order of the customer ids (sorted first), so the cut through a block of tied scores is
deterministic, independent of the row order of the export, and not tied to how ids were
assigned. Deciles follow the ranks (decile 1 = the best-ranked tenth).

The control group is drawn among the *selected* customers with a numpy Generator from the seed:
they are marked ``holdout`` and not contacted, so contacted and held-out customers differ only by
the contact. Pure numpy/pandas, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.errors import ConfigError, DataError

COLUMNS = ("rank", "decile", "selected", "holdout")


@dataclass(frozen=True)
class SelectionRule:
    """One of: ``top_fraction`` in (0, 1], ``top_n`` >= 1, or ``margin`` (with
    ``contact_cost``) for the profit rule. ``margin``/``contact_cost`` alongside a top rule
    only price the selection in the summary."""

    top_fraction: float | None = None
    top_n: int | None = None
    margin: float | None = None
    contact_cost: float = 0.0

    def __post_init__(self) -> None:
        if self.top_fraction is not None and self.top_n is not None:
            raise ConfigError("--top and --top-n both given; choose one selection rule")
        if self.top_fraction is not None and not 0.0 < self.top_fraction <= 1.0:
            raise ConfigError(
                f"--top {self.top_fraction:g}: the share of customers must lie in (0, 1] "
                "(e.g. --top 10%)"
            )
        if self.top_n is not None and self.top_n < 1:
            raise ConfigError(f"--top-n {self.top_n}: contact at least one customer")
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin >= 0):
            raise ConfigError(f"--margin {self.margin}: a margin per purchase is >= 0")
        if not (math.isfinite(self.contact_cost) and self.contact_cost >= 0):
            raise ConfigError(f"--contact-cost {self.contact_cost}: a cost per contact is >= 0")
        if self.top_fraction is None and self.top_n is None and self.margin is None:
            raise ConfigError(
                "no selection rule: give --top K% or --top-n N, or --margin M (and "
                "--contact-cost C) to contact everyone with a positive expected profit"
            )

    @property
    def by_profit(self) -> bool:
        return self.top_fraction is None and self.top_n is None

    def describe(self) -> str:
        if self.top_fraction is not None:
            return f"the top {100 * self.top_fraction:.4g}% of customers by score"
        if self.top_n is not None:
            return f"the top {self.top_n:,} customers by score"
        return (
            f"expected profit > 0 (margin {self.margin:g} per purchase, contact cost "
            f"{self.contact_cost:g})"
        )


@dataclass(frozen=True)
class TargetSummary:
    """What a selection promises, from the model's own probabilities (not an outcome)."""

    customers: int
    selected: int
    contacted: int
    holdout: int
    expected_buyers: float  # sum of P(buy) over the contacted
    expected_purchases: float | None  # sum of expected counts over the contacted (count runs)
    expected_lift: float  # mean P(buy) of the contacted / mean P(buy) of all (NaN if 0)
    expected_profit: float | None  # sum over the contacted of value x margin - cost

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked(propensity: object, customer: object, expected_count: object | None) -> tuple:
    p = np.asarray(propensity, dtype=np.float64).reshape(-1)
    ids = np.asarray(customer).astype(str).reshape(-1)
    if len(p) != len(ids):
        raise DataError(f"{len(p)} scores for {len(ids)} customers; give one score each")
    if not (np.isfinite(p) & (p >= 0) & (p <= 1)).all():
        raise DataError("propensity: probabilities must be finite and lie in [0, 1]")
    if len(np.unique(ids)) != len(ids):
        raise DataError("customer ids repeat; score each customer once")
    count = None
    if expected_count is not None:
        count = np.asarray(expected_count, dtype=np.float64).reshape(-1)
        if len(count) != len(p) or not (np.isfinite(count) & (count >= 0)).all():
            raise DataError("expected_count: one finite, non-negative count per customer")
    return p, ids, count


def rank_customers(score: object, customer: object, rng: np.random.Generator) -> np.ndarray:
    """Rank of each customer (1 = highest score); ties in a seeded random order of the ids."""
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    ids = np.asarray(customer).astype(str).reshape(-1)
    distinct = np.unique(ids)  # sorted: the tie order does not depend on row order
    tie_key = np.empty(len(distinct), dtype=np.int64)
    tie_key[rng.permutation(len(distinct))] = np.arange(len(distinct))
    key = tie_key[np.searchsorted(distinct, ids)]
    order = np.lexsort((key, -s))
    ranks = np.empty(len(s), dtype=np.int64)
    ranks[order] = np.arange(1, len(s) + 1)
    return ranks


def deciles(ranks: object) -> np.ndarray:
    """Decile 1..10 of each rank (1 = best): rank r of N is in decile ceil(10 r / N)."""
    r = np.asarray(ranks, dtype=np.int64)
    return np.ceil(10 * r / max(len(r), 1)).astype(np.int64).clip(1, 10)


def _n_selected(rule: SelectionRule, n: int) -> int | None:
    if rule.top_fraction is not None:
        # round() first: 0.1 * 30 is 3.0000000000000004 and must not become 4 (as marketing)
        return min(n, max(1, math.ceil(round(rule.top_fraction * n, 9))))
    if rule.top_n is not None:
        return min(n, rule.top_n)
    return None


def select(
    propensity: object,
    customer: object,
    rule: SelectionRule,
    *,
    expected_count: object | None = None,
    holdout_fraction: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """``rank``, ``decile``, ``selected``, ``holdout`` per customer, in the input's row order.

    Ranks follow the expected count when given (a count run), else the propensity.
    ``holdout`` customers are a seeded random ``round(holdout_fraction x selected)`` of the
    selected, drawn in rank order so the draw does not depend on row order either."""
    p, ids, count = _checked(propensity, customer, expected_count)
    if not 0.0 <= holdout_fraction < 1.0:
        raise ConfigError(
            f"--holdout-fraction {holdout_fraction}: the share of selected customers held out "
            "lies in [0, 1)"
        )
    rng = np.random.default_rng(seed)
    value = count if count is not None else p
    ranks = rank_customers(value, ids, rng)
    n_sel = _n_selected(rule, len(p))
    if n_sel is None:
        # the profit rule (SelectionRule guarantees a margin when no top rule is given)
        selected = value * float(rule.margin or 0.0) - rule.contact_cost > 0
    else:
        selected = ranks <= n_sel
    holdout = np.zeros(len(p), dtype=bool)
    chosen = np.flatnonzero(selected)[np.argsort(ranks[selected])]
    n_hold = math.floor(holdout_fraction * len(chosen) + 0.5)
    if n_hold:
        holdout[rng.choice(chosen, size=n_hold, replace=False)] = True
    return pd.DataFrame(
        {"rank": ranks, "decile": deciles(ranks), "selected": selected, "holdout": holdout},
        columns=list(COLUMNS),
    )


def summarise(
    propensity: object,
    targets: pd.DataFrame,
    rule: SelectionRule,
    *,
    expected_count: object | None = None,
) -> TargetSummary:
    """The numbers a campaign is planned on: who is contacted and what the model expects."""
    p = np.asarray(propensity, dtype=np.float64).reshape(-1)
    selected = targets["selected"].to_numpy(bool)
    holdout = targets["holdout"].to_numpy(bool)
    contacted = selected & ~holdout
    mean_all = float(p.mean()) if len(p) else math.nan
    lift = float(p[contacted].mean()) / mean_all if contacted.any() and mean_all > 0 else math.nan
    count = None if expected_count is None else np.asarray(expected_count, np.float64)
    profit = None
    if rule.margin is not None:
        value = count if count is not None else p
        profit = float(np.sum(value[contacted] * rule.margin - rule.contact_cost))
    return TargetSummary(
        customers=len(p),
        selected=int(selected.sum()),
        contacted=int(contacted.sum()),
        holdout=int(holdout.sum()),
        expected_buyers=float(p[contacted].sum()),
        expected_purchases=None if count is None else float(count[contacted].sum()),
        expected_lift=lift,
        expected_profit=profit,
    )
