"""fedmarket's ServerApp: join the federation, run the rounds, write the run directory.

Thin on purpose, as in Flower's own examples: ``main`` reads the settings and calls three
named steps. ``join_federation`` finds who takes part (the prepared partitions in
simulation, or the deployment agreement with SuperNodes that hold raw exports);
``run_rounds`` starts the strategy with the run log as its recorder; the run log
(``fedmarket.federated.run_log``) checkpoints, evaluates and writes each round.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.fernet import Fernet
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common.logger import console_handler as flower_console
from flwr.serverapp import Grid, ServerApp
from flwr.superlink.grid import InMemoryGrid

from fedmarket.aggregation import check_setup
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.data.features import FEATURE_NAMES
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.defaults import default_run_dir, ensure_default_data
from fedmarket.deploy.agreement import CONFIG_KEY
from fedmarket.federated.run_log import RunLog, restore_global_rng
from fedmarket.models import build_model
from fedmarket.progress import log_file, quiet_flower
from fedmarket.recommend.data import model_inputs
from fedmarket.rundir import RunDir, write_json
from fedmarket.value.personal import with_personal_epsilon
from server.consortium import Consortium, agree, deployment_strategy
from server.personalise import personalise
from strategies import build_strategy

log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class Resume:
    """Where a resumed run continues: rounds already done and their last checkpoint."""

    round_offset: int = 0
    weights: dict | None = None
    rng: dict | None = None  # the global generators at that commit (RunLog's marker)


@dataclass(frozen=True)
class Federation:
    """Who takes part in the run.

    ``data_dir``/``manifest``: prepared partitions the server can read (simulation, or a
    deployment given data-dir), which also give the pooled test set, and ``fernet``, the
    key that opens them when they are encrypted; ``consortium``: the deployment agreement
    with SuperNodes holding raw exports (no pooled data here).
    """

    num_nodes: int
    data_dir: Path | None = None
    manifest: dict[str, Any] | None = None
    consortium: Consortium | None = None
    fernet: Fernet | None = field(default=None, repr=False, compare=False)

    @property
    def n_features(self) -> int:
        return store.n_features(self.manifest) if self.manifest else len(FEATURE_NAMES)

    def model_inputs(self, task: str) -> tuple[int, dict[str, Any]]:
        """(features per step, extra model arguments) of the task's model on this data."""
        if self.manifest is None:
            return self.n_features, {}
        return model_inputs(self.manifest, task)

    @property
    def shared_config(self) -> dict[str, str]:
        """What every train and evaluate message carries: the agreement, if there is one."""
        agreement = self.consortium.agreement if self.consortium else None
        return {CONFIG_KEY: agreement.to_json()} if agreement is not None else {}


def make_server_app(
    fixed: RunConfig | None = None,
    *,
    round_offset: int = 0,
    initial_weights: dict | None = None,
    initial_rng: dict | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    fernet: Fernet | None = None,
    stop_requested: Callable[[], bool] | None = None,
    progress: Callable[..., None] | None = None,
) -> ServerApp:
    """A ServerApp; ``fixed`` and the rest are given by `fedmarket simulate`.

    On resume, ``round_offset`` rounds are already done and ``initial_weights`` is their
    checkpoint; the run continues up to ``num-server-rounds`` in total. ``on_done`` gets
    the federated result; without it (`flwr run`) the run directory's report is written
    here, with no centralised reference (that needs the pooled data). ``fernet`` opens
    encrypted prepared data; without it the key comes from $FEDMARKET_ENCRYPTION_KEY of
    this process, never from the run config (which every node receives). ``progress`` is
    advanced once per committed round. Under `flwr run` (no ``fixed``) the app sets up its
    own terminal and the run directory's log file; `fedmarket simulate` sets up both itself.
    """
    app = ServerApp()
    resume = Resume(round_offset, initial_weights, initial_rng)

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        started = time.perf_counter()
        cfg = fixed if fixed is not None else RunConfig.from_mapping(dict(context.run_config))
        flwr_run = fixed is None
        with flwr_run_terminal() if flwr_run else nullcontext():
            federation = join_federation(grid, cfg, fernet)
            check_setup(cfg, federation.num_nodes, warn=False)  # before anything is written
            run_dir = open_run_dir(cfg, resume)
            with log_file(RunDir(run_dir).log) if flwr_run else nullcontext():
                federated = run_rounds(
                    grid, cfg, federation, run_dir, resume, started, stop_requested, progress
                )
                if on_done is not None:
                    on_done(federated)
                else:
                    from fedmarket.reporting import write_run_outputs  # matplotlib: at the end

                    write_run_outputs(run_dir, cfg, federated, centralised=None)
            log.info("fedmarket: run finished; results in %s", run_dir)

    return app


@contextmanager
def flwr_run_terminal() -> Iterator[None]:
    """What `flwr run --stream` shows of this ServerApp: fedmarket's lines, Flower's warnings.

    The ServerApp's process streams its output to `flwr run`. fedmarket's logger has no
    handler there (its INFO lines, and where the results went, were lost), and Flower's
    every record came twice (Opacus configures the root logger when it is imported). Here
    fedmarket's lines go through Flower's own console handler, in Flower's format, and
    Flower's console keeps its warnings and errors; its INFO and DEBUG lines, the Python
    warnings and fedmarket's DEBUG lines go to ``RUN/log.txt`` (``open_run_dir`` onwards).
    """
    ours = logging.getLogger("fedmarket")
    saved = (ours.level, ours.propagate, list(flower_console.filters))
    ours.addHandler(flower_console)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    quiet_flower()
    try:
        yield
    finally:
        ours.removeHandler(flower_console)
        ours.level, ours.propagate = saved[0], saved[1]
        flower_console.filters[:] = saved[2]


def join_federation(grid: Grid, cfg: RunConfig, fernet: Fernet | None = None) -> Federation:
    """Prepared partitions when the server can read them, else the deployment agreement.

    The key of encrypted partitions is checked before waiting for any SuperNode, so a
    missing or wrong key stops the run before a round starts.
    """
    deployed = not isinstance(grid, InMemoryGrid)  # SuperNodes on their own machines
    if cfg.data_dir or not deployed:
        data_dir = Path(cfg.data_dir) if cfg.data_dir else ensure_default_data(log=log.info)
        if (data_dir / store.MANIFEST_NAME).is_file():
            manifest = store.read_manifest(data_dir)
            store.verify_prepared(data_dir, manifest)
            fernet = fernet if fernet is not None else prepared_data_fernet(data_dir)
            num_nodes = len(manifest["partitions"])
            _await_nodes(grid, num_nodes)
            return Federation(num_nodes, data_dir, manifest, fernet=fernet)
    if deployed:
        consortium = agree(grid, timeout=cfg.round_timeout)
        return Federation(len(consortium.node_ids), consortium=consortium)
    return Federation(_connected(grid))


def open_run_dir(cfg: RunConfig, resume: Resume) -> Path:
    """The run directory (``out-dir``, or a new one), with the config of a new run."""
    run_dir = Path(cfg.out_dir) if cfg.out_dir else default_run_dir("flwr")
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume.round_offset == 0:
        RunDir(run_dir).write_config(cfg)
    return run_dir


def run_rounds(
    grid: Grid,
    cfg: RunConfig,
    federation: Federation,
    run_dir: Path,
    resume: Resume,
    started: float,
    stop_requested: Callable[[], bool] | None = None,
    progress: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Start the strategy from the initial (or resumed) weights; the run log's result."""
    log.info(
        "fedmarket: %s on %d clients, %d rounds, dp=%s; writing %s",
        cfg.model,
        federation.num_nodes,
        cfg.num_server_rounds,
        cfg.dp,
        run_dir,
    )
    run = RunLog(
        cfg,
        run_dir,
        federation.data_dir,
        num_nodes=federation.num_nodes,
        round_offset=resume.round_offset,
        fernet=federation.fernet,
        stop_requested=stop_requested,
        progress=progress,
    )
    if federation.consortium is not None and federation.consortium.agreement is not None:
        run.n_train_total = federation.consortium.agreement.n_train_total  # the run's delta
    strategy = (
        deployment_strategy(cfg, federation.num_nodes, run)
        if federation.consortium is not None
        else build_strategy(cfg, num_nodes=federation.num_nodes, recorder=run)
    )
    weights = resume.weights or initial_weights(cfg, *federation.model_inputs(cfg.task))

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        metrics = run.evaluate_global(server_round, arrays)
        return MetricRecord(metrics) if metrics else None

    if resume.rng is not None:
        restore_global_rng(resume.rng)
    else:
        pin_flower_randomness(cfg.seed)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(weights),
        num_rounds=cfg.num_server_rounds - resume.round_offset,
        timeout=cfg.round_timeout,
        train_config=ConfigRecord(
            {"round-offset": resume.round_offset, **federation.shared_config}
        ),
        evaluate_config=ConfigRecord(federation.shared_config),
        evaluate_fn=evaluate_fn,
    )
    personal = None
    if cfg.personalisation != "none":
        partitions = (
            [int(p["id"]) for p in federation.manifest["partitions"]]
            if federation.manifest
            else None
        )
        personal = personalise(
            grid, cfg, result.arrays, run_dir, federation.shared_config, partitions
        )
    federated = run.finish(time.perf_counter() - started)
    if personal is not None:
        federated["personal"] = personal
        federated["epsilon"] = with_personal_epsilon(federated["epsilon"], run_dir)
        write_json(RunDir(run_dir).federated, federated)
    return federated


def initial_weights(
    cfg: RunConfig, n_features: int, data_options: dict[str, Any] | None = None
) -> dict:
    """The seeded initial global model, the same for every run with this seed;
    ``data_options``: what the data adds to the model (``recommend.data.model_inputs``)."""
    return build_model(
        cfg.model,
        n_features,
        task=cfg.task,
        seed=cfg.seed,
        **cfg.model_options(),
        **(data_options or {}),
    ).state_dict()


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
# How long to wait before asking again: short at first (a simulation registers its nodes
# while the ServerApp starts, milliseconds away), doubling to half a second (a deployment's
# SuperNodes come when they come; no need to ask them often).
NODES_POLL_FIRST_S = 0.01
NODES_POLL_MAX_S = 0.5


def _await_nodes(grid: Grid, needed: int, hint_after: float = NODES_HINT_AFTER_S) -> None:
    """Wait for one SuperNode per partition, telling the user how to fix a short federation.

    Flower's strategy would wait for them silently (a line per second); with `flwr run` the
    usual cause is a local federation left at flwr's default of 2 simulated SuperNodes. In a
    deployment, SuperNodes may legitimately come late, so this only warns and keeps waiting.
    """
    started = time.monotonic()
    hinted = False
    pause = NODES_POLL_FIRST_S
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
        time.sleep(pause)
        pause = min(2 * pause, NODES_POLL_MAX_S)


def _connected(grid: Grid) -> int:
    """Deployment without local data: wait briefly for nodes and use how many connected."""
    for _ in range(30):
        ids = list(grid.get_node_ids())
        if ids:
            return len(ids)
        time.sleep(1)
    return 1


app = make_server_app()
