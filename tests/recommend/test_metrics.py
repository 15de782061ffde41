from __future__ import annotations

import math

import numpy as np
import pytest

from fedmarket.errors import DataError
from fedmarket.recommend.metrics import ranking_metrics, ranks


def _relevant(sets: list[set[int]], n_items: int = 12) -> np.ndarray:
    y = np.zeros((len(sets), n_items))
    for row, items in enumerate(sets):
        y[row, list(items)] = 1
    return y


def test_three_customers_by_hand():
    # every customer ranks item i at i + 1; relevant: A {1} (rank 2), B {10, 11} (ranks 11
    # and 12: outside the top 10), C {0, 5} (ranks 1 and 6)
    scores = -np.tile(np.arange(12.0), (3, 1))
    m = ranking_metrics(_relevant([{1}, {10, 11}, {0, 5}]), scores)
    ndcg_a = 1 / math.log2(3)
    ndcg_c = (1 + 1 / math.log2(7)) / (1 + 1 / math.log2(3))
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((ndcg_a + 0 + ndcg_c) / 3)  # 0.48750
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 11 + 1) / 3)
    assert m["coverage@10"] == pytest.approx(10 / 12)  # items 0..9 are everyone's top 10
    assert m["n_customers"] == 3


def test_customers_without_targets_are_left_out_but_count_for_coverage():
    scores = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    m = ranking_metrics(np.array([[0, 0, 1], [0, 0, 0]]), scores)
    assert m["hr@10"] == 1 and m["mrr"] == 1 and m["n_customers"] == 1
    assert m["coverage@10"] == 1.0


def test_ties_break_by_item_index():
    assert ranks(np.array([[1.0, 1.0, 2.0]])).tolist() == [[2, 3, 1]]


def test_nothing_to_measure_and_bad_shapes():
    nan = ranking_metrics(np.zeros((2, 3)), np.zeros((2, 3)))
    assert math.isnan(nan["hr@10"]) and nan["n_customers"] == 0
    assert math.isnan(ranking_metrics(np.ones((1, 2)), np.array([[np.nan, 1.0]]))["mrr"])
    with pytest.raises(DataError, match="one shape"):
        ranking_metrics(np.ones((2, 3)), np.ones((2, 4)))
