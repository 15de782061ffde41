"""The customer-base anchors in the baselines table: BG/NBD and Pareto/NBD, pooled and federated.

A buy-'til-you-die model is the classical answer to both of fedmarket's questions: will this
customer buy in the horizon (1 - P(no purchase in t)) and how often (the conditional expected
number of transactions in t). Decisions a reader of the table should know:

* Inputs come from the prepared aggregates (``fedmarket.btyd.from_aggregates``): birth is the
  customer's first event in the feature window, x counts the purchase days after it, time in
  weeks. Nothing else about the customer is used, which is the point of an anchor.
* The models count customer-days (one transaction per customer and day, as the literature
  does). Against ``purchase-count`` labels in another unit the note says so: prepare with
  ``--count-unit customer-days`` for a like-for-like comparison.
* "federated" rows fit the same likelihood without pooling: each retailer answers the
  server's parameters with the sum of its customers' log-likelihoods and gradients
  (``fedmarket.btyd.federated``), in process here. No noise is added, so these rows are not
  differentially private (the note says so). With ``AnchorPrivacy`` a "federated DP" row is
  added: each customer's log-likelihood and gradient are clipped to fixed bounds (chosen
  before seeing any data: |ll| <= 30, ||grad|| <= 5, which on CDNOW leave >99% of customers
  untouched), Gaussian noise is added to each answer, and each retailer answers at most
  ``releases`` times; the noise multiplier is the smallest that keeps the RDP-composed
  epsilon of those answers within the target, so the guarantee holds however the optimiser
  behaves (a retailer refuses an answer past its budget).
* The fit uses the training customers only; predictions are for the test customers, the
  same ones every other row of the table scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np

from fedmarket.baselines import ResultRow, evaluate_predictions
from fedmarket.btyd import (
    MODELS,
    Clipping,
    CustomerHistory,
    fit_federated,
    from_aggregates,
    gaussian_epsilon,
    local_sums,
)
from fedmarket.data.store import SplitArrays
from fedmarket.errors import BudgetExhaustedError, ConfigError
from fedmarket.tasks import get_task

WEEK_DAYS: Final[float] = 7.0
ANCHOR_MODELS: Final[tuple[str, ...]] = tuple(MODELS)
# Fixed before seeing any data (weeks as the time unit): see the module docstring.
DEFAULT_CLIPPING: Final[Clipping] = Clipping(30.0, 5.0)
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


@dataclass(frozen=True)
class AnchorPrivacy:
    """Client DP for the federated anchor fit: per retailer, (epsilon, delta) over at most
    ``releases`` answers of clipped, noised sums (see the module docstring)."""

    epsilon: float
    delta: float
    releases: int = 40
    clipping: Clipping = DEFAULT_CLIPPING

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and 0 < self.delta < 1 and self.releases >= 10):
            raise ConfigError(
                f"anchor DP: needs epsilon > 0, 0 < delta < 1 and releases >= 10, got "
                f"epsilon={self.epsilon}, delta={self.delta}, releases={self.releases}"
            )

    @classmethod
    def for_retailers(cls, epsilon: float, parts: Sequence[SplitArrays]) -> AnchorPrivacy:
        """Delta as fedmarket's client DP sets it, 1/(10 n), at the largest retailer's n
        (the smallest delta, so every retailer's guarantee is at least this strong)."""
        return cls(epsilon, 1.0 / (10 * max(len(p) for p in parts)))

    def noise_multiplier(self) -> float:
        """The smallest z (to 0.1%) whose ``releases`` answers stay within epsilon."""
        low, high = 0.05, 1e4
        if gaussian_epsilon(high, self.releases, self.delta) > self.epsilon:
            raise ConfigError(f"anchor DP: epsilon {self.epsilon} is too small to reach")
        while high / low > 1.001:
            mid = (low * high) ** 0.5
            if gaussian_epsilon(mid, self.releases, self.delta) <= self.epsilon:
                high = mid
            else:
                low = mid
        return high


class _Budgeted:
    """One retailer's noisy answers, refused past its budget of releases."""

    def __init__(
        self,
        history: CustomerHistory,
        model: str,
        privacy: AnchorPrivacy,
        noise: float,
        rng: np.random.Generator,
    ) -> None:
        self.history, self.model, self.privacy = history, model, privacy
        self.noise, self.rng, self.answers = noise, rng, 0

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray, int]:
        if self.answers >= self.privacy.releases:
            raise BudgetExhaustedError(
                f"anchor DP: a retailer was asked for answer {self.answers + 1} of a budget "
                f"of {self.privacy.releases}"
            )
        self.answers += 1
        return local_sums(
            params,
            self.history,
            model=self.model,
            clipping=self.privacy.clipping,
            noise_multiplier=self.noise,
            rng=self.rng,
        )


# L-BFGS-B may pass its evaluation cap by a line search (at most 20 steps by default):
# the optimiser is given the budget less this, so no retailer is ever asked past its budget.
_LINE_SEARCH_SLACK: Final[int] = 21


def _dp_job(
    name: str, histories: list[CustomerHistory], privacy: AnchorPrivacy, seed: int
) -> tuple[str, Callable[[], Any], str]:
    noise = privacy.noise_multiplier()
    streams = np.random.SeedSequence(seed).spawn(len(histories))
    answers = [
        _Budgeted(h, name, privacy, noise, np.random.default_rng(stream))
        for h, stream in zip(histories, streams, strict=True)
    ]

    def fit() -> Any:
        return fit_federated(
            answers,
            model=name,
            max_evaluations=privacy.releases - _LINE_SEARCH_SLACK,
            polish=False,
        )

    how = (
        f"federated fit with client DP: {len(histories)} retailers, each customer's "
        f"log-likelihood clipped to {privacy.clipping.loglik_bound:g} and gradient to "
        f"{privacy.clipping.grad_bound:g}, noise multiplier {noise:.3g}, "
        f"epsilon <= {privacy.epsilon:g} at delta {privacy.delta:.2g} per retailer over "
        f"{privacy.releases} answers"
    )
    return f"{name} federated DP", fit, how


def _history(split: SplitArrays, data: AnchorData) -> CustomerHistory:
    return from_aggregates(np.asarray(split.agg), data.aggregate_names, time_unit_days=WEEK_DAYS)


def _predict(fit: Any, history: CustomerHistory, task: str, data: AnchorData) -> np.ndarray:
    if task == "purchase":
        return np.asarray(fit.p_purchase(data.horizon_weeks, history), dtype=np.float64)
    return np.asarray(fit.expected_transactions(data.horizon_weeks, history), dtype=np.float64)


def _params(fit: Any) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in fit.params.items())


def _unit_note(task: str, data: AnchorData) -> str:
    if task == "purchase-count" and data.count_unit != "customer-days":
        return (
            f"; predicts customer-days but the labels count {data.count_unit} "
            "(prepare with --count-unit customer-days to compare like for like)"
        )
    return ""


def run_btyd_anchors(
    train_parts: Sequence[SplitArrays],
    test: SplitArrays,
    *,
    task: str,
    data: AnchorData,
    models: Sequence[str] = ANCHOR_MODELS,
    federated: bool = True,
    privacy: AnchorPrivacy | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
) -> list[ResultRow]:
    """Fit each model on the training customers (pooled, then federated over
    ``train_parts``, one per retailer partition, then federated under ``privacy`` when
    given, its noise drawn from ``seed``) and score the test customers."""
    task = get_task(task).name
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown anchor model(s) {unknown}; known: {', '.join(MODELS)}")
    parts = [p for p in train_parts if len(p)]
    histories = [_history(p, data) for p in parts]
    pooled = CustomerHistory(
        *(np.concatenate([getattr(h, k) for h in histories]) for k in ("x", "t_x", "T"))
    )
    test_history = _history(test, data)
    y_test = get_task(task).targets(test).astype(np.float64)
    jobs: list[tuple[str, Callable[[], Any], str]] = []
    for name in models:
        jobs.append((name, partial(MODELS[name], pooled), "pooled fit"))
        if federated and len(histories) > 1:
            answers = [partial(local_sums, history=h, model=name) for h in histories]
            jobs.append(
                (
                    f"{name} federated",
                    partial(fit_federated, answers, model=name),
                    f"federated fit: {len(histories)} retailers sent log-likelihood sums and "
                    "gradients, no noise (not DP)",
                )
            )
        if privacy is not None and len(histories) > 1:
            jobs.append(_dp_job(name, histories, privacy, seed))
    rows = []
    for i, (label, fit_model, how) in enumerate(jobs, start=1):
        if progress is not None:
            progress(f"{label} ({i}/{len(jobs)})")
        start = time.perf_counter()
        fit = fit_model()
        seconds = time.perf_counter() - start
        prediction = _predict(fit, test_history, task, data)
        metrics = evaluate_predictions(task, y_test, prediction)
        notes = f"{how}; {_params(fit)} (weeks){_unit_note(task, data)}"
        row = ResultRow(label, "customer-base", metrics, seconds, notes, prediction)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
