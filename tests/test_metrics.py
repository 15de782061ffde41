"""Metric values against hand-computed numbers on six examples, and the NaN rules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fedmarket.errors import ConfigError, DataError
from fedmarket.metrics import (
    CLASSIFICATION_KEYS,
    REGRESSION_KEYS,
    best_f1_threshold,
    classification_metrics,
    regression_metrics,
)

# Six customers; at threshold 0.5 the predictions are [0, 1, 0, 1, 0, 1]:
# TP = 2 (rows 3, 5), FP = 1 (row 1), FN = 1 (row 2), TN = 2.
Y = np.array([0, 0, 1, 1, 0, 1], dtype=np.float32)
P = np.array([0.1, 0.6, 0.4, 0.8, 0.3, 0.9], dtype=np.float32)


def test_classification_metrics_hand_computed() -> None:
    m = classification_metrics(Y, P)
    assert list(m) == list(CLASSIFICATION_KEYS)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # 8 of the 9 (positive, negative) pairs are ordered correctly: 0.4 < 0.6 is the miss.
    assert m["roc_auc"] == pytest.approx(8 / 9)
    # Ranked: 1, 1, 0, 1, 0, 0 -> precision at each buyer 1, 1, 3/4.
    assert m["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    p_correct = [0.9, 0.4, 0.4, 0.8, 0.7, 0.9]
    assert m["log_loss"] == pytest.approx(-sum(math.log(p) for p in p_correct) / 6, rel=1e-6)
    assert m["positive_rate"] == 0.5
    assert m["predicted_positive_rate"] == 0.5
    assert m["n"] == 6


def test_threshold_changes_only_threshold_metrics() -> None:
    m = classification_metrics(Y, P, threshold=0.7)  # predictions [0, 0, 0, 1, 0, 1]
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(0.8)
    assert m["roc_auc"] == pytest.approx(8 / 9)


def test_one_class_gives_nan_not_crash_or_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics([0, 0, 0], [0.2, 0.7, 0.1])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"]) and math.isnan(m["recall"])
    assert m["precision"] == 0.0  # one customer predicted positive, and wrongly
    assert m["f1"] == 0.0
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert math.isfinite(m["log_loss"])
    none_predicted = classification_metrics([0, 0], [0.2, 0.1])
    assert math.isnan(none_predicted["precision"]) and math.isnan(none_predicted["f1"])
    all_buyers = classification_metrics([1, 1], [0.9, 0.2])
    assert math.isnan(all_buyers["roc_auc"]) and math.isnan(all_buyers["pr_auc"])
    assert all_buyers["recall"] == 0.5


def test_no_predicted_positives_with_buyers() -> None:
    m = classification_metrics([1, 0, 0, 0], [0.3, 0.1, 0.2, 0.05])
    assert math.isnan(m["precision"])  # nothing predicted positive: undefined
    assert m["recall"] == 0.0
    assert m["f1"] == 0.0  # 2TP / (2TP + FP + FN) = 0 / 1
    assert m["roc_auc"] == 1.0
    assert m["predicted_positive_rate"] == 0.0


def test_saturated_probabilities_are_clipped_in_log_loss() -> None:
    m = classification_metrics([1, 0], [0.0, 1.0])
    assert m["log_loss"] == pytest.approx(-math.log(1e-7), rel=1e-6)


@pytest.mark.parametrize(
    ("y_true", "y_prob", "match"),
    [
        ([0, 1, 1], [0.1, 0.9], "3 values but y_prob has 2"),
        ([0, 2], [0.1, 0.9], "must be 0 or 1"),
        ([0, 1], [0.1, 1.2], r"lie in \[0, 1\]"),
        ([0, 1], [0.1, np.nan], "non-finite"),
        ([], [], "empty"),
        ([[0, 1], [1, 0]], [[0.1, 0.2], [0.3, 0.4]], "1-D"),
    ],
)
def test_classification_bad_input(y_true: list, y_prob: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        classification_metrics(y_true, y_prob)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2])
def test_bad_threshold(threshold: float) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        classification_metrics(Y, P, threshold=threshold)


def test_column_vectors_are_accepted() -> None:
    assert classification_metrics(Y[:, None], P[:, None]) == classification_metrics(Y, P)


def test_best_f1_threshold() -> None:
    # F1 at thresholds 0.9, 0.8, 0.6, 0.4, 0.3, 0.1: 1/2, 4/5, 2/3, 6/7, 3/4, 2/3.
    assert best_f1_threshold(Y, P) == pytest.approx(0.4)
    # F1 = 2/3 at both 0.9 and 0.2: the higher threshold wins.
    assert best_f1_threshold([1, 0, 0, 1], [0.9, 0.7, 0.6, 0.2]) == pytest.approx(0.9)
    with pytest.raises(DataError, match="no positives"):
        best_f1_threshold([0, 0], [0.1, 0.2])


def test_regression_metrics_hand_computed() -> None:
    m = regression_metrics([0, 1, 2, 3], [0.5, 1, 1, 4])
    assert list(m) == list(REGRESSION_KEYS)
    assert m["mae"] == pytest.approx(2.5 / 4)
    assert m["rmse"] == pytest.approx(0.75)
    assert m["r2"] == pytest.approx(1 - 2.25 / 5)
    assert m["mape"] == pytest.approx((0 + 1 / 2 + 1 / 3) / 3)  # the zero target is left out
    assert m["n"] == 4


def test_regression_undefined_values() -> None:
    zeros = regression_metrics([0, 0, 0], [0.0, 1.0, 0.5])
    assert math.isnan(zeros["mape"]) and math.isnan(zeros["r2"])
    assert zeros["mae"] == pytest.approx(0.5)
    single = regression_metrics([2.0], [1.0])
    assert math.isnan(single["r2"]) and single["mape"] == 0.5 and single["rmse"] == 1.0
    with pytest.raises(DataError, match="non-finite"):
        regression_metrics([1.0, 2.0], [np.inf, 1.0])
