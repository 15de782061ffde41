"""The BG/NBD and Pareto/NBD rows of the baselines table, on customers simulated from BG/NBD."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedmarket.anchors import AnchorData, AnchorPrivacy, run_btyd_anchors
from fedmarket.anchors import privacy as anchors_module
from fedmarket.btyd import BGNBDFit, fit_bgnbd, from_aggregates, gaussian_epsilon
from fedmarket.data.store import SplitArrays
from fedmarket.errors import BudgetExhaustedError, ConfigError
from tests.btyd.simulate import bgnbd

NAMES = ("first_event_days", "first_purchase_days", "purchase_recency_days", "purchase_days")
TRUE = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
HORIZON_WEEKS = 26


def _split(n: int, seed: int) -> SplitArrays:
    """Customers whose aggregates give back the simulated (x, t_x, T): birth is a purchase."""
    history, bought, holdout = bgnbd(n, **TRUE, horizon=HORIZON_WEEKS, seed=seed)
    days = 7.0
    agg = np.column_stack(
        [
            history.T * days,
            history.T * days,  # first purchase = first event: the trial purchase
            (history.T - history.t_x) * days,
            history.x + 1,
        ]
    )
    return SplitArrays(
        X=np.zeros((n, 1, 1), np.float32),
        agg=agg,
        y_purchase=bought.astype(np.float32),
        y_count=holdout.astype(np.float32),
        customer=np.array([f"c{seed}-{i}" for i in range(n)]),
    )


@pytest.fixture(scope="module")
def consortium() -> tuple[list[SplitArrays], SplitArrays]:
    return [_split(3000, seed) for seed in (1, 2, 3)], _split(3000, 9)


def _data(count_unit: str = "customer-days") -> AnchorData:
    return AnchorData(NAMES, HORIZON_WEEKS * 7, count_unit)


def test_pooled_and_federated_rows_agree_and_recover_the_truth(consortium):
    parts, test = consortium
    rows = run_btyd_anchors(
        parts, test, task="purchase", data=_data(), models=["bg-nbd"], hybrid=False
    )
    assert [r.model for r in rows] == ["bg-nbd", "bg-nbd federated"]
    pooled, federated = rows
    assert pooled.family == "customer-base"
    assert pooled.metrics["roc_auc"] == pytest.approx(federated.metrics["roc_auc"], abs=1e-9)
    assert "3 retailers" in federated.notes and "not DP" in federated.notes
    # The simulating process is BG/NBD: the fitted anchor ranks the holdout buyers as well as
    # the true model does.
    truth = BGNBDFit(**TRUE).p_purchase(HORIZON_WEEKS, from_aggregates(test.agg, NAMES))
    best = roc_auc_score(test.y_purchase, truth)
    assert pooled.metrics["roc_auc"] == pytest.approx(best, abs=0.005)
    # The notes carry the fitted parameters, which are close to the truth.
    fit = fit_bgnbd(from_aggregates(np.concatenate([p.agg for p in parts]), NAMES))
    for key, value in TRUE.items():
        assert fit.params[key] == pytest.approx(value, rel=0.25)
        assert f"{key}={fit.params[key]:.3g}" in pooled.notes


def test_count_rows_track_the_holdout_total_and_name_the_unit(consortium):
    parts, test = consortium
    rows = run_btyd_anchors(
        parts,
        test,
        task="purchase-count",
        data=_data(),
        models=["bg-nbd"],
        federated=False,
        hybrid=False,
    )
    (row,) = rows
    assert row.model == "bg-nbd" and row.metrics["rmse"] > 0
    # expected purchases track the holdout's total (the simulating process is BG/NBD)
    assert abs(row.metrics["tracking_error"]) < 0.05 and row.metrics["pearson"] > 0.3
    assert "--count-unit" not in row.notes
    (other,) = run_btyd_anchors(
        parts,
        test,
        task="purchase-count",
        data=_data("transactions"),
        models=["bg-nbd"],
        federated=False,
        hybrid=False,
    )
    assert (
        "labels count transactions" in other.notes and "--count-unit customer-days" in other.notes
    )


def test_one_partition_has_no_federated_row_and_unknown_models_are_refused(consortium):
    parts, test = consortium
    rows = run_btyd_anchors(
        parts[:1], test, task="purchase", data=_data(), models=["bg-nbd"], hybrid=False
    )
    assert [r.model for r in rows] == ["bg-nbd"]
    with pytest.raises(ConfigError, match="unknown anchor model"):
        run_btyd_anchors(parts, test, task="purchase", data=_data(), models=["bgnbd"])


def test_anchor_data_reads_the_manifest():
    manifest = {
        "aggregate_names": list(NAMES),
        "window": {"horizon_days": 28},
        "labels": {"count_unit": "customer-days"},
    }
    data = AnchorData.from_manifest(manifest)
    assert data.horizon_weeks == 4.0 and data.count_unit == "customer-days"
    del manifest["labels"]
    assert AnchorData.from_manifest(manifest).count_unit == "transactions"


def test_anchors_say_why_they_cannot_run():
    table = {"kind": "table", "aggregate_names": ["age"]}
    assert "customer table" in AnchorData.missing(table)
    old = {"window": {"horizon_days": 7}, "aggregate_names": ["recency_days"]}
    assert "re-run fedmarket data prepare" in AnchorData.missing(old)
    ready = {"window": {"horizon_days": 7}, "aggregate_names": list(NAMES)}
    assert AnchorData.missing(ready) is None


def test_dp_noise_multiplier_is_the_smallest_within_the_target():
    privacy = AnchorPrivacy(8.0, 1e-5, releases=40)
    z = privacy.noise_multiplier()
    assert gaussian_epsilon(z, 40, 1e-5) <= 8.0 < gaussian_epsilon(z / 1.002, 40, 1e-5)
    with pytest.raises(ConfigError, match="epsilon > 0"):
        AnchorPrivacy(0.0, 1e-5)


def test_dp_row_stays_within_each_retailers_budget_and_is_seeded(consortium, monkeypatch):
    parts, test = consortium
    asked: list[int] = []
    real = anchors_module._Budgeted.__call__

    def counting(self, params):
        asked.append(id(self))
        return real(self, params)

    monkeypatch.setattr(anchors_module._Budgeted, "__call__", counting)
    privacy = AnchorPrivacy(8.0, 1e-5, releases=40)
    run = lambda seed: run_btyd_anchors(  # noqa: E731
        parts,
        test,
        task="purchase",
        data=_data(),
        models=["bg-nbd"],
        privacy=privacy,
        seed=seed,
        hybrid=False,
    )
    rows = run(0)
    assert [r.model for r in rows] == ["bg-nbd", "bg-nbd federated", "bg-nbd federated DP"]
    per_retailer = {k: asked.count(k) for k in set(asked)}
    assert len(per_retailer) == 3 and max(per_retailer.values()) <= 40
    dp = rows[-1]
    assert "epsilon <= 8" in dp.notes and "3 retailers" in dp.notes
    assert dp.metrics["roc_auc"] > 0.6  # noisy, but still a ranking
    again = run(0)[-1]
    assert again.metrics == dp.metrics and again.notes == dp.notes
    assert run(1)[-1].notes != dp.notes  # other noise, other parameters


def test_a_retailer_refuses_answers_past_its_budget(consortium):
    parts, _ = consortium
    history = from_aggregates(parts[0].agg, NAMES)
    privacy = AnchorPrivacy(8.0, 1e-5, releases=10)
    answer = anchors_module._Budgeted(
        history, "bg-nbd", privacy, privacy.noise_multiplier(), np.random.default_rng(0)
    )
    for _ in range(10):
        answer(np.zeros(4))
    with pytest.raises(BudgetExhaustedError, match="answer 11 of a budget of 10"):
        answer(np.zeros(4))
