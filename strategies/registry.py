"""Which Flower strategy a run config names, and how it is built for fedmarket.

Every entry is one of Flower's own ``flwr.serverapp.strategy`` classes; nothing here
re-implements an aggregation rule. What fedmarket adds is the mapping from kebab-case run
settings to constructor arguments, the checks that would otherwise fail mid-run (Krum
with too few clients, central DP on an aggregate it does not protect), a metrics
aggregation that reports the worst-case client epsilon, and the round-recording wrapper.

This module is imported by ``fedmarket.config`` to validate the strategy name, so flwr is
imported only inside the functions that need it (importing it costs about 0.4 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from logging import WARNING
from typing import TYPE_CHECKING, Any

from fedmarket.errors import ConfigError

if TYPE_CHECKING:
    from flwr.app import MetricRecord, RecordDict
    from flwr.serverapp.strategy import Strategy

    from fedmarket.config import RunConfig
    from strategies.recording import RecordingStrategy, RoundRecorder

NUM_EXAMPLES_KEY = "num-examples"
UNIT_WEIGHT_KEY = "unit-weight"
# Identifiers and weights: a mean of them means nothing, so aggregated records leave them out.
NOT_AVERAGED = frozenset({"partition-id", UNIT_WEIGHT_KEY})
# Flower's defaults for the FedOpt family are eta <= 0.1 (Reddi et al. 2021 tune 1e-3..1e-1).
_LARGE_FEDOPT_ETA = 0.1

Kwargs = Callable[["RunConfig", int], dict[str, Any]]


def _no_kwargs(cfg: RunConfig, per_round: int) -> dict[str, Any]:
    return {}


def _fedopt(cfg: RunConfig, per_round: int) -> dict[str, Any]:
    # eta_l is informational in Flower's FedOpt (logged, never sent); clients use learning-rate.
    return {"eta": cfg.server_learning_rate, "eta_l": cfg.learning_rate}


def _multikrum(cfg: RunConfig, per_round: int) -> dict[str, Any]:
    # El Mhamdi et al. (2018) average the m = n - f best-scored updates.
    selected = max(1, per_round - cfg.num_malicious_nodes)
    return {"num_malicious_nodes": cfg.num_malicious_nodes, "num_nodes_to_select": selected}


@dataclass(frozen=True)
class StrategySpec:
    """One registry entry.

    ``central_dp`` says whether Flower's server-side clipping wrapper still gives the
    guarantee that ``fedmarket.privacy.central`` accounts for: it adds noise of std
    ``z·C/m`` to the inner strategy's *output*, which is right only when that output is
    the plain mean of the clipped updates (FedAvg, FedProx). FedAvgM and the FedOpt family
    keep noiseless server state (momentum, moments, their own copy of the model) that leaks
    past rounds into every later release; median, trimmed mean, Krum and Bulyan have a
    sensitivity far above ``C/m`` (Krum releases one client's update whole).
    ``min_per_round`` is the fewest clients per round the rule is defined for.
    """

    name: str
    class_name: str
    kwargs: Kwargs
    description: str
    central_dp: bool = False
    min_per_round: Callable[[RunConfig], int] = lambda cfg: 1

    @property
    def strategy_class(self) -> type[Strategy]:
        import flwr.serverapp.strategy as flwr_strategies

        return getattr(flwr_strategies, self.class_name)


_SPECS = (
    StrategySpec(
        "fedavg",
        "FedAvg",
        _no_kwargs,
        "FedAvg: mean of client models weighted by num-examples",
        central_dp=True,
    ),
    StrategySpec(
        "fedprox",
        "FedProx",
        lambda cfg, m: {"proximal_mu": cfg.proximal_mu},
        "FedProx: FedAvg; clients add (proximal-mu/2)·||w - w_global||²",
        central_dp=True,
    ),
    StrategySpec(
        "fedavgm",
        "FedAvgM",
        lambda cfg, m: {
            "server_learning_rate": cfg.server_learning_rate,
            "server_momentum": cfg.server_momentum,
        },
        "FedAvgM: FedAvg step with server-learning-rate and server-momentum",
    ),
    StrategySpec(
        "fedadam",
        "FedAdam",
        _fedopt,
        "FedAdam: Adam on the mean update, eta = server-learning-rate",
    ),
    StrategySpec(
        "fedyogi",
        "FedYogi",
        _fedopt,
        "FedYogi: Yogi on the mean update, eta = server-learning-rate",
    ),
    StrategySpec(
        "fedadagrad",
        "FedAdagrad",
        _fedopt,
        "FedAdagrad: Adagrad on the mean update, eta = server-learning-rate",
    ),
    StrategySpec(
        "fedmedian", "FedMedian", _no_kwargs, "FedMedian: coordinate-wise median of client models"
    ),
    StrategySpec(
        "fedtrimmedavg",
        "FedTrimmedAvg",
        lambda cfg, m: {"beta": cfg.trim_beta},
        "FedTrimmedAvg: coordinate-wise mean without the trim-beta tails",
    ),
    StrategySpec(
        "krum",
        "Krum",
        lambda cfg, m: {"num_malicious_nodes": cfg.num_malicious_nodes},
        "Krum: the one client model closest to its neighbours (num-malicious-nodes)",
        min_per_round=lambda cfg: 2 * cfg.num_malicious_nodes + 3,
    ),
    StrategySpec(
        "multikrum",
        "MultiKrum",
        _multikrum,
        "MultiKrum: mean of the n - num-malicious-nodes best Krum scores",
        min_per_round=lambda cfg: 2 * cfg.num_malicious_nodes + 3,
    ),
    StrategySpec(
        "bulyan",
        "Bulyan",
        lambda cfg, m: {"num_malicious_nodes": cfg.num_malicious_nodes},
        "Bulyan: MultiKrum selection, then a trimmed coordinate-wise median",
        min_per_round=lambda cfg: 4 * cfg.num_malicious_nodes + 3,
    ),
)
STRATEGIES: dict[str, StrategySpec] = {spec.name: spec for spec in _SPECS}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)


def check_strategy_name(name: str) -> str:
    """``name`` if it is registered; ConfigError listing the known names otherwise."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; known: {', '.join(STRATEGY_NAMES)}")
    return name


def nodes_per_round(fraction: float, num_nodes: int) -> int:
    """Clients sampled per round: ``max(1, ceil(fraction · num_nodes))``.

    Rounded to 9 places first so that e.g. 0.28 · 25 = 7.000000000000001 gives 7, not 8.
    With exactly ``num_nodes`` nodes connected, this is also the number Flower samples.
    """
    return max(1, math.ceil(round(fraction * num_nodes, 9)))


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
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

    from strategies.recording import RecordingStrategy

    spec = STRATEGIES[check_strategy_name(cfg.strategy)]
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ConfigError(
            f"build_strategy: num_nodes must be a positive integer, got {num_nodes!r}"
        )
    train_m = nodes_per_round(cfg.fraction_train, num_nodes)
    central = cfg.dp == "central"
    _check_setup(spec, cfg, train_m, num_nodes)
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
    return RecordingStrategy(strategy, min_train_replies=min_replies, recorder=recorder)


def _check_setup(spec: StrategySpec, cfg: RunConfig, per_round: int, num_nodes: int) -> None:
    """Refuse, before any round runs, what would fail or mislead later."""
    from flwr.common.logger import log

    sampled = (
        f"{per_round} of {num_nodes} retailers per round (fraction-train {cfg.fraction_train})"
    )
    if cfg.min_train_replies > per_round:
        raise ConfigError(
            f"run config: min-train-replies={cfg.min_train_replies} but only "
            f"{sampled} are sampled, so every round would be skipped; lower "
            f"min-train-replies or raise fraction-train"
        )
    needed = spec.min_per_round(cfg)
    if per_round < needed:
        raise ConfigError(
            f"run config: strategy {spec.name!r} with num-malicious-nodes="
            f"{cfg.num_malicious_nodes} needs at least {needed} clients per round, "
            f"got {sampled}; lower num-malicious-nodes, raise fraction-train or "
            f"add retailers"
        )
    if cfg.dp == "central" and not spec.central_dp:
        allowed = ", ".join(s.name for s in _SPECS if s.central_dp)
        raise ConfigError(
            f"run config: dp='central' with strategy {spec.name!r} is refused: "
            f"Flower's server-side noise only protects a plain mean of clipped "
            f"updates, so the reported epsilon would not hold; use strategy "
            f"{allowed}, or dp='client'"
        )
    if cfg.dp == "central" and cfg.central_noise_multiplier == 0:
        log(WARNING, "central DP with central-noise-multiplier=0 only clips: epsilon is infinite")
    if spec.kwargs is _fedopt and cfg.server_learning_rate > _LARGE_FEDOPT_ETA:
        log(
            WARNING,
            "%s: eta = server-learning-rate = %g moves every weight by about eta per "
            "round; Flower's defaults are 0.01-0.1 (e.g. --run-config server-learning-rate=0.01)",
            spec.name,
            cfg.server_learning_rate,
        )
    if spec.name == "fedtrimmedavg" and cfg.trim_beta > 0 and int(cfg.trim_beta * per_round) == 0:
        log(
            WARNING,
            "fedtrimmedavg: trim-beta=%g trims nothing with %d clients per round (a plain mean)",
            cfg.trim_beta,
            per_round,
        )


def aggregate_client_metrics(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Flower's metrics aggregation for train and evaluate replies, fedmarket's way.

    Every key is averaged weighted by "num-examples" (uniformly when the replies carry no
    "num-examples" or all are 0), whatever key the arrays are weighted by, because a
    client's loss or AUC describes its examples; "num-examples" itself is summed (examples
    seen this round); keys starting with "epsilon" take the maximum, so the record shows
    the worst-case client's privacy loss; "partition-id", "unit-weight" and the arrays'
    weight key are dropped. Lists are aggregated element by element.
    """
    from flwr.app import MetricRecord

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
