"""Featurised customers -> each one's top-k categories, ranked as the run's evaluation ranks.

The scores are the model's (``RecModel.scores``), with the evaluation's cold-start path: a
customer without any category event in the window gets its retailer's popularity
(``baselines.with_cold_start``; ``RecModel.cold_start``). The order is
``fedmarket.recommend.metrics.ranks``': by score, ties by item index (lower first), so the HR@10
of these lists is the HR@10 the run reports for the same customers and weights.

``cold`` flags the customers the evaluation reports apart as cold: fewer than ``COLD_EVENTS``
category events in the window (those with none are the ones ranked by popularity).

``exclude_bought``: leave out the categories the customer already bought in the window (a list
for discovery rather than replenishment); nothing is left out by default, as in evaluation,
where a repeat purchase is a hit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedmarket.checks import integer
from fedmarket.errors import ConfigError
from fedmarket.recommend.data import COLD_EVENTS
from fedmarket.scoring.rec_featurise import RecInputs
from fedmarket.scoring.rec_model import ONE_CALL, RecModel

COLUMNS = ("retailer", "rank", "category", "score", "cold", "as_of")


@dataclass(frozen=True)
class Ranked:
    """Row i: customer i's top k; ``item`` -1 (and ``score`` NaN) past what is left to rank."""

    item: np.ndarray  # int64 [N, k], indices into the vocabulary's items
    score: np.ndarray  # float64 [N, k]
    cold: np.ndarray  # bool [N]


def rank_inputs(
    model: RecModel, inputs: RecInputs, *, k: int = 10, exclude_bought: bool = False
) -> Ranked:
    """Every customer's top ``k`` categories (see the module docstring), ``ONE_CALL``
    customers per model call."""
    k = min(integer("--top-k", k, at_least=1), len(model.items))
    if exclude_bought and inputs.bought is None:
        raise ConfigError("exclude_bought needs the window's purchases: featurise with bought=True")
    n = len(inputs)
    item = np.full((n, k), -1, dtype=np.int64)
    score = np.full((n, k), np.nan)
    fallback = model.cold_start(inputs.retailer)
    for lo in range(0, n, ONE_CALL):
        hi = min(lo + ONE_CALL, n)
        s = model.scores(inputs.X[lo:hi])
        empty = inputs.n_events[lo:hi] == 0
        s[empty] = fallback  # baselines.with_cold_start
        if exclude_bought:
            s[inputs.bought[lo:hi].toarray()] = -np.inf  # type: ignore[index]
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        got = np.take_along_axis(s, top, axis=1)
        left = np.isfinite(got)
        item[lo:hi] = np.where(left, top, -1)
        score[lo:hi] = np.where(left, got, np.nan)
    return Ranked(item, score, inputs.n_events < COLD_EVENTS)


def ranked_rows(
    model: RecModel, inputs: RecInputs, ranked: Ranked, *, id_column: str = "customer_id"
) -> pd.DataFrame:
    """One row per customer and rank: retailer, id, rank (1 = offer first), category, score,
    cold, as_of."""
    n, k = ranked.item.shape
    keep = ranked.item.reshape(-1) >= 0
    who = np.repeat(np.arange(n), k)[keep]
    items = np.asarray(model.items, dtype=object)
    frame = pd.DataFrame(
        {
            "retailer": np.full(len(who), inputs.retailer, dtype=object),
            id_column: np.asarray(inputs.customer).astype(str)[who],
            "rank": np.tile(np.arange(1, k + 1), n)[keep],
            "category": items[ranked.item.reshape(-1)[keep]],
            "score": ranked.score.reshape(-1)[keep],
            "cold": ranked.cold[who],
            "as_of": f"{inputs.window.cutoff:%Y-%m-%d}",
        }
    )
    return frame[[COLUMNS[0], id_column, *COLUMNS[1:]]]


@dataclass(frozen=True)
class RankSummary:
    """One retailer's lists in numbers: no customer in it."""

    customers: int
    cold: int
    categories: int  # of the vocabulary
    listed: int  # distinct categories in anyone's list
    unseen_events: int

    @property
    def cold_share(self) -> float:
        return self.cold / self.customers if self.customers else float("nan")

    @property
    def coverage(self) -> float:
        """The catalogue coverage of the lists (recommend.metrics' coverage@k)."""
        return self.listed / self.categories if self.categories else float("nan")


def summarise(model: RecModel, inputs: RecInputs, ranked: Ranked) -> RankSummary:
    listed = np.unique(ranked.item[ranked.item >= 0])
    return RankSummary(
        customers=len(inputs),
        cold=int(ranked.cold.sum()),
        categories=len(model.items),
        listed=len(listed),
        unseen_events=inputs.unseen_events,
    )
