import math

import numpy as np
import pytest
import torch

from fedmarket import names
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.metrics import (
    CLASSIFICATION_KEYS,
    REGRESSION_KEYS,
    classification_metrics,
    regression_metrics,
)
from fedmarket.tasks import TASKS, get_task


def _split(y_purchase, y_count) -> SplitArrays:
    n = len(y_purchase)
    return SplitArrays(
        X=np.zeros((n, 2, 3), np.float32),
        agg=np.zeros((n, 1), np.float32),
        y_purchase=np.asarray(y_purchase, np.float32),
        y_count=np.asarray(y_count, np.float32),
        customer=np.array([f"c{i}" for i in range(n)]),
    )


def test_known_tasks_and_targets():
    split = _split([0, 1, 1], [0, 2, 5])
    purchase, count = get_task("purchase"), get_task("purchase-count")
    assert set(TASKS) == {
        "purchase",
        "purchase-count",
        "churn",
        "churn-inactive",
        "next-categories",
        "next-products",
    }
    np.testing.assert_array_equal(purchase.targets(split), [0, 1, 1])
    np.testing.assert_array_equal(count.targets(split), [0, 2, 5])
    assert purchase.targets(split).dtype == np.float32
    assert purchase.primary_metric == ("roc_auc", True)
    assert count.primary_metric == ("rmse", False)


def test_unknown_task_lists_known_ones():
    with pytest.raises(ConfigError, match="purchase, purchase-count, churn, churn-inactive"):
        get_task("retention")
    with pytest.raises(ConfigError, match=r"unknown task 'chrun'; did you mean 'churn'"):
        get_task("chrun")


def test_churn_tasks_read_the_derived_labels():
    split = SplitArrays(
        X=np.zeros((4, 2, 3), np.float32),
        agg=np.zeros((4, 1), np.float32),
        y_purchase=np.array([1, 0, 0, 0], np.float32),
        y_count=np.array([2, 0, 0, 0], np.float32),
        customer=np.array(["a", "b", "c", "d"]),
        y_active=np.array([1, 1, 0, 1], np.float32),
    )
    churn, inactive = get_task("churn"), get_task("churn-inactive")
    np.testing.assert_array_equal(churn.targets(split), [0, 1, 1, 1])
    np.testing.assert_array_equal(inactive.targets(split), [0, 0, 1, 0])
    assert churn.targets(split).dtype == np.float32
    assert churn.binary and inactive.binary and get_task("purchase").binary
    assert not get_task("purchase-count").binary
    assert (churn.positives, churn.acts, churn.classes) == (
        "churners",
        "churn",
        ("stays", "churns"),
    )


def test_churn_metrics_and_loss_are_purchase_ones():
    y, p = [0, 1, 1, 0], [0.2, 0.7, 0.6, 0.4]
    for name in ("churn", "churn-inactive"):
        task = get_task(name)
        assert task.metrics(y, p) == get_task("purchase").metrics(y, p)
        assert task.metric_keys == get_task("purchase").metric_keys
        assert task.primary_metric == ("roc_auc", True)
        score, target = torch.tensor([0.0]), torch.tensor([1.0])
        assert float(task.loss()(score, target)) == pytest.approx(math.log(2))
    # lift is on the churners: the two churners ranked first give lift 1 / base rate 0.5
    report = get_task("churn").report(np.array(y, np.float32), np.array(p))
    assert report["base_rate"] == pytest.approx(0.5)
    assert report["roc_auc"] == pytest.approx(1.0)


def test_purchase_loss_and_link_hand_computed():
    task = get_task("purchase")
    score, y = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    # BCE with logits: -log sigmoid(0) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2)
    expected = [math.log(2), math.log(1 + math.exp(2))]
    np.testing.assert_allclose(task.loss("none")(score, y).numpy(), expected, rtol=1e-6)
    assert float(task.loss()(score, y)) == pytest.approx(sum(expected) / 2, rel=1e-6)
    np.testing.assert_allclose(task.prediction(score).numpy(), [0.5, 1 / (1 + math.exp(-2))])


def test_count_loss_and_link_hand_computed():
    task = get_task("purchase-count")
    score, y = torch.tensor([math.log(2.0), 0.0]), torch.tensor([3.0, 0.0])
    # Poisson NLL on a log-rate without the Stirling term: exp(s) - y * s
    expected = [2 - 3 * math.log(2), 1.0]
    np.testing.assert_allclose(task.loss("none")(score, y).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(task.prediction(score).numpy(), [2.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "purchase", "count", "match"),
    [
        ("purchase", [0, 2, 1], [0, 0, 0], "row 1"),
        ("purchase", [0, np.nan, 1], [0, 0, 0], "row 1"),
        ("purchase-count", [0, 0, 0], [0, 1, -1], "row 2"),
        ("purchase-count", [0, 0, 0], [np.inf, 1, 1], "row 0"),
    ],
)
def test_bad_labels_raise_data_error(name, purchase, count, match):
    with pytest.raises(DataError, match=match):
        get_task(name).targets(_split(purchase, count))


def test_metrics_and_ranking_come_from_the_task():
    y, p = [0, 1, 1, 0], [0.2, 0.7, 0.6, 0.4]
    # |0 - 0.2|, |1 - 0.7|, |1 - 0.6|, |0 - 0.4| in four bins of one customer each
    ece = {"ece": pytest.approx((0.2 + 0.3 + 0.4 + 0.4) / 4)}
    assert get_task("purchase").metrics(y, p) == classification_metrics(y, p) | ece
    assert get_task("purchase-count").metrics([1, 2], [1, 3]) == regression_metrics([1, 2], [1, 3])
    assert get_task("purchase").metric_keys == (*CLASSIFICATION_KEYS, "ece")
    assert get_task("purchase-count").metric_keys == REGRESSION_KEYS
    with pytest.raises(ConfigError, match="known tasks: purchase, purchase-count, churn"):
        get_task("loyalty")
    with pytest.raises(ConfigError, match=r"unknown task 'purchases'; did you mean 'purchase'"):
        get_task("purchases")


def test_the_registry_names_the_tasks_a_run_config_may_use():
    """fedmarket.names.TASKS is what the CLI checks --run-config against before it imports
    torch; it must name exactly the tasks of this registry."""
    assert list(TASKS) == list(names.TASKS)


def test_report_adds_lift_and_keeps_its_keys_without_buyers():
    y = np.array([0, 0, 1, 0, 1, 0, 0, 0, 0, 0], dtype=np.float32)
    p = np.linspace(0.05, 0.95, 10)
    report = get_task("purchase").report(y, p)
    assert report["base_rate"] == pytest.approx(0.2)
    assert set(report) >= {"roc_auc", "lift_at_10", "lift_at_20"}
    empty = get_task("purchase").report(np.zeros(4, dtype=np.float32), np.full(4, 0.5))
    assert math.isnan(empty["lift_at_10"]) and empty["base_rate"] == 0.0
    assert all(math.isnan(empty[k]) for k in ("capture_at_10", "precision_at_10", "f1_at_10"))


def test_report_has_precision_recall_f1_at_the_top_10_percent_cut():
    # 20 customers, scores rising with the row; buyers at rows 19, 17 and 3 (base rate 0.15).
    y = np.zeros(20, dtype=np.float32)
    y[[19, 17, 3]] = 1
    p = np.linspace(0.05, 0.95, 20)
    report = get_task("purchase").report(y, p)
    # Top 10 % = rows 19 and 18: one buyer of two targeted, one of three buyers reached.
    assert report["precision_at_10"] == pytest.approx(0.5)
    assert report["recall_at_10"] == report["capture_at_10"] == pytest.approx(1 / 3)
    assert report["f1_at_10"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))  # 0.4
    assert report["capture_at_20"] == pytest.approx(2 / 3)  # rows 19..16 hold two buyers
    # "f1" keeps its meaning, threshold 0.5: rows 10..19 predicted, TP 2, FP 8, FN 1.
    assert report["f1"] == pytest.approx(4 / 13)
