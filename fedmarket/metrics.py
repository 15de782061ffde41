"""Evaluation metrics with one set of snake_case keys used across the whole project.

Every number comes from scikit-learn; this module only fixes the keys, validates input
and decides what an *undefined* value is, so a client with a one-class test split reports
NaN instead of crashing a federated round. The rules, in one place:

* ``roc_auc`` and ``pr_auc`` rank positives against negatives: NaN when ``y_true`` holds a
  single class (there is nothing to rank against).
* A ratio whose denominator is zero is NaN, never a silent 0 or 1
  (``zero_division=np.nan``): ``precision`` is NaN when nothing is predicted positive,
  ``recall`` is NaN when there are no actual positives. ``f1`` is sklearn's
  2TP / (2TP + FP + FN), so it is 0 for a model that predicts no positives while buyers
  exist, and NaN only when there are neither predicted nor actual positives.
* ``log_loss``, ``accuracy`` and the regression errors are always defined for n >= 1;
  ``r2`` is NaN when ``y_true`` is constant (or n < 2); ``mape`` is NaN without non-zero targets.
* Every ranking metric carries its 95 % interval (``roc_auc_low`` / ``roc_auc_high``, the same
  for ``pr_auc``, ``pearson`` and ``spearman``; ``fedmarket.intervals`` says how each is
  computed), NaN where the metric is NaN or the test set is too small for one. ``n_positive``
  and ``n_negative`` count buyers and non-buyers (for counts: customers with a non-zero and a
  zero count), what ``intervals.small_test_warning`` reads.

Aggregate the metrics with NaN-aware means (``np.nanmean``) and report how many were NaN; but
never average ``ONE_TEST_SET_KEYS`` (intervals, counts, totals) across test sets: an average
of two intervals is not the interval of anything.

scikit-learn and scipy.stats are imported by the functions that use them: a federated
client imports this module to start, and those two are a second of its start-up that its
first training does not need.
"""

from __future__ import annotations

import math
import warnings
from typing import Final

import numpy as np

from fedmarket.errors import ConfigError, DataError
from fedmarket.intervals import (
    average_precision_interval,
    delong_interval,
    fisher_z_interval,
    interval_keys,
)

# The metrics that carry an interval (``interval_keys`` names its bounds), and the counts
# every test report has.
WITH_INTERVAL: Final[tuple[str, ...]] = ("roc_auc", "pr_auc", "pearson", "spearman")
COUNT_KEYS: Final[tuple[str, ...]] = ("n", "n_positive", "n_negative")
CLASSIFICATION_KEYS: Final[tuple[str, ...]] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    *interval_keys("roc_auc"),
    "pr_auc",
    *interval_keys("pr_auc"),
    "log_loss",
    "positive_rate",
    "predicted_positive_rate",
    *COUNT_KEYS,
)
REGRESSION_KEYS: Final[tuple[str, ...]] = (
    "mae",
    "rmse",
    "r2",
    "mape",
    "pearson",
    *interval_keys("pearson"),
    "spearman",
    *interval_keys("spearman"),
    "total_predicted",
    "total_actual",
    "tracking_error",
    *COUNT_KEYS,
)
# Keys that describe one test set as a whole: an interval, a count, a total and the total's
# error. A mean of them over clients' test sets (as federated evaluation averages metrics)
# is no interval, count or total of anything, so they are reported only where one test set
# is scored (server-side pooled test set, centralised reference, baselines) and dropped from
# what is averaged across clients.
ONE_TEST_SET_KEYS: Final[frozenset[str]] = frozenset(
    {
        *(k for key in WITH_INTERVAL for k in interval_keys(key)),
        *COUNT_KEYS,
        "total_predicted",
        "total_actual",
        "tracking_error",
    }
)

# Probabilities are clipped to [EPS, 1 - EPS] before log loss: float32 sigmoids saturate to
# exactly 0 or 1, and one such confident miss would make the loss infinite.
PROBABILITY_EPS: Final[float] = 1e-7


def _vector(values: object, name: str) -> np.ndarray:
    """A finite, non-empty 1-D float64 array, or a DataError that says which input is wrong."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size == 0:
        raise DataError(f"{name}: empty; metrics need at least one example")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(
            f"{name}: {bad.size} non-finite values (first at index {bad[0]}); "
            f"check the model output / labels for NaN or inf"
        )
    return array


def _pair(y_true: object, other: object, other_name: str) -> tuple[np.ndarray, np.ndarray]:
    t, o = _vector(y_true, "y_true"), _vector(other, other_name)
    if len(t) != len(o):
        raise DataError(
            f"y_true has {len(t)} values but {other_name} has {len(o)}; "
            f"they must describe the same customers"
        )
    return t, o


def _binary_pair(y_true: object, y_prob: object) -> tuple[np.ndarray, np.ndarray]:
    t, p = _pair(y_true, y_prob, "y_prob")
    labels = np.unique(t)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DataError(f"y_true: binary labels must be 0 or 1, found {labels[:5].tolist()}")
    if p.min() < 0.0 or p.max() > 1.0:
        raise DataError(
            f"y_prob: probabilities must lie in [0, 1], found range "
            f"[{p.min():.4g}, {p.max():.4g}]; apply a sigmoid to logits first"
        )
    return t.astype(np.int64), p


def classification_metrics(
    y_true: object, y_prob: object, *, threshold: float = 0.5
) -> dict[str, float]:
    """Threshold metrics at ``threshold`` plus threshold-free ranking metrics.

    0.5 is the default because every model here is trained with log loss, so its outputs are
    (approximately) calibrated probabilities, and 0.5 is then the decision that minimises
    expected errors with equal costs. On rare purchases that often predicts no buyers at all;
    that is the truth about accuracy-style metrics, which is why ``roc_auc`` (and lift) are
    primary. A tuned threshold must come from validation data (`best_f1_threshold`), never
    from the test split being reported.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold={threshold}: must lie strictly between 0 and 1")
    from sklearn import metrics as skm  # here, not at the top: see the module docstring

    t, p = _binary_pair(y_true, y_prob)
    pred = (p >= threshold).astype(np.int64)
    both_classes = np.unique(t).size == 2
    clipped = np.clip(p, PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
    n_positive = int(t.sum())
    pr_auc = float(skm.average_precision_score(t, p)) if both_classes else math.nan
    roc_auc_low, roc_auc_high = delong_interval(p, t == 1)
    pr_auc_low, pr_auc_high = average_precision_interval(pr_auc, n_positive)
    return {
        "accuracy": float(skm.accuracy_score(t, pred)),
        "precision": float(skm.precision_score(t, pred, zero_division=np.nan)),
        "recall": float(skm.recall_score(t, pred, zero_division=np.nan)),
        "f1": float(skm.f1_score(t, pred, zero_division=np.nan)),
        "roc_auc": float(skm.roc_auc_score(t, p)) if both_classes else math.nan,
        "roc_auc_low": roc_auc_low,
        "roc_auc_high": roc_auc_high,
        "pr_auc": pr_auc,
        "pr_auc_low": pr_auc_low,
        "pr_auc_high": pr_auc_high,
        "log_loss": float(skm.log_loss(t, clipped, labels=[0, 1])),
        "positive_rate": float(t.mean()),
        "predicted_positive_rate": float(pred.mean()),
        "n": len(t),
        "n_positive": n_positive,
        "n_negative": len(t) - n_positive,
    }


def best_f1_threshold(y_true_val: object, y_prob_val: object) -> float:
    """The probability threshold that maximises F1 on *validation* data.

    Use it to pick a threshold before looking at test data; passing test labels here and
    reporting test F1 at the result is selection on the test set. Ties go to the highest
    threshold (fewest customers targeted).
    """
    t, p = _binary_pair(y_true_val, y_prob_val)
    if t.sum() == 0:
        raise DataError(
            "y_true_val has no positives; F1 (and so its best threshold) is "
            "undefined; use a validation split that contains buyers"
        )
    from sklearn import metrics as skm

    precision, recall, thresholds = skm.precision_recall_curve(t, p)
    # The last precision/recall pair has no threshold (recall 0 by construction).
    precision, recall = precision[:-1], recall[:-1]
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best].max())


def regression_metrics(y_true: object, y_pred: object) -> dict[str, float]:
    """Errors of a purchase-count prediction, how well it ranks, and how well it adds up.

    ``mape`` is a fraction (0.25 = 25 %) computed on the examples whose target is non-zero
    only, because a percentage error of a zero count is infinite; it is NaN when every target
    is zero. Most customers buy nothing, so read ``mape`` as "error among buyers".
    ``r2`` is NaN when the targets are constant (no variance to explain) or n < 2.
    ``pearson`` and ``spearman`` (with Fisher-z intervals) say whether the customers predicted
    to buy more do buy more; NaN when either side is constant. ``tracking_error`` is the
    relative error of the predicted total, ``total_predicted / total_actual - 1`` (signed:
    +0.1 forecasts 10 % too many purchases), what a planner forecasting demand from the sum
    reads; NaN when no test customer bought.
    """
    from sklearn import metrics as skm

    t, p = _pair(y_true, y_pred, "y_pred")
    nonzero = t != 0
    constant = t.size < 2 or np.all(t == t[0])
    pearson, spearman = _correlations(t, p, constant)
    total_predicted, total_actual = float(p.sum()), float(t.sum())
    n_positive = int(nonzero.sum())
    return {
        "mae": float(skm.mean_absolute_error(t, p)),
        "rmse": float(skm.root_mean_squared_error(t, p)),
        "r2": math.nan if constant else float(skm.r2_score(t, p)),
        "mape": float(skm.mean_absolute_percentage_error(t[nonzero], p[nonzero]))
        if nonzero.any()
        else math.nan,
        "pearson": pearson,
        **dict(zip(interval_keys("pearson"), fisher_z_interval(pearson, len(t)), strict=True)),
        "spearman": spearman,
        **dict(
            zip(
                interval_keys("spearman"),
                fisher_z_interval(spearman, len(t), spearman=True),
                strict=True,
            )
        ),
        "total_predicted": total_predicted,
        "total_actual": total_actual,
        "tracking_error": total_predicted / total_actual - 1.0 if total_actual else math.nan,
        "n": len(t),
        "n_positive": n_positive,
        "n_negative": len(t) - n_positive,
    }


def _correlations(t: np.ndarray, p: np.ndarray, constant: bool) -> tuple[float, float]:
    """(Pearson, Spearman) by scipy; NaN, without scipy's warning, when a side is constant."""
    if constant or np.all(p == p[0]):
        return math.nan, math.nan
    from scipy.stats import NearConstantInputWarning, pearsonr, spearmanr

    with warnings.catch_warnings():  # nearly constant predictions (an untrained model):
        warnings.simplefilter("ignore", NearConstantInputWarning)  # a number, not console noise
        return float(pearsonr(t, p).statistic), float(spearmanr(t, p).statistic)
