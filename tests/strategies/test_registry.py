import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.serverapp import strategy as flwr_strategy

from fedmarket.aggregation import RULE_NAMES
from fedmarket.config import RunConfig
from fedmarket.errors import ConfigError
from fedmarket.metrics import ONE_TEST_SET_KEYS
from strategies import STRATEGIES, RecordingStrategy, aggregate_client_metrics, build_strategy
from tests.strategies import FakeGrid, pretend_running_task, train_reply, weights

CLASSES = {
    "fedavg": "FedAvg",
    "fedprox": "FedProx",
    "fedavgm": "FedAvgM",
    "fedadam": "FedAdam",
    "fedyogi": "FedYogi",
    "fedadagrad": "FedAdagrad",
    "fedmedian": "FedMedian",
    "fedtrimmedavg": "FedTrimmedAvg",
    "krum": "Krum",
    "multikrum": "MultiKrum",
    "bulyan": "Bulyan",
}


def cfg(**values) -> RunConfig:
    return RunConfig.from_mapping(values)


def test_every_rule_is_one_of_flowers_own_classes():
    assert tuple(STRATEGIES) == RULE_NAMES  # the library's rules and the adapter's agree
    assert set(RULE_NAMES) == set(CLASSES)
    for name, class_name in CLASSES.items():
        assert STRATEGIES[name].strategy_class is getattr(flwr_strategy, class_name)
        assert STRATEGIES[name].description


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_builds_every_strategy_with_defaults(name):
    built = build_strategy(cfg(strategy=name), num_nodes=5)
    assert isinstance(built, RecordingStrategy)
    inner = built.inner
    assert type(inner) is getattr(flwr_strategy, CLASSES[name])
    assert (inner.min_train_nodes, inner.min_evaluate_nodes, inner.min_available_nodes) == (5, 5, 5)
    assert inner.weighted_by_key == "num-examples"
    assert inner.train_metrics_aggr_fn is aggregate_client_metrics
    assert inner.evaluate_metrics_aggr_fn is aggregate_client_metrics
    assert built.min_train_replies == 1


def test_run_settings_reach_the_constructors():
    c = cfg(
        **{
            "proximal-mu": 0.5,
            "server-learning-rate": 0.05,
            "server-momentum": 0.7,
            "trim-beta": 0.3,
            "num-malicious-nodes": 1,
            "learning-rate": 0.02,
        }
    )
    built = {name: build_strategy(c.replace(strategy=name), num_nodes=7).inner for name in CLASSES}
    assert built["fedprox"].proximal_mu == 0.5
    assert (built["fedavgm"].server_learning_rate, built["fedavgm"].server_momentum) == (0.05, 0.7)
    for name in ("fedadam", "fedyogi", "fedadagrad"):
        assert (built[name].eta, built[name].eta_l) == (0.05, 0.02)
    assert built["fedtrimmedavg"].beta == 0.3
    assert built["krum"].num_malicious_nodes == 1
    assert (built["multikrum"].num_malicious_nodes, built["multikrum"].num_nodes_to_select) == (
        1,
        6,
    )
    assert built["bulyan"].num_malicious_nodes == 1


def test_fractions_set_the_minimum_sample_sizes():
    inner = build_strategy(
        cfg(**{"fraction-train": 0.3, "fraction-evaluate": 0.5}), num_nodes=10
    ).inner
    assert (inner.fraction_train, inner.fraction_evaluate) == (0.3, 0.5)
    assert (inner.min_train_nodes, inner.min_evaluate_nodes, inner.min_available_nodes) == (
        3,
        5,
        10,
    )


@pytest.mark.parametrize(
    ("name", "malicious", "ok_nodes"),
    [("krum", 1, 5), ("multikrum", 2, 7), ("bulyan", 1, 7), ("krum", 0, 3)],
)
def test_byzantine_rules_need_enough_clients(name, malicious, ok_nodes):
    c = cfg(strategy=name, **{"num-malicious-nodes": malicious})
    build_strategy(c, num_nodes=ok_nodes)
    with pytest.raises(ConfigError, match=f"needs at least {ok_nodes} clients per round"):
        build_strategy(c, num_nodes=ok_nodes - 1)
    with pytest.raises(ConfigError, match=r"fraction-train 0\.5"):
        build_strategy(c.replace(**{"fraction-train": 0.5}), num_nodes=ok_nodes)


def test_min_train_replies_above_sample_is_refused():
    c = cfg(**{"min-train-replies": 4, "fraction-train": 0.3})
    with pytest.raises(ConfigError, match="min-train-replies=4 but only 3 of 10"):
        build_strategy(c, num_nodes=10)
    assert build_strategy(c, num_nodes=14).min_train_replies == 4


@pytest.mark.parametrize("nodes", [0, -1, 2.0, True])
def test_bad_num_nodes(nodes):
    with pytest.raises(ConfigError, match="num_nodes must be a positive integer"):
        build_strategy(cfg(), num_nodes=nodes)


def test_central_dp_wraps_fedavg_with_uniform_weights():
    c = cfg(
        dp="central",
        **{"central-noise-multiplier": 0.8, "central-clipping-norm": 2.0, "fraction-train": 0.5},
    )
    built = build_strategy(c, num_nodes=6)
    dp = built.inner
    assert type(dp) is flwr_strategy.DifferentialPrivacyServerSideFixedClipping
    assert (dp.noise_multiplier, dp.clipping_norm, dp.num_sampled_clients) == (0.8, 2.0, 3)
    assert type(dp.strategy) is flwr_strategy.FedAvg
    assert dp.strategy.weighted_by_key == "unit-weight"
    assert built.min_train_replies == 3  # every sampled client: the noise is calibrated for m
    assert type(build_strategy(c.replace(strategy="fedprox"), num_nodes=6).inner.strategy) is (
        flwr_strategy.FedProx
    )


@pytest.mark.parametrize("name", sorted(set(CLASSES) - {"fedavg", "fedprox"}))
def test_central_dp_refused_where_noise_does_not_cover_the_aggregate(name):
    c = cfg(dp="central", strategy=name)
    with pytest.raises(ConfigError, match=f"dp='central' with strategy '{name}' is refused"):
        build_strategy(c, num_nodes=8)


def test_fedavg_aggregates_to_the_weighted_mean_and_max_epsilon():
    strategy = build_strategy(cfg(), num_nodes=2)
    replies = [
        train_reply(
            11,
            [1.0, 2.0],
            {
                "num-examples": 10.0,
                "unit-weight": 1.0,
                "partition-id": 0.0,
                "train-loss": 0.0,
                "epsilon": 1.5,
                "per-class": [1.0, 0.0],
            },
        ),
        train_reply(
            12,
            [4.0, -1.0],
            {
                "num-examples": 30.0,
                "unit-weight": 1.0,
                "partition-id": 1.0,
                "train-loss": 1.0,
                "epsilon": 0.5,
                "per-class": [0.0, 2.0],
            },
        ),
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    # (10·[1, 2] + 30·[4, -1]) / 40 = [3.25, -0.25]
    np.testing.assert_allclose(arrays["w"].numpy(), [3.25, -0.25])
    assert dict(metrics) == {
        "num-examples": 40.0,
        "train-loss": 0.75,
        "epsilon": 1.5,
        "per-class": [0.25, 1.5],
    }


def test_metrics_fall_back_to_a_uniform_mean():
    def rd(values):
        return train_reply(1, [0.0], values).content

    zero = aggregate_client_metrics(
        [rd({"num-examples": 0, "loss": 1.0}), rd({"num-examples": 0, "loss": 3.0})], "num-examples"
    )
    assert dict(zero) == {"num-examples": 0, "loss": 2.0}
    unweighted = aggregate_client_metrics(
        [
            rd({"unit-weight": 1.0, "auc": 0.6, "epsilon-max": 2.0}),
            rd({"unit-weight": 1.0, "auc": 0.8, "epsilon-max": 3.0}),
        ],
        "unit-weight",
    )
    assert dict(unweighted) == pytest.approx({"auc": 0.7, "epsilon-max": 3.0})
    assert dict(aggregate_client_metrics([], "num-examples")) == {}


def test_intervals_and_counts_of_client_test_sets_are_never_averaged():
    """Two retailers' ROC-AUC intervals (0.5-0.7, 0.7-0.9) average to 0.6-0.8, which is the
    interval of no test set; their buyer counts average to a count of no one. The aggregate
    keeps the metrics (weighted by num-examples) and drops every ONE_TEST_SET_KEYS key."""

    def rd(values):
        return train_reply(1, [0.0], values).content

    replies = [
        rd(
            {
                "num-examples": 100.0,
                "roc_auc": 0.6,
                "roc_auc_low": 0.5,
                "roc_auc_high": 0.7,
                "pr_auc_low": 0.1,
                "n": 100.0,
                "n_positive": 10.0,
                "total_actual": 30.0,
                "tracking_error": 0.1,
            }
        ),
        rd(
            {
                "num-examples": 300.0,
                "roc_auc": 0.8,
                "roc_auc_low": 0.7,
                "roc_auc_high": 0.9,
                "pr_auc_low": 0.3,
                "n": 300.0,
                "n_positive": 50.0,
                "total_actual": 90.0,
                "tracking_error": -0.2,
            }
        ),
    ]
    aggregated = dict(aggregate_client_metrics(replies, "num-examples"))
    assert aggregated == pytest.approx({"num-examples": 400.0, "roc_auc": 0.75})
    assert not set(aggregated) & ONE_TEST_SET_KEYS


def test_central_dp_clips_and_averages_uniformly(monkeypatch):
    """Flower's documented example: z = 0, C = 1, updates [3, 4] and [0, 0.5] -> [0.3, 0.65]."""
    pretend_running_task(monkeypatch)
    c = cfg(dp="central", **{"central-noise-multiplier": 0.0, "central-clipping-norm": 1.0})
    strategy = build_strategy(c, num_nodes=2)
    sent = list(
        strategy.configure_train(1, weights([0.0, 0.0]), ConfigRecord(), FakeGrid([11, 12]))
    )
    assert sorted(m.metadata.dst_node_id for m in sent) == [11, 12]
    # num-examples differ (1 vs 9) but the arrays' weights are the unit weights
    replies = [
        train_reply(11, [3.0, 4.0], {"num-examples": 1.0, "unit-weight": 1.0}),
        train_reply(12, [0.0, 0.5], {"num-examples": 9.0, "unit-weight": 1.0}),
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), [0.3, 0.65])
    assert dict(metrics) == {"num-examples": 10.0}


def test_central_dp_skips_a_round_missing_a_sampled_client(monkeypatch):
    pretend_running_task(monkeypatch)
    strategy = build_strategy(cfg(dp="central"), num_nodes=2)
    list(strategy.configure_train(1, weights([0.0]), ConfigRecord(), FakeGrid([11, 12])))
    reply = train_reply(11, [1.0], {"num-examples": 1.0, "unit-weight": 1.0})
    assert strategy.aggregate_train(1, [reply]) == (None, None)


def test_fedopt_noise_is_logged_not_refused(caplog):
    with caplog.at_level("WARNING", logger="fedmarket"):
        build_strategy(cfg(strategy="fedadam"), num_nodes=2)
    assert "eta = server-learning-rate = 1" in caplog.text
