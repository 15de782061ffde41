"""Per-retailer metrics and the federated-against-local-only verdict, on a tiny fixed set
whose every number is computed by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedmarket.errors import DataError
from fedmarket.intervals import delong_interval
from fedmarket.paired import paired_delong
from fedmarket.predictions import Predictions
from fedmarket.value.per_retailer import (
    compare_retailers,
    partition_names,
    retailer_metrics,
    retailers_block,
)

# Partition 0: 5 customers, buyers c0 and c2 (base rate 0.4).
#   federated ranks both buyers first: ROC-AUC 1, PR-AUC 1, the top 10 % (ceil(0.5) = 1
#   customer) is a buyer: lift 1 / 0.4 = 2.5.
#   local-only scores a non-buyer (0.7) first: buyers 0.6 and 0.4 each outscore 2 of the 3
#   non-buyers: ROC-AUC 4/6; precision 1/2 at the first buyer, 2/3 at the second: PR-AUC
#   (1/2 + 2/3) / 2 = 7/12; the top customer does not buy: lift 0.
# Partition 1: 4 customers, buyers d1 and d3 (base rate 0.5).
#   federated: buyer 0.5 outscores one non-buyer (0.4), buyer 0.3 none: ROC-AUC 1/4; top is
#   a non-buyer: lift 0. local-only ranks both buyers first: ROC-AUC 1, lift 1 / 0.5 = 2.
Y0, FED0, LOC0 = [1, 0, 1, 0, 0], [0.9, 0.1, 0.8, 0.3, 0.2], [0.4, 0.7, 0.6, 0.3, 0.2]
Y1, FED1, LOC1 = [0, 1, 0, 1], [0.6, 0.5, 0.4, 0.3], [0.1, 0.9, 0.2, 0.8]


def predictions(score0, score1, *, task="purchase", order=slice(None)) -> Predictions:
    partition = np.array([0] * 5 + [1] * 4)
    customer = np.array([f"c{i}" for i in range(5)] + [f"d{i}" for i in range(4)])
    label = np.array(Y0 + Y1, dtype=float)
    score = np.array(score0 + score1, dtype=float)
    return Predictions(
        task, "cnn-lstm", partition[order], customer[order], label[order], score[order]
    )


def test_one_retailers_metrics_by_hand():
    fed = retailer_metrics(Y0, FED0, "purchase")
    assert (fed["n"], fed["n_positive"], fed["base_rate"]) == (5, 2, 0.4)
    assert (fed["roc_auc"], fed["pr_auc"], fed["lift_at_10"]) == (1.0, 1.0, pytest.approx(2.5))
    loc = retailer_metrics(Y0, LOC0, "purchase")
    assert loc["roc_auc"] == pytest.approx(4 / 6)
    assert loc["pr_auc"] == pytest.approx(7 / 12)
    assert loc["lift_at_10"] == 0.0
    low, high = delong_interval(np.array(LOC0), np.array(Y0) == 1)
    assert (loc["roc_auc_low"], loc["roc_auc_high"]) == (low, high)
    assert low < 4 / 6 < high


def test_without_buyers_the_ranking_metrics_are_nan_not_an_error():
    m = retailer_metrics([0, 0, 0], [0.1, 0.2, 0.3], "purchase")
    assert m["n_positive"] == 0 and m["base_rate"] == 0.0
    assert all(math.isnan(m[k]) for k in ("roc_auc", "roc_auc_low", "pr_auc", "lift_at_10"))


def test_counts_add_the_tasks_primary_metric():
    # errors 1, 0, -1, 0.5: RMSE sqrt((1 + 0 + 1 + 0.25) / 4) = 0.75
    m = retailer_metrics([2, 0, 1, 0], [1.0, 0.0, 2.0, 0.5], "purchase-count")
    assert m["rmse"] == pytest.approx(0.75)
    assert m["n_positive"] == 2 and m["roc_auc"] == 1.0  # buyers (count > 0) ranked first


def test_bad_input_is_refused():
    with pytest.raises(DataError, match="one score per test customer"):
        retailer_metrics([1, 0], [0.5], "purchase")
    with pytest.raises(DataError, match="one score per test customer"):
        retailer_metrics([], [], "purchase")


def test_joining_pays_retailer_0_and_not_retailer_1():
    rows = compare_retailers(
        predictions(FED0, FED1),
        predictions(LOC0, LOC1, order=slice(None, None, -1)),  # row order does not matter
        names={0: "retailer_00", 1: "retailer_01"},
    )
    assert [(r.partition, r.name, r.pays) for r in rows] == [
        (0, "retailer_00", True),
        (1, "retailer_01", False),
    ]
    first, second = rows
    assert first.difference["roc_auc"] == pytest.approx(1 - 4 / 6)
    assert first.difference["pr_auc"] == pytest.approx(1 - 7 / 12)
    assert first.difference["lift_at_10"] == pytest.approx(2.5)
    assert second.federated["roc_auc"] == pytest.approx(0.25)
    assert second.difference["roc_auc"] == pytest.approx(0.25 - 1)
    assert second.difference["lift_at_10"] == pytest.approx(-2.0)
    paired = paired_delong(Y1, FED1, LOC1)
    assert second.difference["roc_auc_paired"] == {
        "difference": paired.difference,
        "low": paired.low,
        "high": paired.high,
        "p_value": paired.p_value,
    }
    # the paired intervals: retailer_00's gain includes 0, retailer_01's loss does not
    assert [r.clear for r in rows] == [False, True]
    assert (first.difference["roc_auc_paired"]["low"] < 0) and (paired.high < 0)
    block = retailers_block(rows, "purchase")
    assert block["not_paying"] == ["retailer_01"]
    assert (block["clearly_not_paying"], block["clearly_paying"]) == (["retailer_01"], [])
    assert (block["metric"], block["higher_is_better"]) == ("roc_auc", True)
    assert block["rows"][0]["federated"]["n"] == 5


def test_without_local_only_models_there_is_no_verdict():
    rows = compare_retailers(predictions(FED0, FED1), None)
    assert [(r.name, r.local_only, r.difference, r.pays) for r in rows] == [
        ("partition 0", None, None, None),
        ("partition 1", None, None, None),
    ]
    assert retailers_block(rows, "purchase", local_only="off: x")["not_paying"] == []


def test_for_counts_lower_rmse_pays():
    fed = predictions([1.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], task="purchase-count")
    worse = predictions([3.0, 2.0, 3.0, 2.0, 2.0], [2.0, 3.0, 2.0, 3.0], task="purchase-count")
    rows = compare_retailers(fed, worse)
    assert [r.pays for r in rows] == [True, True]  # federated RMSE 0 against 2
    assert rows[0].difference["rmse"] == pytest.approx(-2.0)


def test_predictions_of_other_customers_or_labels_are_refused():
    fed = predictions(FED0, FED1)
    other = Predictions(
        "purchase", "x", fed.partition, np.array([f"z{i}" for i in range(9)]), fed.label, fed.score
    )
    with pytest.raises(DataError, match="differ in 18 test customer"):
        compare_retailers(fed, other)
    relabelled = Predictions("purchase", "x", fed.partition, fed.customer, 1 - fed.label, fed.score)
    with pytest.raises(DataError, match="different labels"):
        compare_retailers(fed, relabelled)


def test_partitions_are_named_by_their_one_retailer():
    manifest = {
        "partitions": [
            {"id": 0, "retailer": "retailer_00", "retailers": ["retailer_00"]},
            {"id": 1, "retailer": "mixed", "retailers": ["retailer_00", "retailer_01"]},
        ]
    }
    assert partition_names(manifest) == {0: "retailer_00", 1: "partition 1"}


def test_the_personalised_model_is_compared_with_local_only_else_federated():
    # personal: the federated scores at retailer 0, the local-only ones at retailer 1 (both
    # rank every buyer first: ROC-AUC 1); against local-only 1 - 4/6 and 0, against
    # federated 0 and 1 - 1/4
    mine = predictions(FED0, LOC1, order=slice(None, None, -1))
    rows = compare_retailers(predictions(FED0, FED1), predictions(LOC0, LOC1), personal=mine)
    assert [r.personal["roc_auc"] for r in rows] == [1.0, 1.0]
    assert [r.personal_difference["roc_auc"] for r in rows] == pytest.approx([1 - 4 / 6, 0.0])
    assert {r.personal_difference["against"] for r in rows} == {"local-only"}
    assert rows[0].personal_difference["lift_at_10"] == pytest.approx(2.5)
    paired = paired_delong(Y0, FED0, LOC0)
    assert rows[0].personal_difference["roc_auc_paired"]["difference"] == paired.difference
    alone = compare_retailers(predictions(FED0, FED1), None, personal=mine)
    assert [r.personal_difference["roc_auc"] for r in alone] == pytest.approx([0.0, 0.75])
    assert {r.personal_difference["against"] for r in alone} == {"federated"}
    assert compare_retailers(predictions(FED0, FED1), None)[0].personal is None
    other = predictions(FED0, FED1, order=slice(0, 8))  # a customer short
    with pytest.raises(DataError, match="federated and personal predictions differ in 1"):
        compare_retailers(predictions(FED0, FED1), None, personal=other)
