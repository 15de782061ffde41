import math

import numpy as np
import pytest
import torch

from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
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
    assert set(TASKS) == {"purchase", "purchase-count"}
    np.testing.assert_array_equal(purchase.targets(split), [0, 1, 1])
    np.testing.assert_array_equal(count.targets(split), [0, 2, 5])
    assert purchase.targets(split).dtype == np.float32
    assert purchase.primary_metric == ("roc_auc", True)
    assert count.primary_metric == ("rmse", False)


def test_unknown_task_lists_known_ones():
    with pytest.raises(ConfigError, match="purchase, purchase-count"):
        get_task("churn")


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
