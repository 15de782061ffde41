"""Fitting the anchors and scoring the test customers: one ``ResultRow`` per fit."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np

from fedmarket.anchors.hybrid import hybrid_row
from fedmarket.anchors.privacy import AnchorPrivacy, dp_job
from fedmarket.baselines import ResultRow, evaluate_predictions
from fedmarket.btyd import MODELS, CustomerHistory, fit_federated, from_aggregates, local_sums
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError
from fedmarket.names import BINARY_TASKS, CHURN_TASKS
from fedmarket.tasks import get_task

WEEK_DAYS: Final[float] = 7.0
ANCHOR_MODELS: Final[tuple[str, ...]] = tuple(MODELS)
HISTORY_COLUMNS: Final[tuple[str, ...]] = (
    "first_event_days",
    "first_purchase_days",
    "purchase_recency_days",
    "purchase_days",
)


@dataclass(frozen=True)
class AnchorData:
    """What the anchors need to know about the prepared data (from its manifest)."""

    aggregate_names: tuple[str, ...]
    horizon_days: int
    count_unit: str = "transactions"

    @staticmethod
    def missing(manifest: dict[str, Any]) -> str | None:
        """Why the anchors cannot run on this prepared data (None when they can)."""
        if "window" not in manifest:
            return "a customer table has no purchase history for BG/NBD or Pareto/NBD"
        absent = [n for n in HISTORY_COLUMNS if n not in manifest.get("aggregate_names", ())]
        if absent:
            return (
                f"the prepared data lack the aggregates {', '.join(absent)} (an older "
                "fedmarket prepared them): re-run fedmarket data prepare"
            )
        return None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> AnchorData:
        labels = manifest.get("labels") or {}
        return cls(
            tuple(manifest["aggregate_names"]),
            int(manifest["window"]["horizon_days"]),
            str(labels.get("count_unit", "transactions")),
        )

    @property
    def horizon_weeks(self) -> float:
        return self.horizon_days / WEEK_DAYS


def history(split: SplitArrays, data: AnchorData) -> CustomerHistory:
    """One split's customers as the BTYD models read them (weeks as the time unit)."""
    return from_aggregates(np.asarray(split.agg), data.aggregate_names, time_unit_days=WEEK_DAYS)


def predict(fit: Any, customers: CustomerHistory, task: str, data: AnchorData) -> np.ndarray:
    """The task's prediction for each customer over the horizon: P(buy) for ``purchase``,
    1 - P(buy) for the churn tasks (for ``churn-inactive`` a ranking, not its probability:
    the model sees purchases only), the expected number of transactions (customer-days) for
    ``purchase-count``."""
    if task in BINARY_TASKS:
        p_buy = np.asarray(fit.p_purchase(data.horizon_weeks, customers), dtype=np.float64)
        return 1.0 - p_buy if task in CHURN_TASKS else p_buy
    return np.asarray(fit.expected_transactions(data.horizon_weeks, customers), dtype=np.float64)


def unit_note(task: str, data: AnchorData) -> str:
    """'' or a clause saying the labels count another unit than the model's customer-days."""
    if task == "purchase-count" and data.count_unit != "customer-days":
        return (
            f"; predicts customer-days but the labels count {data.count_unit} "
            "(prepare with --count-unit customer-days to compare like for like)"
        )
    return ""


def params_text(fit: Any) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in fit.params.items())


def federated_job(
    name: str, histories: Sequence[CustomerHistory]
) -> tuple[str, Callable[[], Any], str]:
    """The fit without pooling: each retailer answers the server's parameters with its
    customers' log-likelihood sum and gradient, no noise (so not DP)."""
    answers = [partial(local_sums, history=h, model=name) for h in histories]
    how = (
        f"federated fit: {len(histories)} retailers sent log-likelihood sums and gradients, "
        "no noise (not DP)"
    )
    return f"{name} federated", partial(fit_federated, answers, model=name), how


def run_btyd_anchors(
    train_parts: Sequence[SplitArrays],
    test: SplitArrays,
    *,
    task: str,
    data: AnchorData,
    models: Sequence[str] = ANCHOR_MODELS,
    federated: bool = True,
    privacy: AnchorPrivacy | None = None,
    hybrid: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
) -> list[ResultRow]:
    """Fit each model on the training customers (pooled, then federated over
    ``train_parts``, one per retailer partition, then federated under ``privacy`` when
    given, its noise drawn from ``seed``) and score the test customers. ``hybrid`` adds a
    classical model that also sees BG/NBD's predictions (``fedmarket.anchors.hybrid``)."""
    task = get_task(task).name
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown anchor model(s) {unknown}; known: {', '.join(MODELS)}")
    parts = [p for p in train_parts if len(p)]
    histories = [history(p, data) for p in parts]
    pooled = CustomerHistory(
        *(np.concatenate([getattr(h, k) for h in histories]) for k in ("x", "t_x", "T"))
    )
    test_history = history(test, data)
    y_test = get_task(task).targets(test).astype(np.float64)
    jobs: list[tuple[str, Callable[[], Any], str]] = []
    for name in models:
        jobs.append((name, partial(MODELS[name], pooled), "pooled fit"))
        if federated and len(histories) > 1:
            jobs.append(federated_job(name, histories))
        if privacy is not None and len(histories) > 1:
            jobs.append(dp_job(name, histories, privacy, seed))
    rows, fits = [], {}
    for i, (label, fit_model, how) in enumerate(jobs, start=1):
        if progress is not None:
            progress(f"{label} ({i}/{len(jobs)})")
        start = time.perf_counter()
        fit = fits[label] = fit_model()
        seconds = time.perf_counter() - start
        prediction = predict(fit, test_history, task, data)
        metrics = evaluate_predictions(task, y_test, prediction)
        notes = f"{how}; {params_text(fit)} (weeks){unit_note(task, data)}"
        row = ResultRow(label, "customer-base", metrics, seconds, notes, prediction)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    if hybrid and "bg-nbd" in fits:
        if progress is not None:
            progress("classical model + bg-nbd inputs")
        row = hybrid_row(
            task,
            fits["bg-nbd"],
            (pooled, test_history),
            (SplitArrays.concat(parts), test),
            data.horizon_weeks,
            seed,
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def run_manifest_anchors(
    manifest: dict[str, Any],
    train_parts: Sequence[SplitArrays],
    test: SplitArrays,
    *,
    task: str,
    epsilon: float | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
) -> list[ResultRow]:
    """``run_btyd_anchors`` on prepared data described by ``manifest``, under client DP at
    ``epsilon`` per retailer (delta 1/(10 n)) when given: what `fedmarket baselines` and
    ``compare_baselines`` run. The caller checks ``AnchorData.missing(manifest)`` first."""
    privacy = None if epsilon is None else AnchorPrivacy.for_retailers(epsilon, train_parts)
    return run_btyd_anchors(
        train_parts,
        test,
        task=task,
        data=AnchorData.from_manifest(manifest),
        privacy=privacy,
        seed=seed,
        progress=progress,
        on_row=on_row,
    )
