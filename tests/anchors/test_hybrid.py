"""The classical learner that also sees BG/NBD's predictions."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.anchors import AnchorData, run_btyd_anchors
from fedmarket.anchors.hybrid import btyd_inputs
from fedmarket.btyd import BGNBDFit, from_aggregates
from tests.anchors.test_run import HORIZON_WEEKS, NAMES, TRUE, _split


@pytest.fixture(scope="module")
def rows() -> dict[str, object]:
    parts, test = [_split(2000, seed) for seed in (4, 5)], _split(2000, 6)
    data = AnchorData(NAMES, HORIZON_WEEKS * 7, "customer-days")
    found = run_btyd_anchors(parts, test, task="purchase", data=data, models=["bg-nbd"])
    return {r.model: r for r in found}


def test_the_hybrid_row_follows_the_anchor_and_is_at_least_as_good(rows):
    assert list(rows) == ["bg-nbd", "bg-nbd federated", "logistic-regression + bg-nbd"]
    hybrid, anchor = rows["logistic-regression + bg-nbd"], rows["bg-nbd"]
    assert hybrid.family == "customer-base" and "P(alive)" in hybrid.notes
    assert hybrid.prediction is not None and len(hybrid.prediction) == 2000
    # the learner sees BG/NBD's own prediction, so on BG/NBD customers it ranks as well
    assert hybrid.metrics["roc_auc"] >= anchor.metrics["roc_auc"] - 0.01


def test_btyd_inputs_are_the_fits_predictions():
    split = _split(50, 7)
    history = from_aggregates(split.agg, NAMES)
    fit = BGNBDFit(**TRUE)
    inputs = btyd_inputs(fit, history, 4.0)
    assert inputs.shape == (50, 3)
    np.testing.assert_allclose(inputs[:, 0], fit.p_purchase(4.0, history))
    np.testing.assert_allclose(inputs[:, 1], fit.expected_transactions(4.0, history))
    np.testing.assert_allclose(inputs[:, 2], fit.p_alive(history))


def test_one_model_without_bg_nbd_has_no_hybrid_row():
    parts, test = [_split(500, 8)], _split(500, 9)
    data = AnchorData(NAMES, HORIZON_WEEKS * 7, "customer-days")
    found = run_btyd_anchors(parts, test, task="purchase", data=data, models=["pareto-nbd"])
    assert [r.model for r in found] == ["pareto-nbd"]
