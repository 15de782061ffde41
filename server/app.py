"""fedmarket's ServerApp: build the strategy, run the rounds, write the run directory.

Thin on purpose: settings come from ``fedmarket.config``, the round log, checkpoints and
global evaluation from ``fedmarket.federated.run_log``, the strategy from ``strategies``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.superlink.grid import InMemoryGrid

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.data.features import FEATURE_NAMES
from fedmarket.defaults import default_run_dir, ensure_default_data
from fedmarket.deploy.agreement import CONFIG_KEY
from fedmarket.federated.run_log import RunLog
from fedmarket.models import build_model
from fedmarket.rundir import RunDir
from server.consortium import agree, deployment_strategy
from strategies import build_strategy

log = logging.getLogger("fedmarket")


def make_server_app(
    fixed: RunConfig | None = None,
    *,
    round_offset: int = 0,
    initial_weights: dict | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> ServerApp:
    """A ServerApp; ``fixed`` and the rest are given by `fedmarket simulate`.

    On resume, ``round_offset`` rounds are already done and ``initial_weights`` is their
    checkpoint; the run continues up to ``num-server-rounds`` in total.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        started = time.perf_counter()
        cfg = fixed if fixed is not None else RunConfig.from_mapping(dict(context.run_config))
        deployed = not isinstance(grid, InMemoryGrid)  # SuperNodes on their own machines
        if cfg.data_dir or not deployed:
            data_dir = Path(cfg.data_dir) if cfg.data_dir else ensure_default_data(log=log.info)
        else:
            data_dir = Path()  # deployment: no pooled data on the server
        has_data = (data_dir / store.MANIFEST_NAME).is_file()
        manifest = store.read_manifest(data_dir) if has_data else None
        consortium = agree(grid, timeout=cfg.round_timeout) if deployed and not manifest else None
        if manifest:
            num_nodes = len(manifest["partitions"])
            _await_nodes(grid, num_nodes)
        elif consortium is not None:
            num_nodes = len(consortium.node_ids)
        else:
            num_nodes = _connected(grid)
        run_dir = Path(cfg.out_dir) if cfg.out_dir else default_run_dir("flwr")
        run_dir.mkdir(parents=True, exist_ok=True)
        if round_offset == 0:
            RunDir(run_dir).write_config(cfg)
        log.info(
            "fedmarket: %s on %d clients, %d rounds, dp=%s; writing %s",
            cfg.model,
            num_nodes,
            cfg.num_server_rounds,
            cfg.dp,
            run_dir,
        )
        run = RunLog(
            cfg,
            run_dir,
            data_dir if has_data else None,
            num_nodes=num_nodes,
            round_offset=round_offset,
        )
        shared = ConfigRecord()
        if consortium is not None and consortium.agreement is not None:
            shared[CONFIG_KEY] = consortium.agreement.to_json()
            run.n_train_total = consortium.agreement.n_train_total  # for the run's delta
        n_features = len(manifest["feature_names"]) if manifest else len(FEATURE_NAMES)
        weights = (
            initial_weights
            or build_model(cfg.model, n_features, task=cfg.task, seed=cfg.seed).state_dict()
        )
        strategy = (
            deployment_strategy(cfg, num_nodes, run)
            if consortium is not None
            else build_strategy(cfg, num_nodes=num_nodes, recorder=run)
        )

        def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            metrics = run.evaluate_global(server_round, arrays)
            return MetricRecord(metrics) if metrics else None

        pin_flower_randomness(cfg.seed)
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(weights),
            num_rounds=cfg.num_server_rounds - round_offset,
            timeout=cfg.round_timeout,
            train_config=ConfigRecord({"round-offset": round_offset, **shared}),
            evaluate_config=ConfigRecord(dict(shared)),
            evaluate_fn=evaluate_fn,
        )
        federated = run.finish(time.perf_counter() - started)
        if on_done is not None:
            on_done(federated)
        else:  # `flwr run`: no pooled centralised reference here; write what the run has
            from fedmarket.results import write_run_outputs

            write_run_outputs(run_dir, cfg, federated, centralised=None)
        log.info("fedmarket: run finished; results in %s", run_dir)

    return app


def pin_flower_randomness(seed: int) -> None:
    """Seed the global RNGs Flower draws from, so a run is reproducible by its seed.

    fedmarket's own randomness is explicit (seeded generators); Flower's is not: its
    server-side DP wrappers add noise with ``np.random.normal`` and its strategies sample
    clients with ``random.sample``, from the global generators. Seeding them here, once per
    run, is the only handle. Client sampling below ``fraction-train = 1`` still differs
    between runs, because the node ids it samples from are drawn afresh for every run.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)


# After this long without every SuperNode, say what usually causes it (once).
NODES_HINT_AFTER_S = 20.0


def _await_nodes(grid: Grid, needed: int, hint_after: float = NODES_HINT_AFTER_S) -> None:
    """Wait for one SuperNode per partition, telling the user how to fix a short federation.

    Flower's strategy would wait for them silently (a line per second); with `flwr run` the
    usual cause is a local federation left at flwr's default of 2 simulated SuperNodes. In a
    deployment, SuperNodes may legitimately come late, so this only warns and keeps waiting.
    """
    started = time.monotonic()
    hinted = False
    while (connected := len(list(grid.get_node_ids()))) < needed:
        if not hinted and time.monotonic() - started >= hint_after:
            log.warning(
                "%d of %d SuperNodes connected (one per partition of the data); still "
                "waiting. With `flwr run` on a local simulation, give the federation %d: "
                "`flwr federation simulation-config @none/default local --num-supernodes "
                "%d`, or use `fedmarket simulate`. In a deployment, start the missing "
                "SuperNodes.",
                connected,
                needed,
                needed,
                needed,
            )
            hinted = True
        time.sleep(0.5)


def _connected(grid: Grid) -> int:
    """Deployment without local data: wait briefly for nodes and use how many connected."""
    for _ in range(30):
        ids = list(grid.get_node_ids())
        if ids:
            return len(ids)
        time.sleep(1)
    return 1


app = make_server_app()
