"""Lift, gains and random targeting on hand-built rankings; the shared plot helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

from fedmarket.errors import ConfigError, DataError
from fedmarket.marketing import (
    at_key,
    cumulative_gains,
    lift_at_k,
    lift_key,
    marketing_report,
    random_targeting_rate,
    report_keys,
    targeting_metrics,
)
from fedmarket.plots import DPI, gains_plot, learning_curve_plot

# 100 customers, the 10 buyers ranked highest: a perfect model with base rate 0.1.
PERFECT_Y = np.r_[np.ones(10), np.zeros(90)]
PERFECT_SCORE = np.linspace(1.0, 0.0, 100)


def test_perfect_ranking_lift_is_inverse_base_rate_up_to_base_rate() -> None:
    rows = lift_at_k(PERFECT_Y, PERFECT_SCORE)
    assert [r["k"] for r in rows] == [0.01, 0.05, 0.10, 0.20]
    assert [r["n_targeted"] for r in rows] == [1, 5, 10, 20]
    assert [r["conversions"] for r in rows] == [1, 5, 10, 10]
    assert [r["lift"] for r in rows] == pytest.approx([10, 10, 10, 5])
    assert rows[3]["conversion_rate"] == 0.5
    assert all(r["base_rate"] == 0.1 for r in rows)


def test_reverse_ranking_has_zero_lift() -> None:
    rows = lift_at_k(PERFECT_Y, -PERFECT_SCORE, ks=(0.5,))
    assert rows[0]["conversions"] == 0 and rows[0]["lift"] == 0


def test_ties_are_credited_with_the_block_mean() -> None:
    # Ranked: score 3 (no), then a tie at 2 holding one buyer in three, then score 1 (buyer).
    rows = lift_at_k([0, 1, 0, 0, 1], [3, 2, 2, 2, 1], ks=(0.4,))
    assert rows[0]["n_targeted"] == 2
    assert rows[0]["conversions"] == pytest.approx(1 / 3)
    assert rows[0]["lift"] == pytest.approx((1 / 6) / 0.4)


def test_constant_scores_give_lift_one_whatever_the_row_order() -> None:
    y = np.r_[np.ones(2), np.zeros(8)]
    for labels in (y, y[::-1]):
        row = lift_at_k(labels, np.zeros(10), ks=(0.1,))[0]
        assert row["conversions"] == pytest.approx(0.2)
        assert row["lift"] == pytest.approx(1.0)


def test_n_targeted_rounds_up_without_float_drift() -> None:
    assert lift_at_k(np.r_[1, np.zeros(29)], np.arange(30), ks=(0.1,))[0]["n_targeted"] == 3
    assert lift_at_k([1, 0, 0, 0, 0, 0, 0], np.arange(7), ks=(0.01, 0.5))[0]["n_targeted"] == 1
    assert lift_at_k([1, 0, 0, 0, 0, 0, 0], np.arange(7), ks=(0.5,))[0]["n_targeted"] == 4


def test_random_scores_give_lift_near_one() -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(20_000) < 0.2).astype(float)
    rows = lift_at_k(y, rng.random(20_000))
    for row in rows[1:]:  # 1 % is 200 customers: too noisy for a tight bound
        assert row["lift"] == pytest.approx(1.0, abs=0.2)


def test_no_buyers_gives_nan_lift() -> None:
    row = lift_at_k(np.zeros(5), np.arange(5), ks=(0.2,))[0]
    assert row["base_rate"] == 0 and math.isnan(row["lift"])


@pytest.mark.parametrize(
    ("y", "score", "error", "match"),
    [
        ([0, 1], [0.1, np.nan], DataError, "non-finite"),
        ([0, 2], [0.1, 0.2], DataError, "0 or 1"),
        ([0, 1, 1], [0.1, 0.2], DataError, "3 values"),
        ([], [], DataError, "empty"),
    ],
)
def test_lift_bad_input(y: list, score: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        lift_at_k(y, score)


@pytest.mark.parametrize("k", [0.0, 1.5, -0.1])
def test_bad_k(k: float) -> None:
    with pytest.raises(ConfigError, match="k="):
        lift_at_k(PERFECT_Y, PERFECT_SCORE, ks=(k,))


def test_gains_curve_endpoints_monotone_and_consistent_with_lift() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.15).astype(float)
    score = np.round(rng.random(500) + y * 0.5, 1)  # informative, with many ties
    x, captured = cumulative_gains(y, score)
    assert len(x) == len(captured) == 501
    assert (x[0], captured[0]) == (0.0, 0.0) and (x[-1], captured[-1]) == (1.0, 1.0)
    assert np.all(np.diff(captured) >= 0) and np.all(np.diff(x) > 0)
    for row in lift_at_k(y, score):
        assert captured[row["n_targeted"]] * y.sum() == pytest.approx(row["conversions"])


def test_gains_perfect_and_constant() -> None:
    x, captured = cumulative_gains(PERFECT_Y, PERFECT_SCORE)
    assert captured[10] == 1.0 and captured[5] == 0.5
    x, captured = cumulative_gains(PERFECT_Y, np.ones(100))
    np.testing.assert_allclose(captured, x)  # ties everywhere: exactly the random diagonal
    with pytest.raises(DataError, match="no buyers"):
        cumulative_gains(np.zeros(3), [1, 2, 3])


def test_random_targeting_rate_matches_base_rate() -> None:
    y = np.r_[np.ones(300), np.zeros(700)]
    rate = random_targeting_rate(y, 0.1, np.random.default_rng(0), n_draws=5000)
    assert rate == pytest.approx(0.3, abs=0.005)
    same = random_targeting_rate(y, 0.1, np.random.default_rng(0), n_draws=5000)
    assert same == rate  # the generator, not global state, decides
    with pytest.raises(ConfigError, match="n_draws"):
        random_targeting_rate(y, 0.1, np.random.default_rng(0), n_draws=0)


def test_marketing_report_flat_keys_and_table() -> None:
    report = marketing_report(PERFECT_Y, PERFECT_SCORE)
    assert report["lift_at_1"] == report["lift_at_5"] == report["lift_at_10"] == 10
    assert report["lift_at_20"] == 5
    assert report["base_rate"] == 0.1
    assert report["lift_table"] == lift_at_k(PERFECT_Y, PERFECT_SCORE)
    assert lift_key(0.025) == "lift_at_2.5" and lift_key(0.1) == "lift_at_10"
    assert report["capture_at_1"] == 0.1 and report["capture_at_20"] == 1.0
    # The top 10 % are exactly the 10 buyers: every one predicted right, none missed.
    assert (report["precision_at_10"], report["recall_at_10"], report["f1_at_10"]) == (1, 1, 1)
    assert set(report_keys()) <= set(report) and at_key("f1", 0.025) == "f1_at_2.5"


def capture_at_k(y_true, score, ks):
    return [row["capture_rate"] for row in lift_at_k(y_true, score, ks)]


def test_capture_is_the_share_of_all_buyers_in_the_top_k() -> None:
    # 10 customers ranked in row order, buyers at ranks 1, 3 and 9 (3 buyers in all):
    # top 1 and top 2 hold one buyer, top 3 and top 5 hold two, all 10 hold three.
    y = [1, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    captured = capture_at_k(y, np.arange(10, 0, -1), ks=(0.1, 0.2, 0.3, 0.5, 1.0))
    assert captured == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0])
    # Ties: the top 2 hold score 3 (no buyer) and one of three tied at 2 (one buyer in the
    # tie), so 1/3 of a buyer out of 2 buyers in all.
    assert capture_at_k([0, 1, 0, 0, 1], [3, 2, 2, 2, 1], ks=(0.4,)) == pytest.approx([1 / 6])
    assert math.isnan(capture_at_k([0, 0, 0], [1, 2, 3], ks=(0.5,))[0])


def test_targeting_metrics_at_the_cut() -> None:
    # Same ranking, top 30 %: 3 targeted, 2 of them buy, 2 of the 3 buyers reached.
    (row,) = lift_at_k([1, 0, 1, 0, 0, 0, 0, 0, 1, 0], np.arange(10, 0, -1), ks=(0.3,))
    metrics = targeting_metrics(row)
    assert metrics == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    (none_buy,) = lift_at_k([0, 0, 1], [3, 2, 1], ks=(0.3,))
    assert targeting_metrics(none_buy) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    (no_buyers,) = lift_at_k([0, 0, 0], [3, 2, 1], ks=(0.3,))
    no_buyers_metrics = targeting_metrics(no_buyers)  # precision is defined: 0 of 1 bought
    assert no_buyers_metrics["precision"] == 0.0
    assert math.isnan(no_buyers_metrics["recall"]) and math.isnan(no_buyers_metrics["f1"])


def test_gains_plot_writes_png(tmp_path) -> None:
    curve = cumulative_gains(PERFECT_Y, PERFECT_SCORE)
    path = gains_plot({"perfect": curve}, tmp_path / "sub" / "gains.png", "Gains")
    image = imread(path)
    assert image.shape[:2] == (round(3.6 * DPI), round(5.0 * DPI))
    with pytest.raises(ConfigError, match="no curves"):
        gains_plot({}, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="PNG"):
        gains_plot({"perfect": curve}, tmp_path / "x.pdf")


def test_learning_curve_plot(tmp_path) -> None:
    history = [
        {"round": 1, "roc_auc": 0.6, "loss": 0.7},
        {"round": 2, "roc_auc": 0.7},
        {"round": 3, "roc_auc": "", "loss": 0.5},
    ]
    path = learning_curve_plot(history, tmp_path / "curve.png", ["roc_auc", "loss"])
    assert path.stat().st_size > 0
    with pytest.raises(ConfigError, match="appear in no history row"):
        learning_curve_plot(history, tmp_path / "c.png", ["f1"])
    with pytest.raises(ConfigError, match="empty"):
        learning_curve_plot([], tmp_path / "c.png", ["f1"])
    with pytest.raises(ConfigError, match="not a number"):
        learning_curve_plot([{"loss": "abc"}], tmp_path / "c.png", ["loss"])
