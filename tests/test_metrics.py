"""Metric values against hand-computed numbers on six examples, and the NaN rules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from fedmarket.errors import ConfigError, DataError
from fedmarket.intervals import delong_interval, fisher_z_interval
from fedmarket.metrics import (
    CLASSIFICATION_KEYS,
    ONE_TEST_SET_KEYS,
    REGRESSION_KEYS,
    WITH_INTERVAL,
    best_f1_threshold,
    classification_metrics,
    interval_keys,
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
    assert (m["n_positive"], m["n_negative"]) == (3, 3)


def test_classification_intervals() -> None:
    m = classification_metrics(Y, P)
    assert (m["roc_auc_low"], m["roc_auc_high"]) == delong_interval(P, Y == 1)
    assert m["roc_auc_low"] < m["roc_auc"] < m["roc_auc_high"] == 1.0  # clipped at 1
    # AP 11/12 on 3 buyers: logit ln 11 = 2.397895, half-width 1.959964 / sqrt(3 · 11/144)
    # = 4.094231; back-transformed 1 / (1 + e^1.696336) and 1 / (1 + e^-6.492126)
    assert (m["pr_auc_low"], m["pr_auc_high"]) == pytest.approx((0.1549444, 0.9984870), abs=1e-7)


def test_key_sets_hold_every_interval_and_count_once() -> None:
    for keys in (CLASSIFICATION_KEYS, REGRESSION_KEYS):
        assert len(set(keys)) == len(keys)
        assert {"n", "n_positive", "n_negative"} <= set(keys)
        for key in WITH_INTERVAL:
            if key in keys:
                assert keys.index(key) + 1 == keys.index(f"{key}_low")  # next to its metric
                assert set(interval_keys(key)) <= ONE_TEST_SET_KEYS
    assert set(CLASSIFICATION_KEYS) | set(REGRESSION_KEYS) >= ONE_TEST_SET_KEYS
    # what federated evaluation may average: the metrics, never the intervals or counts
    assert {"roc_auc", "pr_auc", "pearson", "spearman", "rmse"}.isdisjoint(ONE_TEST_SET_KEYS)


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
    assert all(math.isnan(m[k]) for k in (*interval_keys("roc_auc"), *interval_keys("pr_auc")))
    assert (m["n_positive"], m["n_negative"]) == (0, 3)
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
    # totals 6.5 predicted against 6 bought: 8.3 % too many
    assert (m["total_predicted"], m["total_actual"]) == (6.5, 6.0)
    assert m["tracking_error"] == pytest.approx(0.5 / 6)
    assert (m["n_positive"], m["n_negative"]) == (3, 1)  # customers who bought at all


def test_regression_correlations_match_scipy() -> None:
    rng = np.random.default_rng(5)
    y = rng.poisson(1.5, size=40).astype(float)
    pred = np.clip(y + rng.normal(scale=1.0, size=40), 0, None)
    m = regression_metrics(y, pred)
    reference = pearsonr(y, pred)
    ci = reference.confidence_interval(confidence_level=0.95)
    assert m["pearson"] == pytest.approx(reference.statistic, abs=1e-12)
    assert (m["pearson_low"], m["pearson_high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    rho = spearmanr(y, pred).statistic
    assert m["spearman"] == pytest.approx(rho, abs=1e-12)
    expected = fisher_z_interval(float(rho), 40, spearman=True)
    assert (m["spearman_low"], m["spearman_high"]) == pytest.approx(expected)
    assert m["tracking_error"] == pytest.approx(pred.sum() / y.sum() - 1)


def test_regression_undefined_values() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on constant input; we say NaN instead
        zeros = regression_metrics([0, 0, 0], [0.0, 1.0, 0.5])
        flat = regression_metrics([0, 1, 2, 5], [1.0, 1.0, 1.0, 1.0])
    assert math.isnan(zeros["mape"]) and math.isnan(zeros["r2"])
    assert math.isnan(zeros["tracking_error"]) and zeros["total_predicted"] == 1.5
    assert math.isnan(zeros["pearson"]) and math.isnan(zeros["spearman_low"])
    assert math.isnan(flat["pearson"]) and math.isnan(flat["spearman"])
    assert flat["tracking_error"] == pytest.approx(4 / 8 - 1)  # half the purchases forecast
    assert zeros["mae"] == pytest.approx(0.5)
    single = regression_metrics([2.0], [1.0])
    assert math.isnan(single["r2"]) and single["mape"] == 0.5 and single["rmse"] == 1.0
    with pytest.raises(DataError, match="non-finite"):
        regression_metrics([1.0, 2.0], [np.inf, 1.0])
