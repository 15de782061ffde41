"""The BG/NBD anchor of a simulate run, on the tiny prepared retailers (no Flower, no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedmarket.anchors.in_run import anchor_privacy, fit_run_anchor
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.predictions import read_predictions


def _cfg(data, **settings) -> RunConfig:
    return RunConfig.from_mapping({"data-dir": str(data), **settings})


def test_the_anchor_is_fitted_across_the_retailers_and_scores_every_test_customer(
    tiny_data, tmp_path
):
    path = tmp_path / "anchor" / "test_scores.csv"
    anchor = fit_run_anchor(_cfg(tiny_data, dp="none"), path)
    test = store.load_pooled(tiny_data, "test")
    [scores] = read_predictions(path).values()
    assert scores.model == "bg-nbd" and len(scores) == len(test) == anchor.test["n"]
    assert list(scores.customer) == list(test.customer)
    assert np.all((scores.score >= 0) & (scores.score <= 1))  # P(buy in the horizon)
    assert anchor.test["roc_auc"] == pytest.approx(roc_auc_score(scores.label, scores.score))
    assert anchor.test["roc_auc_low"] < anchor.test["roc_auc"] < anchor.test["roc_auc_high"]
    assert anchor.retailers == 3 and not anchor.dp and anchor.epsilon is None
    assert "3 retailers sent log-likelihood sums" in anchor.fitted
    assert "not DP" in anchor.fitted
    assert set(anchor.params) == {"r", "alpha", "a", "b"} and anchor.fit_s > 0
    assert "prediction" not in anchor.to_dict()


def test_under_client_dp_the_anchor_spends_the_runs_target_epsilon(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, dp="client", **{"target-epsilon": 4.0})
    privacy = anchor_privacy(cfg, spent_epsilon=3.9, delta=1e-4)
    assert (privacy.epsilon, privacy.delta) == (4.0, 1e-4)
    anchor = fit_run_anchor(cfg, tmp_path / "scores.csv", privacy=privacy)
    assert anchor.dp and (anchor.epsilon, anchor.delta) == (4.0, 1e-4)
    assert "client DP" in anchor.fitted and "epsilon <= 4 at delta 0.0001" in anchor.fitted
    again = fit_run_anchor(cfg, tmp_path / "again.csv", privacy=privacy)  # seeded by the run
    assert again.params == anchor.params


def test_anchor_privacy_follows_the_runs_dp_setting(tiny_data):
    fixed_noise = {"dp": "client", "target-epsilon": 0.0, "noise-multiplier": 1.0}
    assert anchor_privacy(_cfg(tiny_data, **fixed_noise), 2.5, 1e-5).epsilon == 2.5
    assert anchor_privacy(_cfg(tiny_data, **fixed_noise), None, 1e-5) is None
    assert anchor_privacy(_cfg(tiny_data, dp="none"), 8.0, 1e-5) is None
    central = {"dp": "central", "central-noise-multiplier": 1.0}
    assert anchor_privacy(_cfg(tiny_data, **central), 3.0, 1e-5) is None


def test_a_count_task_predicts_expected_purchase_days_and_names_the_unit(tiny_data, tmp_path):
    anchor = fit_run_anchor(
        _cfg(tiny_data, dp="none", task="purchase-count"), tmp_path / "scores.csv"
    )
    [scores] = read_predictions(tmp_path / "scores.csv").values()
    assert scores.task == "purchase-count" and np.all(scores.score >= 0)
    assert "rmse" in anchor.test and "pearson" in anchor.test
    assert anchor.note.startswith("predicts customer-days but the labels count transactions")
