"""A ServerApp with SecAgg+: the server learns only the weighted sum of the clients' models.

flwr 1.41 implements SecAgg+ only on its legacy path: ``SecAggPlusWorkflow`` inside a
``DefaultWorkflow``, driving a legacy ``flwr.server.strategy.FedAvg`` through a
``LegacyContext``, with ``secaggplus_mod`` on the clients. It cannot wrap the Message-API
strategies of ``server/app.py`` (``Strategy.start``), so this is a separate ServerApp,
launched as its own Flower App (``scripts/secagg_app/pyproject.toml``), that reuses everything
else: the preprocessing agreement, the client's training, the run log and the results.

How it composes with DP: with ``dp = "client"`` each retailer clips every customer's
gradient and adds Gaussian noise during local training (Opacus DP-SGD), *before* its model
is quantised and masked, so the customer-level guarantee is the same as without SecAgg+
and the server additionally never sees one retailer's model. ``dp = "central"`` is refused:
server-side clipping needs each update in the clear, which is exactly what SecAgg+ hides.

What it gives up against ``server/app.py``: only FedAvg; strategies, ``min-train-replies``
and central DP are not available; a failed reply cannot be attributed to a node.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp

from fedmarket.config import RunConfig
from fedmarket.data.features import FEATURE_NAMES
from fedmarket.defaults import default_run_dir
from fedmarket.errors import ConfigError
from fedmarket.federated.run_log import RunLog
from fedmarket.models import build_model
from fedmarket.reporting import write_run_outputs
from fedmarket.rundir import RunDir, write_json
from server.consortium import agree
from strategies.recording import ReplySummary
from strategies.registry import aggregate_client_metrics

log = logging.getLogger("fedmarket")
SECAGG_DEFAULTS: dict[str, float] = {
    "secagg-num-shares": 1.0,  # share each key with every sampled client
    "secagg-reconstruction-threshold": 0.67,  # of the shares, to unmask a dropped client
    "secagg-clipping-range": 8.0,  # model values are clipped to +-this before quantising
    "secagg-max-weight": 10000.0,  # upper bound on a client's num-examples
}


@dataclass(frozen=True)
class SecAggSettings:
    num_shares: float
    reconstruction_threshold: float
    clipping_range: float
    max_weight: float

    @staticmethod
    def split(values: dict[str, Any]) -> tuple[RunConfig, SecAggSettings]:
        """The run config's fedmarket keys and its ``secagg-*`` keys, each validated."""
        secagg = {**SECAGG_DEFAULTS, **{k: v for k, v in values.items() if k in SECAGG_DEFAULTS}}
        cfg = RunConfig.from_mapping({k: v for k, v in values.items() if k not in SECAGG_DEFAULTS})
        if cfg.dp == "central":
            raise ConfigError(
                "run config: dp='central' cannot run with SecAgg+: server-side "
                "clipping needs each update in the clear; use dp='client' (clipping "
                "and noise on each retailer before masking) or dp='none'"
            )
        if cfg.strategy != "fedavg":
            raise ConfigError(
                f"run config: SecAgg+ aggregates a (weighted) mean; strategy "
                f"{cfg.strategy!r} is not available with it, use 'fedavg'"
            )
        if cfg.personalisation != "none":
            raise ConfigError(
                f"run config: personalisation={cfg.personalisation!r} is not available with "
                "SecAgg+ (its legacy workflow sends no personalisation message and masks whole "
                "models); run it with the main app (server/app.py) or leave it at 'none'"
            )
        if cfg.task == "next-products":
            raise ConfigError(
                "run config: task 'next-products' is not available with SecAgg+ (its legacy "
                "workflow masks whole models, and each retailer's product table must stay "
                "out of the update); run it with the main app (server/app.py)"
            )
        settings = SecAggSettings(*(float(secagg[k]) for k in SECAGG_DEFAULTS))
        if not 0 < settings.num_shares <= 1 or not 0 < settings.reconstruction_threshold <= 1:
            raise ConfigError(
                "run config: secagg-num-shares and secagg-reconstruction-threshold "
                "are fractions in (0, 1]"
            )
        if settings.clipping_range <= 0 or settings.max_weight <= 0:
            raise ConfigError("run config: secagg-clipping-range and secagg-max-weight must be > 0")
        return cfg, settings


class RecordingFedAvg(FedAvg):
    """Legacy FedAvg that writes fedmarket's run log (rounds.csv, checkpoints)."""

    def __init__(self, run: RunLog, keys: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run, self.keys = run, keys

    def aggregate_fit(self, server_round, results, failures):  # type: ignore[no-untyped-def]
        parameters, metrics = super().aggregate_fit(server_round, results, failures)
        summary = _summary(server_round, "train", results, failures)
        arrays = None
        if parameters is not None:
            state = {
                k: torch.from_numpy(np.asarray(a))
                for k, a in zip(self.keys, parameters_to_ndarrays(parameters), strict=True)
            }
            arrays = ArrayRecord(state)
        self.run.on_train(summary, arrays, MetricRecord(metrics) if metrics else None)
        return parameters, metrics

    def evaluate(self, server_round, parameters):  # type: ignore[no-untyped-def]
        # the legacy workflow calls this after every round's fit, before the clients'
        # evaluation (which does not run at fraction-evaluate 0): the round's commit point
        self.run.evaluate_global(server_round, ArrayRecord())
        return None

    def aggregate_evaluate(self, server_round, results, failures):  # type: ignore[no-untyped-def]
        loss, metrics = super().aggregate_evaluate(server_round, results, failures)
        self.run.on_evaluate(  # rewritten with the next commit, or the last by run.finish
            _summary(server_round, "evaluate", results, failures),
            MetricRecord(metrics) if metrics else None,
        )
        return loss, metrics


def _summary(server_round: int, phase: str, results: list, failures: list) -> ReplySummary:
    reasons = tuple((0, -1, str(f)[:300]) for f in failures)
    return ReplySummary(
        server_round=server_round,
        phase=phase,  # type: ignore[arg-type]
        sent=len(results) + len(failures),
        ok=len(results),
        failed=len(failures),
        declined=0,
        timed_out=0,
        failures=reasons,
        per_client=tuple(dict(res.metrics) for _, res in results),
    )


def _aggregate(pairs: list[tuple[int, dict]]) -> dict:
    """Legacy (num_examples, metrics) pairs through fedmarket's Message-API aggregation."""
    records = [RecordDict({"metrics": MetricRecord(dict(m))}) for _, m in pairs]
    return dict(aggregate_client_metrics(records, "num-examples"))


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    started = time.perf_counter()
    cfg, settings = SecAggSettings.split(dict(context.run_config))
    consortium = agree(grid, timeout=cfg.round_timeout)
    if consortium.agreement is None:
        raise ConfigError("SecAgg+ needs SuperNodes started with data-path (raw exports)")
    num_nodes = len(consortium.node_ids)
    run_dir = Path(cfg.out_dir) if cfg.out_dir else default_run_dir("secagg")
    run_dir.mkdir(parents=True, exist_ok=True)
    secagg = {
        k: getattr(settings, k.removeprefix("secagg-").replace("-", "_")) for k in SECAGG_DEFAULTS
    }
    write_json(RunDir(run_dir).config, {**cfg.to_flower(), **secagg})
    run = RunLog(cfg, run_dir, None, num_nodes=num_nodes)
    run.n_train_total = consortium.agreement.n_train_total
    weights = build_model(
        cfg.model, len(FEATURE_NAMES), task=cfg.task, seed=cfg.seed, **cfg.model_options()
    ).state_dict()
    shared = {"fedmarket-agreement": consortium.agreement.to_json()}
    quorum = max(2, cfg.min_train_replies)  # SecAgg+ needs at least two clients per round
    strategy = RecordingFedAvg(
        run,
        list(weights),
        fraction_fit=cfg.fraction_train,
        fraction_evaluate=cfg.fraction_evaluate,
        min_fit_clients=quorum,
        min_evaluate_clients=1,
        min_available_clients=quorum,
        on_fit_config_fn=lambda rnd: {**shared, "server-round": rnd},
        on_evaluate_config_fn=lambda rnd: {**shared, "server-round": rnd},
        initial_parameters=ndarrays_to_parameters([v.numpy() for v in weights.values()]),
        fit_metrics_aggregation_fn=_aggregate,
        evaluate_metrics_aggregation_fn=_aggregate,
    )
    log.info(
        "fedmarket SecAgg+: %s on %d retailers, %d rounds, dp=%s; writing %s",
        cfg.model,
        num_nodes,
        cfg.num_server_rounds,
        cfg.dp,
        run_dir,
    )
    legacy = LegacyContext(
        context,
        config=ServerConfig(num_rounds=cfg.num_server_rounds, round_timeout=cfg.round_timeout),
        strategy=strategy,
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=settings.num_shares,
            reconstruction_threshold=settings.reconstruction_threshold,
            clipping_range=settings.clipping_range,
            max_weight=settings.max_weight,
            timeout=cfg.round_timeout,
        )
    )
    workflow(grid, legacy)
    federated = run.finish(time.perf_counter() - started)
    federated["secure_aggregation"] = "SecAgg+ (flwr SecAggPlusWorkflow)"
    write_run_outputs(run_dir, cfg, federated, centralised=None)
    log.info("fedmarket SecAgg+: run finished; results in %s", run_dir)
