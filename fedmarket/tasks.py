"""What a model is asked to predict: the one registry of tasks.

Every model outputs one raw score per customer (a logit, or a log-rate; a negative-binomial
count model adds its log-dispersion as a second column, see ``fedmarket.negbin``); the task says
which label it is trained against, with which loss, how the score becomes the prediction
users see (a probability, or an expected count), which metrics judge it and which one
ranks models, and what the one test report everywhere holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fedmarket.calibration import expected_calibration_error
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.marketing import marketing_report, report_keys
from fedmarket.metrics import (
    CLASSIFICATION_KEYS,
    REGRESSION_KEYS,
    classification_metrics,
    regression_metrics,
)
from fedmarket.names import BINARY_TASKS, did_you_mean
from fedmarket.negbin import NegativeBinomialNLLLoss
from fedmarket.recommend.loss import SampledBPRLoss
from fedmarket.recommend.metrics import RANKING_KEYS, ranking_metrics


@dataclass(frozen=True)
class Task:
    """One prediction task; build with ``get_task``."""

    name: str
    target: str  # the SplitArrays field holding the label
    description: str
    _loss: Callable[[str], nn.Module]
    _link: Callable[[torch.Tensor], torch.Tensor]
    _check: Callable[[np.ndarray], str | None]
    _metrics: Callable[[object, object], dict[str, float]]
    metric_keys: tuple[str, ...]  # the keys ``metrics`` returns
    primary_metric: tuple[str, bool]  # (metric key, higher is better): ranks models
    loss_name: str = "loss"  # the training loss in words, for figures' axes
    target_ndim: int = 1  # 2: one 0/1 column per item (a ranking task, next-categories)
    positives: str = "buyers"  # who the positive class is, in a report's words
    acts: str = "buy"  # what the positives do ("of them buy", "of them churn")
    classes: tuple[str, str] = ("no purchase", "purchase")  # label 0, label 1 in words

    @property
    def binary(self) -> bool:
        """A 0/1 label: probabilities, BCE, classification metrics, calibration."""
        return self.name in BINARY_TASKS

    def loss(self, reduction: str = "mean") -> nn.Module:
        """A fresh loss module on (raw score, target)."""
        return self._loss(reduction)

    def prediction(self, score: torch.Tensor) -> torch.Tensor:
        """Raw model score -> probability (purchase) or expected count (purchase-count)."""
        return self._link(score)

    def metrics(self, y_true: object, prediction: object) -> dict[str, float]:
        """Classification metrics on probabilities, or regression metrics on counts."""
        return self._metrics(y_true, prediction)

    def report(self, y_true: np.ndarray, prediction: np.ndarray) -> dict[str, Any]:
        """The task's metrics plus lift, capture and precision/recall/F1 at the top-k cut
        for the positives (buyers; churners for churn: targeting likely churners for
        retention): the one test report everywhere.

        Lift is defined on "label > 0" for every task (buys at all, for purchase-count);
        without both classes it is NaN, with the same keys, so readers need no special case.
        """
        report: dict[str, Any] = dict(self.metrics(y_true, prediction))
        if self.target_ndim == 2:  # a ranking: lift and capture of buyers do not apply
            return report
        y_buy = (np.asarray(y_true) > 0).astype(np.float64)
        if 0 < y_buy.sum() < len(y_buy):
            report.update(marketing_report(y_buy, prediction))
        else:
            report.update(
                dict.fromkeys(report_keys(), math.nan) | {"base_rate": float(y_buy.mean())}
            )
        return report

    def targets(self, split: SplitArrays) -> np.ndarray:
        """The label vector as float32; DataError if a value cannot be a label of this task."""
        try:
            y = np.asarray(getattr(split, self.target), dtype=np.float32)
        except AttributeError:
            raise DataError(
                f"task {self.name!r} reads {self.target!r}, which this split does not hold"
                + (" (load it with fedmarket.recommend.data)" if self.target_ndim == 2 else "")
            ) from None
        if y.ndim != self.target_ndim:
            raise DataError(
                f"{self.target}: expected a {self.target_ndim}-D label array, got shape {y.shape}"
            )
        problem = self._check(y)
        if problem is not None:
            raise DataError(f"{self.target}: {problem}; re-run `fedmarket data prepare`")
        return y


def _check_binary(y: np.ndarray) -> str | None:
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        return f"labels must be 0 or 1, row {bad[0]} holds {y[bad[0]]!r}"
    return None


def _check_count(y: np.ndarray) -> str | None:
    bad = np.flatnonzero(~np.isfinite(y) | (y < 0))
    if bad.size:
        return f"counts must be finite and >= 0, row {bad[0]} holds {y[bad[0]]!r}"
    return None


def _purchase_metrics(y_true: object, y_prob: object) -> dict[str, float]:
    """Classification metrics and the expected calibration error (fedmarket.calibration):
    targeting by expected profit needs probabilities that mean what they say. NaN where
    there is nothing to measure (no customers, or a diverged model's NaN scores), as the
    other metrics are."""
    prob = np.asarray(y_prob, dtype=np.float64)
    ece = math.nan
    if prob.size and np.isfinite(prob).all():
        ece = expected_calibration_error(y_true, prob)
    return classification_metrics(y_true, y_prob) | {"ece": ece}


def _bce(reduction: str) -> nn.Module:
    return nn.BCEWithLogitsLoss(reduction=reduction)


class _CountNLL(nn.Module):
    """Poisson NLL on a ``[B]`` log-rate, or the negative-binomial NLL on a ``[B, 2]`` score
    (log-mean, log-alpha): the model's ``count_loss`` decides its score's shape, so the task,
    its name and everything that reads it stay one for both losses."""

    def __init__(self, reduction: str) -> None:
        super().__init__()
        # log_input: the model outputs a log-rate, so the rate exp(score) is always positive;
        # full=False drops the Stirling term, which does not depend on the model.
        self.poisson = nn.PoissonNLLLoss(log_input=True, full=False, reduction=reduction)
        self.negbin = NegativeBinomialNLLLoss(reduction)

    def forward(self, score: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.negbin if score.dim() == 2 else self.poisson)(score, target)


def _count_loss(reduction: str) -> nn.Module:
    return _CountNLL(reduction)


def _count_link(score: torch.Tensor) -> torch.Tensor:
    """Expected count: exp(log-mean), the first column of a negative-binomial score."""
    return torch.exp(score[:, 0] if score.dim() == 2 else score)


def _binary(name: str, target: str, description: str, **words: Any) -> Task:
    """A 0/1 task: purchase's loss, link, checks and metrics on another label."""
    return Task(
        name,
        target,
        description,
        _bce,
        torch.sigmoid,
        _check_binary,
        _purchase_metrics,
        (*CLASSIFICATION_KEYS, "ece"),
        ("roc_auc", True),
        "binary cross-entropy",
        **words,
    )


_CHURN_WORDS: dict[str, Any] = {
    "positives": "churners",
    "acts": "churn",
    "classes": ("stays", "churns"),
}

TASKS: dict[str, Task] = {
    "purchase": _binary(
        "purchase", "y_purchase", "will the customer buy in the horizon (probability)"
    ),
    "purchase-count": Task(
        "purchase-count",
        "y_count",
        "how many purchases in the horizon (expected count)",
        _count_loss,
        _count_link,
        _check_count,
        regression_metrics,
        REGRESSION_KEYS,
        ("rmse", False),
        "Poisson or negative-binomial negative log-likelihood",
    ),
    # Churn as marketing uses it: an active customer who stops buying. "No event at all"
    # is the stricter option (browsing without buying is not lapsing): its own task name,
    # so a run's config, its report and its label say which definition it used.
    "churn": _binary(
        "churn",
        "y_churn",
        "will a customer active before the cut-off buy nothing in the horizon (probability)",
        **_CHURN_WORDS,
    ),
    "churn-inactive": _binary(
        "churn-inactive",
        "y_churn_inactive",
        "will a customer active before the cut-off have no event at all in the horizon "
        "(probability)",
        **_CHURN_WORDS,
    ),
    "next-categories": Task(
        "next-categories",
        "y_categories",
        "which categories the customer will cart or buy in the horizon (a ranking)",
        lambda reduction: SampledBPRLoss(reduction),
        torch.sigmoid,
        _check_binary,
        ranking_metrics,
        RANKING_KEYS,
        ("ndcg@10", True),
        "BPR with sampled negatives",
        target_ndim=2,
    ),
    "next-products": Task(
        "next-products",
        "y_products",
        "which of its retailer's products the customer will cart or buy in the horizon (a ranking)",
        lambda reduction: SampledBPRLoss(reduction),
        torch.sigmoid,
        _check_binary,
        ranking_metrics,
        RANKING_KEYS,
        ("ndcg@10", True),
        "BPR with sampled negatives",
        target_ndim=2,
    ),
}


def get_task(name: str) -> Task:
    """The task called ``name``; ConfigError listing the known tasks otherwise."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown task {name!r}; {did_you_mean(name, TASKS)}known tasks: {', '.join(TASKS)}"
        ) from None
