"""Classical models on per-customer aggregate features: the comparison the literature makes.

Each model sees ``agg`` (recency, frequency, monetary, event counts, ...) rather than the
event sequences, so the table answers "how much does a sequence model add over RFM-style
features with a standard learner?". Decisions a reader of the results should know:

* Features: signed log1p of every column, ``sign(x) * log1p(|x|)``. Counts and money are
  heavy-tailed; the log brings them into a range where scale-sensitive learners (logistic
  regression, SVM, kNN, MLP, naive Bayes) work, is near-linear on rates in [0, 1], and leaves
  trees unaffected (they are invariant to monotone transforms). Scale-sensitive models also
  standardise inside their pipeline, fitted on training data only.
* Hyperparameters are fixed sensible defaults, chosen once and not tuned on any test split.
* No ``class_weight``: reweighting distorts probabilities (log loss, the 0.5 threshold),
  while the primary metrics (ROC-AUC, lift) are rank-based and need none.
* Count regressors' predictions are clipped at 0 (a count cannot be negative).
* Lift for ``purchase-count`` ranks by predicted count and counts a conversion as
  ``y_count > 0``, so count models can be compared on targeting too.
* The churn tasks are 0/1 tasks like ``purchase``: the same classifiers, on their own label
  (lift then means targeting likely churners for retention).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, PoissonRegressor
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.intervals import metric_cell, report_warning
from fedmarket.marketing import marketing_report
from fedmarket.names import BINARY_TASKS
from fedmarket.tasks import get_task

Builder = Callable[[int, int], Any]  # (seed, n_train) -> unfitted sklearn estimator
KNN_NEIGHBOURS: Final[int] = 50


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``build`` is None when the model has no form for the task."""

    build: Builder | None
    notes: str


@dataclass(frozen=True)
class ResultRow:
    """One model's test result; ``metrics`` is flat (metric key -> number), empty if skipped."""

    model: str
    family: str  # "classical" | "customer-base" (fedmarket.anchors) | "sequence"
    metrics: dict[str, float]
    fit_seconds: float
    notes: str = ""
    # each test customer's prediction, in the test split's order (fedmarket.predictions); None
    # where skipped. Not part of the tables.
    prediction: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def skipped(self) -> bool:
        return not self.metrics


def _scaled(estimator: Any) -> Pipeline:
    return make_pipeline(StandardScaler(), estimator)


def _mlp_kwargs(seed: int) -> dict[str, Any]:
    return {
        "hidden_layer_sizes": (64, 32),
        "early_stopping": True,
        "max_iter": 200,
        "random_state": seed,
    }


_CLASSIFIERS: Final[dict[str, ModelSpec]] = {
    "logistic-regression": ModelSpec(
        lambda seed, n: _scaled(LogisticRegression(max_iter=1000, random_state=seed)),
        "L2 logistic regression (C=1) on standardised log features",
    ),
    "decision-tree": ModelSpec(
        lambda seed, n: DecisionTreeClassifier(max_depth=8, min_samples_leaf=20, random_state=seed),
        "CART, max_depth=8, min_samples_leaf=20 (unpruned trees give 0/1 probabilities)",
    ),
    "random-forest": ModelSpec(
        lambda seed, n: RandomForestClassifier(
            n_estimators=100, min_samples_leaf=5, random_state=seed
        ),
        "100 trees, min_samples_leaf=5",
    ),
    "svm": ModelSpec(
        lambda seed, n: _scaled(
            CalibratedClassifierCV(LinearSVC(C=1.0, random_state=seed), method="sigmoid", cv=3)
        ),
        "linear SVM (LinearSVC) on all training customers; probabilities by Platt "
        "(sigmoid) calibration over 3 CV folds; no kernel SVM (does not scale to ~40k)",
    ),
    "naive-bayes": ModelSpec(
        lambda seed, n: GaussianNB(),
        "Gaussian naive Bayes on log features (independence assumption: poorly calibrated)",
    ),
    "knn": ModelSpec(
        lambda seed, n: _scaled(KNeighborsClassifier(n_neighbors=min(KNN_NEIGHBOURS, n))),
        f"k={KNN_NEIGHBOURS} (fewer if the training split is smaller), uniform weights, "
        f"standardised",
    ),
    "mlp": ModelSpec(
        lambda seed, n: _scaled(MLPClassifier(**_mlp_kwargs(seed))),
        "MLP 64-32 ReLU, Adam, early stopping on a 10% validation split",
    ),
    "gradient-boosting": ModelSpec(
        lambda seed, n: HistGradientBoostingClassifier(random_state=seed),
        "scikit-learn HistGradientBoosting (log loss, 100 iterations, early stopping on a "
        "10% validation split above 10,000 customers)",
    ),
}

CLASSICAL_MODELS: Final[dict[str, dict[str, ModelSpec]]] = {
    **dict.fromkeys(BINARY_TASKS, _CLASSIFIERS),
    "purchase-count": {
        "linear-regression": ModelSpec(
            lambda seed, n: _scaled(LinearRegression()),
            "ordinary least squares on log features, predictions clipped at 0",
        ),
        "poisson-regression": ModelSpec(
            lambda seed, n: _scaled(PoissonRegressor(alpha=1e-3, max_iter=1000)),
            "Poisson GLM (log link, alpha=1e-3): the count analogue of logistic regression",
        ),
        "decision-tree": ModelSpec(
            lambda seed, n: DecisionTreeRegressor(
                max_depth=8, min_samples_leaf=20, random_state=seed
            ),
            "CART regressor, max_depth=8, min_samples_leaf=20",
        ),
        "random-forest": ModelSpec(
            lambda seed, n: RandomForestRegressor(
                n_estimators=100, min_samples_leaf=5, random_state=seed
            ),
            "100 trees, min_samples_leaf=5",
        ),
        "svm": ModelSpec(
            lambda seed, n: _scaled(LinearSVR(C=1.0, max_iter=5000, random_state=seed)),
            "linear SVR (epsilon-insensitive loss) on all training customers, clipped at 0",
        ),
        "naive-bayes": ModelSpec(None, "skipped: naive Bayes has no regression form"),
        "knn": ModelSpec(
            lambda seed, n: _scaled(KNeighborsRegressor(n_neighbors=min(KNN_NEIGHBOURS, n))),
            f"k={KNN_NEIGHBOURS} (fewer if the training split is smaller), standardised",
        ),
        "mlp": ModelSpec(
            lambda seed, n: _scaled(MLPRegressor(**_mlp_kwargs(seed))),
            "MLP 64-32 ReLU, Adam, early stopping on a 10% validation split",
        ),
        "gradient-boosting": ModelSpec(
            lambda seed, n: HistGradientBoostingRegressor(loss="poisson", random_state=seed),
            "scikit-learn HistGradientBoosting, Poisson loss (100 iterations, early stopping "
            "above 10,000 customers)",
        ),
    },
}


def model_names(task: str) -> list[str]:
    """Registered model names for ``task``, in table order."""
    return list(CLASSICAL_MODELS[get_task(task).name])


def aggregate_features(agg: np.ndarray, *, where: str = "agg") -> np.ndarray:
    """Signed log1p of the aggregate matrix as float64 (see the module docstring for why)."""
    x = np.asarray(agg, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise DataError(
            f"{where}: expected a non-empty 2-D [customers, features] array, got {x.shape}"
        )
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        row, col = bad[0]
        raise DataError(
            f"{where}: {len(bad)} non-finite values (first at row {row}, "
            f"column {col}); fix the feature step before fitting baselines"
        )
    return np.sign(x) * np.log1p(np.abs(x))


def _resolve(task: str, models: Sequence[str] | None) -> list[str]:
    known = model_names(task)
    if models is None:
        return known
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ConfigError(
            f"unknown baseline model(s) {unknown} for task {task!r}; known: {', '.join(known)}"
        )
    return list(dict.fromkeys(models))


def _predict(estimator: Any, x: np.ndarray, task: str) -> np.ndarray:
    if task in BINARY_TASKS:
        positive = list(estimator.classes_).index(1.0)
        return estimator.predict_proba(x)[:, positive]
    return np.clip(estimator.predict(x), 0.0, None)


def _fit_one(spec: ModelSpec, seed: int, x: np.ndarray, y: np.ndarray) -> tuple[Any, str]:
    """Fit, turning convergence warnings into a note instead of console noise."""
    estimator = spec.build(seed, len(x))  # type: ignore[misc]  # skipped specs never get here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(x, y)
    kinds = sorted({w.category.__name__ for w in caught})
    return estimator, (f"; warnings during fit: {', '.join(kinds)}" if kinds else "")


def fit_and_predict(
    task: str, name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int
) -> tuple[np.ndarray, str]:
    """One registered model fitted on features the caller built (e.g. the aggregates plus
    the customer-base models' predictions): its test predictions and the fit's note."""
    spec = CLASSICAL_MODELS[get_task(task).name][name]
    estimator, note = _fit_one(spec, seed, x_train, y_train)
    return _predict(estimator, x_test, task), spec.notes + note


def evaluate_predictions(task: str, y_test: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    metrics = get_task(task).metrics(y_test, prediction)
    converted = y_test if task in BINARY_TASKS else (y_test > 0).astype(np.float64)
    report = marketing_report(converted, prediction)
    metrics.update({k: v for k, v in report.items() if k.startswith("lift_at_")})
    return metrics


def run_classical_baselines(
    train: SplitArrays,
    test: SplitArrays,
    *,
    task: str,
    seed: int,
    models: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
) -> list[ResultRow]:
    """Fit each model on ``train.agg`` and score it on ``test.agg``, one row per model.

    ``models`` defaults to every registered model for ``task``; a model with no form for the
    task (naive Bayes for counts) comes back as a skipped row (empty metrics, a note).
    ``fit_seconds`` is wall time of ``fit`` only. ``on_row`` is called with each row as it
    is finished, so a caller can keep it on disk before the slower models run.
    """
    names = _resolve(task, models)
    x_train = aggregate_features(train.agg, where="train.agg")
    x_test = aggregate_features(test.agg, where="test.agg")
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(
            f"train.agg has {x_train.shape[1]} features but test.agg has "
            f"{x_test.shape[1]}; both splits must come from the same prepare run"
        )
    # fedmarket.tasks validates the labels (0/1 purchases, finite non-negative counts).
    target = get_task(task).targets
    y_train, y_test = target(train).astype(np.float64), target(test).astype(np.float64)
    if task in BINARY_TASKS and np.unique(y_train).size < 2:
        raise DataError(
            f"train.{get_task(task).target} holds a single class; classifiers need both "
            "classes (use a longer label horizon or pool more partitions)"
        )
    rows = []
    for i, name in enumerate(names, start=1):
        spec = CLASSICAL_MODELS[task][name]
        if progress is not None:
            progress(f"{name} ({i}/{len(names)})")
        if spec.build is None:
            row = ResultRow(name, "classical", {}, 0.0, spec.notes)
        else:
            start = time.perf_counter()
            estimator, fit_note = _fit_one(spec, seed, x_train, y_train)
            fit_seconds = time.perf_counter() - start
            prediction = _predict(estimator, x_test, task)
            metrics = evaluate_predictions(task, y_test, prediction)
            notes = spec.notes + fit_note
            row = ResultRow(name, "classical", metrics, fit_seconds, notes, prediction)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


# Terminal headers short enough for 80 columns (the CSV and JSON keep the metric keys).
_HEADERS: Final[dict[str, str]] = {"lift_at_10": "lift@10%", "tracking_error": "total err"}
_TABLE_METRICS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(BINARY_TASKS, ("roc_auc", "pr_auc", "f1", "log_loss", "lift_at_10")),
    "purchase-count": ("rmse", "mae", "r2", "mape", "spearman", "tracking_error", "lift_at_10"),
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _short(value: Any) -> str:
    """Three decimals in the terminal table (the CSV and JSON keep full precision)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cell(metrics: dict[str, float], key: str) -> str:
    """A metric with its 95 % interval as ``0.812 (0.791-0.833)``; others as before."""
    return metric_cell(metrics, key, _fmt)


def caution(rows: Sequence[ResultRow]) -> str | None:
    """The small-test warning for the test set the rows were scored on (all share it), or
    None; rows without counts (older files, skipped models) are passed over."""
    for r in rows:
        if "n_positive" in r.metrics and "n_negative" in r.metrics:
            return report_warning(r.metrics)
    return None


def render_table(rows: Sequence[ResultRow], task: str) -> Table:
    """A rich Table of the headline metrics, ranking metrics with their 95 % interval; the
    best primary metric is bold; the caption warns when the test set is small."""
    columns = _TABLE_METRICS[get_task(task).name]
    key, higher = get_task(task).primary_metric
    scored = [r.metrics[key] for r in rows if not math.isnan(r.metrics.get(key, math.nan))]
    best = (max if higher else min)(scored) if scored else None
    warning = caution(rows)
    rates = [r.metrics["positive_rate"] for r in rows if "positive_rate" in r.metrics]
    # the base rate beside the metrics: accuracy and F1 mean little without it (87 % churn)
    base = f"; base rate {rates[0]:.1%} on the test customers" if rates else ""
    table = Table(
        title=f"Baselines: {task} ({key}, {'higher' if higher else 'lower'} is better{base})",
        caption=f"Caution: {warning}." if warning else None,
        box=box.SIMPLE_HEAD,  # no vertical rules: a cell with its interval keeps one line
        pad_edge=False,
    )
    table.add_column("model", overflow="fold", min_width=14)
    for header in columns:  # numbers never wrap: the model name folds instead
        table.add_column(_HEADERS.get(header, header), justify="right", no_wrap=True)
    for i, r in enumerate(rows, start=1):
        if i == 1 or rows[i - 2].family != r.family:  # families as headings, not a column
            table.add_row(f"[italic]{r.family}[/italic]", *[""] * len(columns))
        # the interval under its value: two short lines fit an 80-column terminal
        cells = [metric_cell(r.metrics, c, _short).replace(" (", "\n(", 1) for c in columns]
        if best is not None and r.metrics.get(key) == best:
            cells[columns.index(key)] = f"[bold]{cells[columns.index(key)]}[/bold]"
        table.add_row(f"  {r.model}", *cells)
    return table


def render_notes(rows: Sequence[ResultRow]) -> str:
    """The rows' fit times and notes, numbered in the table's order: kept out of the table
    so that it fits an ordinary terminal."""
    return "\n".join(
        f"{i}. {r.model} ({r.fit_seconds:.2f} s){': ' + r.notes if r.notes else ''}"
        for i, r in enumerate(rows, start=1)
    )


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def result_records(rows: Sequence[ResultRow]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, one record per model): metric columns in order of first appearance, a
    metric a model does not report is NaN. The CSV, the JSON and the API's table share it."""
    keys = list(dict.fromkeys(k for r in rows for k in r.metrics))
    records = [
        {
            "model": r.model,
            "family": r.family,
            **{k: r.metrics.get(k, math.nan) for k in keys},
            "fit_seconds": r.fit_seconds,
            "notes": r.notes,
        }
        for r in rows
    ]
    return ["model", "family", *keys, "fit_seconds", "notes"], records


def write_results(
    rows: Sequence[ResultRow], out_dir: str | Path, stem: str = "baselines"
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (one row per model, flat metric columns) and ``<stem>.json``.

    Metric columns follow first appearance across rows, intervals and counts included
    (``roc_auc_low``, ``n_positive``, ...); undefined values are empty cells in the CSV and
    ``null`` in the JSON (strict JSON has no NaN). Each JSON row's ``caution`` holds the
    small-test warning (``fedmarket.intervals.small_test_warning``) or null. Each file is
    written whole under a temporary name and renamed, so a caller may rewrite them after
    every finished model and a run stopped at any moment leaves the rows it had, never half
    a file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns, records = result_records(rows)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    pd.DataFrame.from_records(records, columns=columns).to_csv(tmp, index=False)
    os.replace(tmp, csv_path)
    warning = caution(rows)
    payload = [
        {
            "model": r.model,
            "family": r.family,
            "metrics": {k: _json_number(v) for k, v in r.metrics.items()},
            "fit_seconds": r.fit_seconds,
            "notes": r.notes,
            "caution": warning,
        }
        for r in rows
    ]
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, json_path)
    return csv_path, json_path


def write_test_scores(
    rows: Sequence[ResultRow], data_dir: Path, test: SplitArrays, out_dir: str | Path, task: str
) -> Path:
    """Every model's prediction per test customer in one long file (``rundir.BASELINE_SCORES``,
    ``fedmarket.predictions``), rewritten whole like the tables, for `fedmarket compare`."""
    from fedmarket.predictions import pooled_test_predictions, write_predictions
    from fedmarket.rundir import BASELINE_SCORES

    scores = {r.model: r.prediction for r in rows if r.prediction is not None}
    predictions = pooled_test_predictions(data_dir, test, task=task, scores=scores)
    return write_predictions(Path(out_dir) / BASELINE_SCORES, predictions)
