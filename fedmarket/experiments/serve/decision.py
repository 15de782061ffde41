"""The service's decision: contact this customer or not, by one threshold fixed at start-up.

A real-time caller sees one customer at a time, so "the top 10% of today's customers" cannot
be computed per request. The threshold is therefore fixed when the service starts: given
(``--threshold P``), or the score that puts ``--top PCT`` percent of the run's own test
customers above it. The second is what a marketing lead means by "contact the top 10%", with
the run's test customers standing for the shop's population; the share the service actually
selects follows the population it is called for, and the rule it used is in every answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedmarket.data import store
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.errors import ConfigError
from fedmarket.scoring.run_model import RunModel

DEFAULT_TOP_PERCENT = 10.0


@dataclass(frozen=True)
class Decision:
    """``selected`` is ``score >= threshold``; ``score`` names the output compared."""

    threshold: float
    rule: str
    score: str  # "propensity" or "expected_count"

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "rule": self.rule, "score": self.score}


def output_name(run: RunModel) -> str:
    return "propensity" if run.task.binary else "expected_count"


def fixed_decision(run: RunModel, threshold: float) -> Decision:
    if not math.isfinite(threshold) or threshold < 0:
        raise ConfigError(f"--threshold {threshold}: give a finite score >= 0")
    if run.task.binary and threshold > 1:
        raise ConfigError(f"--threshold {threshold}: a propensity threshold lies in [0, 1]")
    return Decision(float(threshold), f"score >= {threshold:g} (--threshold)", output_name(run))


def top_decision(run: RunModel, top_percent: float, key_file: Path | None = None) -> Decision:
    """The threshold that selects ``top_percent`` % of the run's test customers, scored now
    by the served model (calibrated, as the service answers)."""
    if not 0 < top_percent <= 100:
        raise ConfigError(f"--top {top_percent}: give a percentage in (0, 100]")
    data_dir = Path(run.config.data_dir)
    fernet = prepared_data_fernet(data_dir, key_file)
    parts = store.load_partitions(data_dir, "test", fernet=fernet, mmap=False)
    X = np.concatenate([np.asarray(p.X) for p in parts]) if parts else np.zeros((0,))
    if len(X) == 0:
        raise ConfigError(
            f"{data_dir}: no test customers to place a top-{top_percent:g}% cut; "
            "give --threshold instead"
        )
    scores = np.sort(run.predict(X))[::-1]
    # as fedmarket.marketing counts the top k: ceil of k * n, at least one
    n_top = max(1, math.ceil(round(top_percent / 100 * len(scores), 9)))
    cut = float(scores[n_top - 1])
    rule = f"top {top_percent:g}% of the run's {len(scores):,} test customers (score >= {cut:.6g})"
    return Decision(cut, rule, output_name(run))
