from __future__ import annotations

import numpy as np
import pytest

from fedmarket.recommend.baselines import (
    BASELINES,
    cooccurrence_knn,
    global_popularity,
    history_counts,
    retailer_popularity,
    with_cold_start,
)
from fedmarket.recommend.data import RecSplit
from fedmarket.recommend.evaluate import comparison, lift_over, markdown_table


def split(histories: list[list[int]], targets: list[set[int]], partition: list[int]) -> RecSplit:
    n, length, n_items = len(histories), 3, 4
    X = np.full((n, length, 3), -1.0, np.float32)
    X[..., 2] = 0
    for row, items in enumerate(histories):
        if items:
            X[row, -len(items) :, 0] = items
            X[row, -len(items) :, 1] = 0
    y = np.zeros((n, n_items), np.float32)
    for row, items in enumerate(targets):
        y[row, list(items)] = 1
    counts = np.array([len(h) for h in histories], np.int32)
    return RecSplit(X, y, counts, np.array(partition, np.int32))


# items 0 and 1 go together; retailer 0 sells item 2 most, retailer 1 item 3
TRAIN = split(
    [[0], [0], [1], [2], [3], [3]],
    [{1}, {1, 2}, {0}, {2}, {3}, {3}],
    [0, 0, 0, 0, 1, 1],
)
TEST = split([[0], [], [2, 2]], [{1}, {3}, {2}], [0, 1, 0])


def test_history_counts():
    assert history_counts(TEST, 4).toarray().tolist() == [[1, 0, 0, 0], [0] * 4, [0, 0, 2, 0]]


def test_popularity_global_and_per_retailer():
    g = global_popularity(TRAIN, TEST)
    assert np.argsort(-g[0], kind="stable")[:3].tolist() == [1, 2, 3]  # 2, 2, 2 targets; then 0
    r = retailer_popularity(TRAIN, TEST)
    assert int(np.argmax(r[0])) in (1, 2) and int(np.argmax(r[1])) == 3


def test_cooccurrence_ranks_the_items_bought_with_the_history_first():
    s = cooccurrence_knn(TRAIN, TEST)
    assert s[0, 1] > s[0, 2] and s[0, 1] > s[0, 3]  # 0 co-occurs with 1
    assert int(np.argmax(s[2])) == 2  # its own history's item


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_scores_every_item_of_every_test_customer(name):
    s = BASELINES[name](TRAIN, TEST)
    assert s.shape == (3, 4) and np.isfinite(s).all()


def test_cold_start_path_replaces_customers_without_history():
    fallback = retailer_popularity(TRAIN, TEST)
    out = with_cold_start(np.zeros((3, 4)), fallback, TEST)
    assert out[1].tolist() == fallback[1].tolist() and out[0].tolist() == [0] * 4


def test_comparison_has_warm_and_cold_rows_and_a_table():
    scores = {"perfect": TEST.y_categories.astype(float), "pop": global_popularity(TRAIN, TEST)}
    rows = comparison(TEST, scores)
    got = {(r["model"], r["customers"]): r for r in rows}
    assert got[("perfect", "all")]["ndcg@10"] == 1.0 and got[("perfect", "all")]["mrr"] == 1.0
    assert got[("perfect", "cold")]["n_customers"] == 3  # every one has < 3 events
    assert got[("perfect", "warm")]["n_customers"] == 0
    assert lift_over(rows, "perfect", "pop", "mrr") > 0
    table = markdown_table(rows)
    assert "| perfect |" in table and "cold = fewer than 3" in table


def test_new_item_hit_rate():
    from fedmarket.recommend.evaluate import new_item_hit_rate

    # items 2 and 3 are new (n_known=2); customers 1 (target 3) and 2 (target 2) have new targets
    scores = {"up": np.tile([0.0, 1.0, 2.0, 3.0], (3, 1))}
    got = new_item_hit_rate(TEST, scores, n_known=2)
    assert got == {"customers": 2, "items": 2, "up": 1.0}
    assert new_item_hit_rate(TEST, scores, n_known=4)["customers"] == 0
