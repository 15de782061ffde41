import json

import numpy as np
import pandas as pd
import pytest
from flwr.app import MetricRecord

from fedmarket.data.features import FEATURE_NAMES
from fedmarket.data.normalise import FeatureMoments, NormStats
from fedmarket.deploy.agreement import (
    Agreement,
    RetailerSummary,
    WindowPlan,
    combine,
    describe_metrics,
    last_event_from_metrics,
)
from fedmarket.errors import DataError

F = len(FEATURE_NAMES)


def raw_features(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).gamma(1.5, 2.0, size=(n, 4, F))


def summary(pid: int, seed: int, n: int, n_test: int = 3) -> RetailerSummary:
    return RetailerSummary(pid, FeatureMoments.from_raw(raw_features(seed, n)), n, n_test)


def test_cutoff_is_the_prepare_rule_over_the_latest_event_of_all_retailers():
    # Latest event 2019-12-10 01:00 UTC, 7-day horizon: midnight of (Dec 10 + 1 - 7) = Dec 4.
    plan = WindowPlan().with_cutoff(
        [pd.Timestamp("2019-12-09 13:00", tz="UTC"), pd.Timestamp("2019-12-10 01:00", tz="UTC")]
    )
    assert plan.cutoff == "2019-12-04T00:00:00+00:00"
    window = plan.feature_window()
    assert (window.window_days, window.step_days, window.n_steps) == (56, 2, 28)
    with pytest.raises(DataError, match="no retailer reported"):
        WindowPlan().with_cutoff([])
    with pytest.raises(DataError, match="no agreed cut-off"):
        WindowPlan().feature_window()


def test_combined_statistics_equal_those_of_the_pooled_training_cells():
    parts = [summary(0, 1, 20), summary(2, 2, 35), summary(1, 3, 5)]
    agreement = combine(WindowPlan(cutoff="2019-12-04T00:00:00+00:00"), parts)
    pooled = NormStats.from_raw(
        np.concatenate([raw_features(s, n) for s, n in ((1, 20), (2, 35), (3, 5))])
    )
    np.testing.assert_allclose(agreement.stats.mean, pooled.mean, rtol=1e-12)
    np.testing.assert_allclose(agreement.stats.std, pooled.std, rtol=1e-12)
    assert agreement.n_train_total == 60
    assert agreement.partitions == (0, 1, 2)


def test_combine_refuses_nothing_and_repeated_partitions():
    plan = WindowPlan(cutoff="2019-12-04T00:00:00+00:00")
    with pytest.raises(DataError, match="no retailer sent"):
        combine(plan, [])
    with pytest.raises(DataError, match="repeat"):
        combine(plan, [summary(1, 1, 5), summary(1, 2, 5)])


def test_summary_travels_as_a_flower_metric_record():
    original = summary(4, 7, 12, n_test=5)
    record = MetricRecord(original.to_metrics())  # Flower rejects numpy scalars and mixed lists
    back = RetailerSummary.from_metrics(dict(record))
    assert (back.partition_id, back.n_train, back.n_test) == (4, 12, 5)
    np.testing.assert_array_equal(back.moments.count, original.moments.count)
    np.testing.assert_array_equal(back.moments.sumsq, original.moments.sumsq)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("moment-sum"),
        lambda d: d.update({"moment-count": [1, 2]}),
        lambda d: d.update({"n-train": "many"}),
    ],
)
def test_malformed_summaries_are_refused(damage):
    metrics = summary(0, 1, 4).to_metrics()
    damage(metrics)
    with pytest.raises(DataError):
        RetailerSummary.from_metrics(metrics)


def test_agreement_json_round_trip_fingerprint_and_delta():
    plan = WindowPlan(cutoff="2019-12-04T00:00:00+00:00", step_days=7)
    agreement = combine(plan, [summary(0, 1, 30), summary(1, 2, 70)])
    back = Agreement.from_json(agreement.to_json())
    assert back.plan == plan and back.n_train_total == 100 and back.partitions == (0, 1)
    np.testing.assert_array_equal(back.stats.mean, agreement.stats.mean)
    assert back.fingerprint() == agreement.fingerprint()
    other = combine(plan, [summary(0, 1, 30), summary(1, 3, 70)])
    assert other.fingerprint() != agreement.fingerprint()
    assert agreement.delta(0.0) == pytest.approx(1 / (10 * 100))
    assert agreement.delta(1e-6) == 1e-6
    with pytest.raises(DataError, match="malformed"):
        Agreement.from_json(json.dumps({"plan": {}}))


def test_describe_metrics_round_trip():
    last = pd.Timestamp("2019-12-10 01:02:03", tz="UTC")
    metrics = describe_metrics(last, 2, 5)
    assert MetricRecord(metrics)["num-partitions"] == 5
    assert last_event_from_metrics(metrics) == last
    assert "num-partitions" not in describe_metrics(last, 2, None)
    with pytest.raises(DataError):
        last_event_from_metrics({})
