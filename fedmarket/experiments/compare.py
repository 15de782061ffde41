"""`fedmarket compare`: two results on the same test customers, as a paired difference.

Reads the per-customer predictions (``fedmarket.predictions``) that `fedmarket simulate`,
`centralised` and `baselines` leave in their directories, finds the result asked for in each
(``federated``, ``centralised``, ``local-only`` for a simulate run's per-retailer
local-only models, ``personal`` for its personalised models, ``bg-nbd`` for its anchor, or a
baseline model's name), joins them on (partition, customer), and computes metric(A) -
metric(B) with its interval (``fedmarket.paired``). The join is strict: results scored on
different customers, with different labels or for different tasks are not comparable, and
are refused with what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.errors import ConfigError, DataError
from fedmarket.paired import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_METRICS,
    SMALL_TEST,
    PairedDifference,
    compare,
    get_metric,
)
from fedmarket.predictions import KEY, Predictions, read_predictions
from fedmarket.rundir import BASELINE_SCORES, RunDir

FEDERATED, CENTRALISED, LOCAL_ONLY = "federated", "centralised", "local-only"
PERSONAL = "personal"  # a simulate run's personalised models (run setting personalisation)


@dataclass(frozen=True)
class Side:
    """One of the two results: where it was read from."""

    run: Path
    # federated | centralised | local-only | personal | bg-nbd (a run's anchor) | a baseline
    kind: str
    path: Path
    predictions: Predictions = field(repr=False)

    def describe(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "kind": self.kind,
            "model": self.predictions.model,
            "file": str(self.path),
        }


@dataclass(frozen=True)
class Comparison:
    """What `fedmarket compare` prints and writes with ``--out``."""

    a: Side
    b: Side
    task: str
    n: int
    positives: int
    negatives: int
    results: list[PairedDifference]
    seed: int
    resamples: int

    @property
    def small_test(self) -> bool:
        return min(self.positives, self.negatives) < SMALL_TEST

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.describe(),
            "b": self.b.describe(),
            "task": self.task,
            "customers": self.n,
            "positives": self.positives,
            "negatives": self.negatives,
            "small_test": self.small_test,
            "seed": self.seed,
            "bootstrap_resamples": self.resamples,
            "metrics": [r.to_dict() for r in self.results],
        }


def available(run: Path) -> dict[str, tuple[Path, str | None]]:
    """The results ``run`` holds predictions of: kind -> (file, model within it or None)."""
    files = RunDir(run)
    found: dict[str, tuple[Path, str | None]] = {}
    if files.test_scores.is_file():  # a simulate run's federated model, or a centralised --out
        found[FEDERATED if files.holds_run() else CENTRALISED] = (files.test_scores, None)
    if files.centralised_scores.is_file():
        found[CENTRALISED] = (files.centralised_scores, None)
    if files.local_only_scores.is_file():  # a simulate run's local-only models (RUN/local)
        found[LOCAL_ONLY] = (files.local_only_scores, None)
    if files.personal_scores.is_file():  # its personalised models (RUN/personal)
        found[PERSONAL] = (files.personal_scores, None)
    if files.anchor_scores.is_file():  # a simulate run's BG/NBD anchor
        for model in read_predictions(files.anchor_scores):
            found.setdefault(model, (files.anchor_scores, model))
    baselines = files.path / BASELINE_SCORES
    if baselines.is_file():
        for model in read_predictions(baselines):
            found.setdefault(model, (baselines, model))
    return found


def load_side(run: Path, kind: str | None, *, option: str) -> Side:
    """The predictions of ``kind`` in ``run`` (None: federated, else centralised, else the one
    baseline model), or an error naming what ``run`` holds."""
    if not run.is_dir():
        raise ConfigError(f"{run}: no such run directory")
    found = available(run)
    if not found:
        raise ConfigError(
            f"{run}: no per-customer test predictions there (test_scores.csv, "
            f"centralised/test_scores.csv or {BASELINE_SCORES}); they are written by "
            "`fedmarket simulate`, `centralised` and `baselines`; run them again with this "
            "version if the directory is older"
        )
    if kind is None:
        kind = next((k for k in (FEDERATED, CENTRALISED) if k in found), None)
        if kind is None and len(found) > 1:
            raise ConfigError(
                f"{run} holds several results; name one with {option}: {', '.join(found)}"
            )
        kind = kind or next(iter(found))
    if kind not in found:
        raise ConfigError(
            f"{option} {kind}: {run} holds no predictions of {kind!r}; it holds: {', '.join(found)}"
        )
    path, model = found[kind]
    models = read_predictions(path)
    predictions = models[model] if model is not None else next(iter(models.values()))
    return Side(run, kind, path, predictions)


def pair(a: Side, b: Side) -> pd.DataFrame:
    """label, score_a, score_b per customer in both, sorted by (partition, customer); an
    error where the two were not scored on the same customers with the same labels."""
    if a.predictions.task != b.predictions.task:
        raise ConfigError(
            f"A ({a.kind}) predicts {a.predictions.task} and B ({b.kind}) "
            f"{b.predictions.task}; compare results of the same task"
        )
    fa, fb = (_keyed(side) for side in (a, b))
    joined = fa.merge(fb, on=list(KEY), how="outer", suffixes=("_a", "_b"), indicator=True)
    only_a = int((joined["_merge"] == "left_only").sum())
    only_b = int((joined["_merge"] == "right_only").sum())
    if only_a or only_b:
        raise DataError(
            f"the two results were tested on different customers: {len(joined) - only_a - only_b}"
            f" in both, {only_a} only in A ({a.path}), {only_b} only in B ({b.path}); a paired "
            "comparison needs the same test customers: prepare the data once (`fedmarket data "
            "prepare`) and run both on that prepared directory"
        )
    differ = int((joined["label_a"] != joined["label_b"]).sum())
    if differ:
        raise DataError(
            f"the two results disagree on the label of {differ} of {len(joined)} customers; "
            "they were tested on differently prepared data (another horizon or window): run "
            "both on the same prepared directory"
        )
    joined = joined.sort_values(list(KEY), kind="stable", ignore_index=True)
    return joined.rename(columns={"label_a": "label"})[["label", "score_a", "score_b"]]


def _keyed(side: Side) -> pd.DataFrame:
    p = side.predictions
    frame = pd.DataFrame(
        {"partition": p.partition, "customer": p.customer, "label": p.label, "score": p.score}
    )
    duplicated = int(frame.duplicated(list(KEY)).sum())
    if duplicated:
        raise DataError(
            f"{side.path}: {duplicated} customers appear more than once for {p.model!r}; "
            "the file is damaged"
        )
    return frame


def compare_runs(
    run_a: Path,
    run_b: Path,
    *,
    kind_a: str | None = None,
    kind_b: str | None = None,
    metrics: Sequence[str] = (),
    seed: int = 0,
    resamples: int = DEFAULT_BOOTSTRAP,
) -> Comparison:
    """A (``kind_a`` in ``run_a``) against B; ``metrics`` default to the task's."""
    for name in metrics:
        get_metric(name)  # an unknown name before anything is read
    a = load_side(run_a, kind_a, option="--a")
    b = load_side(run_b, kind_b, option="--b")
    if a.path.resolve() == b.path.resolve() and a.predictions.model == b.predictions.model:
        raise ConfigError(
            f"A and B are the same result ({a.kind} in {a.run}); name two with --a and --b, "
            "e.g. --a federated --b centralised"
        )
    task = a.predictions.task
    names = list(metrics) or list(DEFAULT_METRICS.get(task, ("roc_auc",)))
    for name in names:
        if task not in get_metric(name).tasks:
            raise ConfigError(f"--metric {name}: not a metric of task {task!r}")
    joined = pair(a, b)
    y = joined["label"].to_numpy()
    sa, sb = joined["score_a"].to_numpy(), joined["score_b"].to_numpy()
    results = [  # each metric from the same seed: the same resamples, whatever the order
        compare(y, sa, sb, name, rng=np.random.default_rng(seed), resamples=resamples)
        for name in names
    ]
    positives = int(np.count_nonzero(y > 0))
    return Comparison(a, b, task, len(y), positives, len(y) - positives, results, seed, resamples)
