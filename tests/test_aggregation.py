"""The aggregation rules' names and per-round arithmetic (fedmarket.aggregation)."""

import pytest

from fedmarket.aggregation import check_rule_name, nodes_per_round
from fedmarket.config import RunConfig
from fedmarket.errors import ConfigError


def cfg(**values) -> RunConfig:
    return RunConfig.from_mapping(values)


@pytest.mark.parametrize(
    ("fraction", "nodes", "expected"),
    [(1.0, 10, 10), (0.3, 10, 3), (0.25, 10, 3), (0.01, 10, 1), (0.28, 25, 7)],
)
def test_nodes_per_round_is_ceil_without_float_noise(fraction, nodes, expected):
    assert 0.28 * 25 > 7  # the float noise the rounding guards against
    assert nodes_per_round(fraction, nodes) == expected


def test_unknown_name():
    assert check_rule_name("krum") == "krum"
    with pytest.raises(ConfigError, match=r"unknown strategy 'zzz'; known: fedavg, fedprox"):
        check_rule_name("zzz")
    with pytest.raises(
        ConfigError, match=r"unknown strategy 'fedprx'; did you mean 'fedprox'\? known: fedavg,"
    ):
        check_rule_name("fedprx")
    with pytest.raises(ConfigError, match="unknown strategy 'FedAvg'"):
        cfg(strategy="FedAvg")
