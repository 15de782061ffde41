"""Customers' JSON events to their top-k categories, through the code `fedmarket score` runs.

The service of a recommendation run (task next-categories) takes the same requests as the
propensity service and checks them the same way: the events become a frame that goes through
the batch validator, an event at or after ``as_of`` is refused, and so on; these steps are
``Scorer``'s, inherited. What differs is the end: each customer's history is built with
``featurise_rec_frames`` in the run's window moved to its ``as_of`` and ranked with
``rank_inputs``, the functions behind `fedmarket score`'s list, so a customer gets the same
categories and scores from both.

A customer without any category event in the window is ranked by the popularity of the
retailer the service was started for (``retailer``; the popularity over every training
customer when it is none of the run's partitions), the evaluation's cold-start path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.errors import DataError
from fedmarket.experiments.serve.schema import ScoreRequest
from fedmarket.experiments.serve.scorer import Limits, Loc, RequestError, Scorer
from fedmarket.scoring.rec_featurise import RecInputs, featurise_rec_frames
from fedmarket.scoring.rec_model import RecModel
from fedmarket.scoring.rec_rank import rank_inputs

MAX_K = 100  # categories per customer a request may ask for
DEFAULT_K = 10


class RecScorer(Scorer):
    """Ranks requests' categories with one run's recommender; ``Scorer`` checks the events."""

    def __init__(self, model: RecModel, limits: Limits, retailer: str = "") -> None:
        # not Scorer.__init__: there is no propensity model and no decision; the checks used
        # here read ``limits`` only
        self.model, self.limits, self.retailer = model, limits, retailer

    def score(self, customers: Sequence[ScoreRequest], prefixes: Sequence[Loc]) -> list[dict]:
        return self.recommend(customers, prefixes)

    def recommend(
        self,
        customers: Sequence[ScoreRequest],
        prefixes: Sequence[Loc],
        *,
        k: int = DEFAULT_K,
        exclude_bought: bool = False,
    ) -> list[dict[str, Any]]:
        """One result per customer, in order: its ``k`` best categories with their scores."""
        valid, who, as_of = self._checked(customers, prefixes)
        out: list[dict[str, Any]] = [{} for _ in customers]
        for members, inputs in self._histories(valid, who, as_of, prefixes, exclude_bought):
            ranked = rank_inputs(self.model, inputs, k=k, exclude_bought=exclude_bought)
            items = self.model.items
            for row, m in enumerate(members):
                listed = ranked.item[row] >= 0
                out[m] = {
                    "customer_id": customers[m].customer_id,
                    "as_of": f"{as_of[m]:%Y-%m-%d}",
                    "recommendations": [
                        {"category": items[i], "score": float(s)}
                        for i, s in zip(
                            ranked.item[row][listed], ranked.score[row][listed], strict=True
                        )
                    ],
                    "cold": bool(ranked.cold[row]),
                }
        return out

    def _histories(
        self,
        valid: pd.DataFrame,
        who: np.ndarray,
        as_of: list[pd.Timestamp],
        prefixes: Sequence[Loc],
        bought: bool,
    ) -> list[tuple[np.ndarray, RecInputs]]:
        """(customers, their inputs in that order): one featurisation per distinct ``as_of``."""
        dates = np.array([a.value for a in as_of], dtype=np.int64)
        groups = []
        for day in np.unique(dates):
            members = np.flatnonzero(dates == day)
            rows = valid if len(members) == len(as_of) else valid[np.isin(who, members)]
            window = self.model.window_at(pd.Timestamp(int(day), unit="ns", tz="UTC"))
            try:
                inputs = featurise_rec_frames(
                    self.model, [rows], window, retailer=self.retailer, bought=bought
                )
                found = {str(c): k for k, c in enumerate(inputs.customer)}
            except DataError:  # none of them is active in the window
                found = {}
            for m in members:
                if str(m) not in found:
                    raise RequestError(
                        (*prefixes[m], "events"),
                        f"no event in the model's window [{window.start:%Y-%m-%d}, "
                        f"{window.cutoff:%Y-%m-%d}) ({window.window_days} days before as_of): "
                        "the model ranks for customers active in it",
                        "no_event_in_window",
                    )
            groups.append((members, inputs.take(np.array([found[str(m)] for m in members]))))
        return groups
