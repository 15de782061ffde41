"""Which Flower strategy implements each aggregation rule, and how it is built for fedmarket.

Every entry is one of Flower's own ``flwr.serverapp.strategy`` classes; nothing here
re-implements an aggregation rule. The rules themselves (names, what each needs, whether
central DP covers it) are the library's (``fedmarket.aggregation``), checked when the run
config is read; this module maps them to Flower's constructors, wraps central DP, adds a
metrics aggregation that reports the worst-case client epsilon, and the round recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flwr.serverapp.strategy as flwr_strategies
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, Strategy

from fedmarket.aggregation import RULES, AggregationRule, check_setup, nodes_per_round
from fedmarket.config import RunConfig
from fedmarket.metrics import ONE_TEST_SET_KEYS
from strategies.recording import RecordingStrategy, RoundRecorder

NUM_EXAMPLES_KEY = "num-examples"
UNIT_WEIGHT_KEY = "unit-weight"
# Identifiers and weights, and what describes one client's test set as a whole (intervals,
# counts, totals): a mean of them means nothing, so aggregated records leave them out.
NOT_AVERAGED = frozenset({"partition-id", UNIT_WEIGHT_KEY, *ONE_TEST_SET_KEYS})

Kwargs = Callable[[RunConfig, int], dict[str, Any]]


def _no_kwargs(cfg: RunConfig, per_round: int) -> dict[str, Any]:
    return {}


def _fedopt(cfg: RunConfig, per_round: int) -> dict[str, Any]:
    # eta_l is informational in Flower's FedOpt (logged, never sent); clients use learning-rate.
    return {"eta": cfg.server_learning_rate, "eta_l": cfg.learning_rate}


def _multikrum(cfg: RunConfig, per_round: int) -> dict[str, Any]:
    # El Mhamdi et al. (2018) average the m = n - f best-scored updates.
    selected = max(1, per_round - cfg.num_malicious_nodes)
    return {"num_malicious_nodes": cfg.num_malicious_nodes, "num_nodes_to_select": selected}


def _malicious(cfg: RunConfig, per_round: int) -> dict[str, Any]:
    return {"num_malicious_nodes": cfg.num_malicious_nodes}


@dataclass(frozen=True)
class StrategySpec:
    """One aggregation rule's Flower class and constructor arguments."""

    rule: AggregationRule
    class_name: str
    kwargs: Kwargs

    @property
    def strategy_class(self) -> type[Strategy]:
        return getattr(flwr_strategies, self.class_name)

    @property
    def description(self) -> str:
        return self.rule.description


_FLOWER: dict[str, tuple[str, Kwargs]] = {
    "fedavg": ("FedAvg", _no_kwargs),
    "fedprox": ("FedProx", lambda cfg, m: {"proximal_mu": cfg.proximal_mu}),
    "fedavgm": (
        "FedAvgM",
        lambda cfg, m: {
            "server_learning_rate": cfg.server_learning_rate,
            "server_momentum": cfg.server_momentum,
        },
    ),
    "fedadam": ("FedAdam", _fedopt),
    "fedyogi": ("FedYogi", _fedopt),
    "fedadagrad": ("FedAdagrad", _fedopt),
    "fedmedian": ("FedMedian", _no_kwargs),
    "fedtrimmedavg": ("FedTrimmedAvg", lambda cfg, m: {"beta": cfg.trim_beta}),
    "krum": ("Krum", _malicious),
    "multikrum": ("MultiKrum", _multikrum),
    "bulyan": ("Bulyan", _malicious),
}
STRATEGIES: dict[str, StrategySpec] = {
    name: StrategySpec(RULES[name], *_FLOWER[name]) for name in RULES
}


def build_strategy(
    cfg: RunConfig, *, num_nodes: int, recorder: RoundRecorder | None = None
) -> RecordingStrategy:
    """The run's strategy: Flower's class, central DP if asked, inside a RecordingStrategy.

    ``num_nodes`` is the number of retailers; sampling waits until that many are connected.
    Under central DP the arrays are averaged uniformly (weighted by "unit-weight", which
    every client reply must carry) because Flower's noise is calibrated for the plain mean
    of ``m`` clipped updates, and a round aggregates only when all ``m`` sampled clients
    replied validly: with fewer, the mean's sensitivity exceeds what the noise covers.
    """
    train_m = check_setup(cfg, num_nodes)
    spec = STRATEGIES[cfg.strategy]
    central = cfg.dp == "central"
    strategy = spec.strategy_class(
        fraction_train=cfg.fraction_train,
        fraction_evaluate=cfg.fraction_evaluate,
        min_train_nodes=train_m,
        min_evaluate_nodes=nodes_per_round(cfg.fraction_evaluate, num_nodes),
        min_available_nodes=num_nodes,
        weighted_by_key=UNIT_WEIGHT_KEY if central else NUM_EXAMPLES_KEY,
        train_metrics_aggr_fn=aggregate_client_metrics,
        evaluate_metrics_aggr_fn=aggregate_client_metrics,
        **spec.kwargs(cfg, train_m),
    )
    min_replies = cfg.min_train_replies
    if central:
        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy,
            noise_multiplier=cfg.central_noise_multiplier,
            clipping_norm=cfg.central_clipping_norm,
            num_sampled_clients=train_m,
        )
        min_replies = max(min_replies, train_m)
    return RecordingStrategy(
        strategy,
        min_train_replies=min_replies,
        recorder=recorder,
        partial_replies=cfg.personalisation == "fedper",
    )


def aggregate_client_metrics(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Flower's metrics aggregation for train and evaluate replies, fedmarket's way.

    Every key is averaged weighted by "num-examples" (uniformly when the replies carry no
    "num-examples" or all are 0), whatever key the arrays are weighted by, because a
    client's loss or AUC describes its examples; "num-examples" itself is summed (examples
    seen this round); keys starting with "epsilon" take the maximum, so the record shows
    the worst-case client's privacy loss; "partition-id", "unit-weight", the arrays'
    weight key and the keys of one test set as a whole (``ONE_TEST_SET_KEYS``: intervals,
    counts, totals, which no mean turns into the federation's) are dropped. Lists are
    aggregated element by element.
    """
    metrics = [next(iter(record.metric_records.values())) for record in records]
    if not metrics:
        return MetricRecord()
    weights = [float(m[NUM_EXAMPLES_KEY]) if NUM_EXAMPLES_KEY in m else 1.0 for m in metrics]
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(metrics), float(len(metrics))
    shares = [w / total for w in weights]
    out = MetricRecord()
    for key in metrics[0]:
        if key in NOT_AVERAGED or (key == weighted_by_key and key != NUM_EXAMPLES_KEY):
            continue
        values = [m[key] for m in metrics]
        if key == NUM_EXAMPLES_KEY:
            out[key] = sum(values)
        elif key.startswith("epsilon"):
            out[key] = _elementwise(values, lambda col: max(col))
        else:
            out[key] = _elementwise(values, lambda col: _weighted(shares, col))
    return out


def _weighted(shares: list[float], column: list[float]) -> float:
    return sum(s * v for s, v in zip(shares, column, strict=True))


def _elementwise(values: list[Any], reduce: Callable[[list[float]], float]) -> Any:
    if isinstance(values[0], list):
        return [float(reduce(list(column))) for column in zip(*values, strict=True)]
    return float(reduce(values))
