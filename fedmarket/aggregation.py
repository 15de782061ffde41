"""The aggregation rules a run may name, and what each one needs before any round runs.

The library knows the rules by name and by their requirements (how many clients a round
needs, whether Flower's server-side DP noise still covers the aggregate), so a run config
is checked when it is read, before Flower or Ray start. Which Flower class implements a
rule, and with which arguments, is the adapter's business (``strategies/registry.py``);
a test keeps the two tables naming the same rules.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedmarket.checks import integer
from fedmarket.errors import ConfigError
from fedmarket.names import did_you_mean

if TYPE_CHECKING:
    from fedmarket.config import RunConfig

log = logging.getLogger("fedmarket")

# Flower's defaults for the FedOpt family are eta <= 0.1 (Reddi et al. 2021 tune 1e-3..1e-1).
LARGE_FEDOPT_ETA = 0.1


def _one(cfg: RunConfig) -> int:
    return 1


def _krum(cfg: RunConfig) -> int:
    return 2 * cfg.num_malicious_nodes + 3  # Blanchard et al. (2017): n >= 2f + 3


def _bulyan(cfg: RunConfig) -> int:
    return 4 * cfg.num_malicious_nodes + 3  # El Mhamdi et al. (2018): n >= 4f + 3


@dataclass(frozen=True)
class AggregationRule:
    """One rule a run config may name.

    ``central_dp`` says whether Flower's server-side clipping wrapper still gives the
    guarantee that ``fedmarket.privacy.central`` accounts for: it adds noise of std
    ``z·C/m`` to the inner strategy's *output*, which is right only when that output is
    the plain mean of the clipped updates (FedAvg, FedProx). FedAvgM and the FedOpt family
    keep noiseless server state (momentum, moments, their own copy of the model) that leaks
    past rounds into every later release; median, trimmed mean, Krum and Bulyan have a
    sensitivity far above ``C/m`` (Krum releases one client's update whole).
    ``min_per_round`` is the fewest clients per round the rule is defined for;
    ``server_optimiser`` marks the FedOpt family, whose step is scaled by
    ``server-learning-rate``.
    """

    name: str
    description: str
    central_dp: bool = False
    min_per_round: Callable[[RunConfig], int] = _one
    server_optimiser: bool = False


_RULES = (
    AggregationRule(
        "fedavg", "FedAvg: mean of client models weighted by num-examples", central_dp=True
    ),
    AggregationRule(
        "fedprox",
        "FedProx: FedAvg; clients add (proximal-mu/2)·||w - w_global||²",
        central_dp=True,
    ),
    AggregationRule(
        "fedavgm", "FedAvgM: FedAvg step with server-learning-rate and server-momentum"
    ),
    AggregationRule(
        "fedadam",
        "FedAdam: Adam on the mean update, eta = server-learning-rate",
        server_optimiser=True,
    ),
    AggregationRule(
        "fedyogi",
        "FedYogi: Yogi on the mean update, eta = server-learning-rate",
        server_optimiser=True,
    ),
    AggregationRule(
        "fedadagrad",
        "FedAdagrad: Adagrad on the mean update, eta = server-learning-rate",
        server_optimiser=True,
    ),
    AggregationRule("fedmedian", "FedMedian: coordinate-wise median of client models"),
    AggregationRule(
        "fedtrimmedavg", "FedTrimmedAvg: coordinate-wise mean without the trim-beta tails"
    ),
    AggregationRule(
        "krum",
        "Krum: the one client model closest to its neighbours (num-malicious-nodes)",
        min_per_round=_krum,
    ),
    AggregationRule(
        "multikrum",
        "MultiKrum: mean of the n - num-malicious-nodes best Krum scores",
        min_per_round=_krum,
    ),
    AggregationRule(
        "bulyan",
        "Bulyan: MultiKrum selection, then a trimmed coordinate-wise median",
        min_per_round=_bulyan,
    ),
)
RULES: dict[str, AggregationRule] = {rule.name: rule for rule in _RULES}
RULE_NAMES: tuple[str, ...] = tuple(RULES)


def check_rule_name(name: str) -> str:
    """``name`` if it is a known rule; ConfigError listing the known names otherwise."""
    if name not in RULES:
        raise ConfigError(
            f"unknown strategy {name!r}; {did_you_mean(name, RULE_NAMES)}"
            f"known: {', '.join(RULE_NAMES)}"
        )
    return name


def nodes_per_round(fraction: float, num_nodes: int) -> int:
    """Clients sampled per round: ``max(1, ceil(fraction · num_nodes))``.

    Rounded to 9 places first so that e.g. 0.28 · 25 = 7.000000000000001 gives 7, not 8.
    With exactly ``num_nodes`` nodes connected, this is also the number Flower samples.
    """
    return max(1, math.ceil(round(fraction * num_nodes, 9)))


def check_setup(cfg: RunConfig, num_nodes: int, *, warn: bool = True) -> int:
    """Refuse what would fail or mislead once rounds run; returns clients per round.

    Warnings (logged, not refused, and only with ``warn``: a pre-flight check leaves them to
    the strategy's construction) cover settings that run but rarely do what was meant.
    """
    integer("num_nodes", num_nodes, at_least=1)
    rule = RULES[check_rule_name(cfg.strategy)]
    per_round = nodes_per_round(cfg.fraction_train, num_nodes)
    sampled = (
        f"{per_round} of {num_nodes} retailers per round (fraction-train {cfg.fraction_train})"
    )
    if cfg.min_train_replies > per_round:
        raise ConfigError(
            f"run config: min-train-replies={cfg.min_train_replies} but only "
            f"{sampled} are sampled, so every round would be skipped; lower "
            f"min-train-replies or raise fraction-train"
        )
    needed = rule.min_per_round(cfg)
    if per_round < needed:
        raise ConfigError(
            f"run config: strategy {rule.name!r} with num-malicious-nodes="
            f"{cfg.num_malicious_nodes} needs at least {needed} clients per round, "
            f"got {sampled}; lower num-malicious-nodes, raise fraction-train or "
            f"add retailers"
        )
    if cfg.dp == "central" and not rule.central_dp:
        allowed = ", ".join(r.name for r in _RULES if r.central_dp)
        raise ConfigError(
            f"run config: dp='central' with strategy {rule.name!r} is refused: "
            f"Flower's server-side noise only protects a plain mean of clipped "
            f"updates, so the reported epsilon would not hold; use strategy "
            f"{allowed}, or dp='client'"
        )
    if warn:
        _warn_about(rule, cfg, per_round)
    return per_round


def _warn_about(rule: AggregationRule, cfg: RunConfig, per_round: int) -> None:
    if cfg.dp == "central" and cfg.central_noise_multiplier == 0:
        log.warning("central DP with central-noise-multiplier=0 only clips: epsilon is infinite")
    if rule.server_optimiser and cfg.server_learning_rate > LARGE_FEDOPT_ETA:
        log.warning(
            "%s: eta = server-learning-rate = %g moves every weight by about eta per "
            "round; Flower's defaults are 0.01-0.1 (e.g. --run-config server-learning-rate=0.01)",
            rule.name,
            cfg.server_learning_rate,
        )
    if rule.name == "fedtrimmedavg" and cfg.trim_beta > 0 and int(cfg.trim_beta * per_round) == 0:
        log.warning(
            "fedtrimmedavg: trim-beta=%g trims nothing with %d clients per round (a plain mean)",
            cfg.trim_beta,
            per_round,
        )
