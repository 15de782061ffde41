"""What retailers agree on before training, from aggregates only.

In simulation `fedmarket data prepare` sees every export and derives the feature window's
cut-off and the normalisation statistics from all of them. In deployment no machine sees
every export, so the same two things are agreed in two query rounds:

1. *describe*: each retailer sends the time of its latest event (one timestamp); the
   cut-off is ``default_cutoff(max over retailers, horizon)``, exactly the rule `data
   prepare` applies to the pooled exports.
2. *moments*: each retailer featurises its export with that cut-off and sends, per
   feature, the count, sum and sum of squares over its TRAINING customers plus its numbers
   of training and test customers; the sums give the pooled mean and standard deviation
   (``NormStats.from_moments``), and the training total gives the default delta.

Nothing here is per-customer; these aggregates are not DP-protected (like the moments
`data prepare` combines). The window lengths, test fraction, k and split seed are fixed
(the `data prepare` defaults), so every retailer featurises identically. This module
knows no Flower: it builds and reads the plain dicts a MetricRecord / ConfigRecord carries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.data import features
from fedmarket.data.normalise import FeatureMoments, NormStats
from fedmarket.errors import DataError

CONFIG_KEY = "fedmarket-agreement"  # ConfigRecord key carrying Agreement.to_json()
STAGE_KEY = "stage"
DESCRIBE, MOMENTS = "describe", "moments"
PLAN_KEY = "plan"


@dataclass(frozen=True)
class WindowPlan:
    """How every retailer featurises; ``cutoff`` is None until the describe stage agreed it."""

    cutoff: str | None = None  # ISO UTC midnight
    window_days: int = 56
    step_days: int = 2
    horizon_days: int = 7
    test_fraction: float = 0.2
    k: int = 5
    seed: int = 0

    def feature_window(self) -> features.FeatureWindow:
        if self.cutoff is None:
            raise DataError("the feature window has no agreed cut-off yet (describe stage missing)")
        return features.FeatureWindow(
            cutoff=pd.Timestamp(self.cutoff),
            window_days=self.window_days,
            step_days=self.step_days,
            horizon_days=self.horizon_days,
        )

    def with_cutoff(self, last_events: Iterable[pd.Timestamp]) -> WindowPlan:
        """The plan with the cut-off `data prepare` would pick over all retailers' events."""
        times = [pd.Timestamp(t) for t in last_events]
        if not times:
            raise DataError("no retailer reported its latest event; cannot place the cut-off")
        cutoff = features.default_cutoff(max(times), self.horizon_days)
        return replace(self, cutoff=cutoff.isoformat())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> WindowPlan:
        try:
            return WindowPlan(**dict(d))
        except TypeError as exc:
            raise DataError(f"window plan {dict(d)!r} is malformed ({exc})") from exc


@dataclass(frozen=True)
class RetailerSummary:
    """One retailer's contribution to the moments stage: aggregates only."""

    partition_id: int
    moments: FeatureMoments
    n_train: int
    n_test: int

    def to_metrics(self) -> dict[str, int | float | list[int] | list[float]]:
        """Values a Flower MetricRecord accepts (plain ints/floats, uniform lists)."""
        return {
            "partition-id": int(self.partition_id),
            "n-train": int(self.n_train),
            "n-test": int(self.n_test),
            "moment-count": [int(c) for c in self.moments.count],
            "moment-sum": [float(s) for s in self.moments.sum],
            "moment-sumsq": [float(s) for s in self.moments.sumsq],
        }

    @staticmethod
    def from_metrics(d: Mapping[str, Any]) -> RetailerSummary:
        try:
            moments = FeatureMoments(
                np.asarray(d["moment-count"], np.int64),
                np.asarray(d["moment-sum"], np.float64),
                np.asarray(d["moment-sumsq"], np.float64),
            )
            summary = RetailerSummary(
                int(d["partition-id"]), moments, int(d["n-train"]), int(d["n-test"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"a retailer's moments reply is malformed ({exc!r}); is every "
                "SuperNode running the same fedmarket?"
            ) from exc
        n = len(features.FEATURE_NAMES)
        if any(len(v) != n for v in (moments.count, moments.sum, moments.sumsq)):
            raise DataError(
                f"partition {summary.partition_id}: moments for "
                f"{len(moments.count)} features, expected {n}"
            )
        return summary


@dataclass(frozen=True)
class Agreement:
    """The consortium's shared preprocessing facts, sent to every client each round."""

    plan: WindowPlan
    stats: NormStats
    n_train_total: int
    partitions: tuple[int, ...]

    def delta(self, configured: float) -> float:
        """The run's delta: ``configured`` if set, else 1/(10 × all training customers)."""
        from fedmarket.privacy.config import default_delta  # imports Opacus: only when asked

        return configured if configured > 0 else default_delta(self.n_train_total)

    def to_json(self) -> str:
        return json.dumps(
            {
                "plan": self.plan.to_dict(),
                "stats": self.stats.to_dict(),
                "n_train_total": self.n_train_total,
                "partitions": list(self.partitions),
            },
            sort_keys=True,
        )

    @staticmethod
    def from_json(text: str) -> Agreement:
        try:
            d = json.loads(text)
            return Agreement(
                WindowPlan.from_dict(d["plan"]),
                NormStats.from_dict(d["stats"]),
                int(d["n_train_total"]),
                tuple(int(p) for p in d["partitions"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"the server's agreement message is malformed ({exc!r})") from exc

    def fingerprint(self) -> str:
        """Names the locally normalised copy: new statistics, new copy."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def combine(plan: WindowPlan, summaries: Iterable[RetailerSummary]) -> Agreement:
    """Pooled normalisation statistics and training total from the retailers' summaries."""
    summaries = sorted(summaries, key=lambda s: s.partition_id)
    if not summaries:
        raise DataError("no retailer sent feature moments; nothing to agree on")
    ids = [s.partition_id for s in summaries]
    if len(set(ids)) != len(ids):
        raise DataError(
            f"partition ids {ids} repeat: give every SuperNode its own "
            "partition-id in --node-config"
        )
    stats = NormStats.from_moments(FeatureMoments.combine(s.moments for s in summaries))
    return Agreement(plan, stats, sum(s.n_train for s in summaries), tuple(ids))


def describe_metrics(
    last_event: pd.Timestamp, partition_id: int, num_partitions: int | None
) -> dict[str, int | float]:
    """A retailer's describe reply: its latest event time and the consortium size it was told."""
    out: dict[str, int | float] = {
        "last-event-s": float(pd.Timestamp(last_event).timestamp()),
        "partition-id": int(partition_id),
    }
    if num_partitions is not None:
        out["num-partitions"] = int(num_partitions)
    return out


def last_event_from_metrics(d: Mapping[str, Any]) -> pd.Timestamp:
    try:
        return pd.Timestamp(float(d["last-event-s"]), unit="s", tz="UTC")
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"a retailer's describe reply is malformed ({exc!r})") from exc
