"""Intervals against references: DeLong against a slow double loop, the AP logit interval and
the Spearman interval by hand, Pearson against scipy; the small-test warning's thresholds."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr

from fedmarket.errors import ConfigError, DataError
from fedmarket.intervals import (
    average_precision_interval,
    delong_interval,
    fisher_z_interval,
    report_warning,
    small_test_warning,
    with_interval,
)

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


def delong_by_loops(scores: list[float], positive: list[bool]) -> tuple[float, float, float]:
    """(AUC, variance, z-interval half-width) the slow way: DeLong et al. (1988), eqs. for
    the structural components V10 (per positive) and V01 (per negative), one pair at a time."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]

    def psi(x: float, y: float) -> float:
        return 1.0 if x > y else 0.5 if x == y else 0.0

    v10 = [sum(psi(x, y) for y in neg) / len(neg) for x in pos]
    v01 = [sum(psi(x, y) for x in pos) / len(pos) for y in neg]
    auc = sum(v10) / len(pos)
    s10 = sum((v - auc) ** 2 for v in v10) / (len(pos) - 1)
    s01 = sum((v - auc) ** 2 for v in v01) / (len(neg) - 1)
    variance = s10 / len(pos) + s01 / len(neg)
    return auc, variance, Z95 * math.sqrt(variance)


def test_delong_matches_the_structural_components_by_double_loop() -> None:
    rng = np.random.default_rng(7)
    positive = rng.random(40) < 0.3
    scores = np.round(rng.normal(size=40) + 0.8 * positive, 1)  # rounding makes ties
    auc, _, half = delong_by_loops(scores.tolist(), positive.tolist())
    low, high = delong_interval(scores, positive, 0.95)
    assert (low, high) == pytest.approx((auc - half, auc + half), abs=1e-12)
    # 90 %: the same variance, a narrower z
    low90, high90 = delong_interval(scores, positive, 0.90)
    assert high90 - low90 == pytest.approx(2 * 1.6448536269514722 * half / Z95, rel=1e-12)


def test_delong_by_hand_on_five_customers() -> None:
    # positives 0.9, 0.4; negatives 0.6, 0.1, 0.4. V10: 0.9 beats all (1), 0.4 beats 0.1 and
    # ties 0.4 (0.5). V01: 0.6 <- only 0.9 (0.5), 0.1 <- both (1), 0.4 <- 0.9 and a tie (0.75).
    scores = [0.9, 0.4, 0.6, 0.1, 0.4]
    positive = [True, True, False, False, False]
    auc = 0.75  # mean of V10 (1, 0.5)
    s10 = ((1 - auc) ** 2 + (0.5 - auc) ** 2) / 1  # 0.125
    s01 = ((0.5 - auc) ** 2 + (1 - auc) ** 2 + (0.75 - auc) ** 2) / 2  # 0.0625
    half = Z95 * math.sqrt(s10 / 2 + s01 / 3)
    assert delong_by_loops(scores, positive)[0] == auc
    assert delong_interval(np.array(scores), np.array(positive)) == pytest.approx(
        (max(0.0, auc - half), min(1.0, auc + half))
    )


def test_delong_needs_two_of_each_class_and_a_sane_confidence() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lone = delong_interval(np.array([0.9, 0.1, 0.2]), np.array([True, False, False]))
    assert all(math.isnan(v) for v in lone)
    with pytest.raises(ConfigError, match="confidence"):
        delong_interval(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]), 1.0)


def test_average_precision_logit_interval_by_hand() -> None:
    # AP 0.75 on 3 buyers: logit = ln 3 = 1.098612; half-width z / sqrt(3 · 0.75 · 0.25)
    # = 1.959964 / 0.75 = 2.613285; back: 1 / (1 + e^(1.514673)) and 1 / (1 + e^(-3.711898)).
    low, high = average_precision_interval(0.75, 3)
    assert (low, high) == pytest.approx((0.1802473, 0.9761515), abs=1e-7)
    # more buyers, the same AP: narrower, and asymmetric around AP on the logit scale
    low_many, high_many = average_precision_interval(0.75, 300)
    assert low < low_many < 0.75 < high_many < high
    assert 0.75 - low_many > high_many - 0.75


def test_average_precision_interval_edges_and_bad_input() -> None:
    assert average_precision_interval(1.0, 5) == (0.0, 1.0)  # the limit: infinitely wide
    assert all(math.isnan(v) for v in average_precision_interval(math.nan, 5))
    assert all(math.isnan(v) for v in average_precision_interval(0.5, 0))
    with pytest.raises(DataError, match="cannot be negative"):
        average_precision_interval(0.5, -1)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        average_precision_interval(1.5, 3)


def test_pearson_interval_matches_scipy() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=25)
    y = 0.6 * x + rng.normal(size=25)
    result = pearsonr(x, y)
    for confidence in (0.95, 0.8):
        reference = result.confidence_interval(confidence_level=confidence)
        assert fisher_z_interval(float(result.statistic), 25, confidence) == pytest.approx(
            (reference.low, reference.high), abs=1e-12
        )


def test_spearman_interval_by_hand() -> None:
    # r = 0.5, n = 13: atanh(0.5) = 0.549306, se = sqrt(1.06 / 10) = 0.325576,
    # tanh(0.549306 -+ 1.959964 · 0.325576) = tanh(-0.088812), tanh(1.187424)
    low, high = fisher_z_interval(0.5, 13, spearman=True)
    assert (low, high) == pytest.approx((-0.0885791, 0.8297783), abs=1e-6)
    assert fisher_z_interval(1.0, 10) == (1.0, 1.0)
    assert all(math.isnan(v) for v in fisher_z_interval(0.3, 3))
    assert all(math.isnan(v) for v in fisher_z_interval(math.nan, 30))
    with pytest.raises(DataError, match="correlation"):
        fisher_z_interval(1.2, 30)


@pytest.mark.parametrize(
    ("buyers", "non_buyers", "expected"),
    [
        (30, 30, None),
        (29, 500, "only 29 buyers (fewer than 30)"),
        (500, 12, "only 12 non-buyers (fewer than 30)"),
        (7, 3, "only 7 buyers and 3 non-buyers (fewer than 30)"),
        (0, 1000, "only 0 buyers"),
    ],
)
def test_small_test_warning_thresholds(buyers: int, non_buyers: int, expected: str | None) -> None:
    warning = small_test_warning(buyers, non_buyers)
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and expected in warning
        assert warning.startswith("the test set has only ")
        assert warning.endswith("ROC-AUC and PR-AUC intervals are wide; do not rank models on it")


def test_small_test_warning_minimum_and_bad_counts() -> None:
    assert small_test_warning(40, 40, minimum=50) is not None
    assert small_test_warning(5, 5, minimum=5) is None
    assert small_test_warning(5.0, 2000.0) is not None  # integral floats from a JSON file
    assert "1,200 non-buyers" in small_test_warning(5, 1200, minimum=2000)
    with pytest.raises(DataError, match="buyers: expected a count >= 0"):
        small_test_warning(-1, 50)
    with pytest.raises(DataError, match="non-buyers"):
        small_test_warning(50, 2.5)
    with pytest.raises(ConfigError, match="minimum"):
        small_test_warning(50, 50, minimum=0)


def test_report_warning_reads_the_counts_of_a_report() -> None:
    assert "only 7 buyers" in report_warning({"n_positive": 7, "n_negative": 400})
    assert report_warning({"n_positive": 70, "n_negative": 400}) is None
    assert report_warning({"roc_auc": 0.7}) is None  # written before counts were reported


def test_with_interval_formats_a_table_cell() -> None:
    assert with_interval(0.8123, 0.7912, 0.8334) == "0.812 (0.791-0.833)"
    assert with_interval(-0.12, -0.31, 0.08) == "-0.120 (-0.310 to 0.080)"
    assert with_interval(0.8123, math.nan, math.nan) == "0.812"
    assert with_interval(0.8123, None, None, digits=4) == "0.8123"
    assert with_interval(math.nan, 0.1, 0.2) == "n/a" == with_interval(None, None, None)
