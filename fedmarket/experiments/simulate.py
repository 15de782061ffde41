"""`fedmarket simulate`: the Flower simulation, then the matched centralised reference, then
the BG/NBD anchor (``fedmarket.anchors.in_run``).

Runs the same ServerApp and ClientApp as `flwr run .`, through Flower's ``run_simulation``
(Ray actors, one per client share of CPU/GPU). ``run_simulation`` hands the apps an empty
run config, so the validated ``RunConfig`` is closed over by the app factories instead; so
is the key of encrypted data, which must never be in a run config or the run directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.aggregation import check_setup
from fedmarket.checks import check_writable
from fedmarket.config import RunConfig, parse_overrides
from fedmarket.data import store
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.defaults import default_run_dir, ensure_default_data
from fedmarket.errors import ConfigError, FedmarketError, RunStopped
from fedmarket.experiments.ray_runtime import (
    ClientResources,
    StopRequest,
    ray_environment,
    stop_at_round_end,
)
from fedmarket.experiments.ray_session import (
    end_runtime,
    flower_backend,
    ray_session,
    start_runtime_warm,
)
from fedmarket.experiments.run_anchor import anchor_block
from fedmarket.names import PRODUCTS_TASK, RANKING_TASKS
from fedmarket.progress import log_file, progress_bar, quiet_flower
from fedmarket.rundir import RunDir
from fedmarket.threads import apply_threads, choose_threads

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class RunPlan:
    """What a simulate call will do: the settings, where, from which round, the data's key."""

    cfg: RunConfig
    run_dir: Path
    offset: int = 0
    weights: dict | None = None
    resumed: bool = False
    fernet: Fernet | None = field(default=None, repr=False)
    rng: dict | None = field(default=None, repr=False)  # Flower's generators at the commit


def simulate(
    *,
    data: Path | None,
    run_config: str | Mapping[str, Any] = "",
    out: Path | None = None,
    centralised: bool = True,
    resume: Path | None = None,
    resources: ClientResources | None = None,
    key_file: Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a simulation and its centralised reference; write the run directory.

    ``run_config``: ``--run-config`` text, or the overrides already parsed from it (the CLI
    parses and checks them before it imports this module). ``key_file`` (else
    $FEDMARKET_ENCRYPTION_KEY) opens encrypted prepared data. ``threads``: torch's threads
    in this process (the server's evaluation, the centralised reference), else chosen
    (`fedmarket.threads`); each client actor trains on ``resources``' CPUs.

    Returns ``{"run_dir", "summary", "problems"}``: ``problems`` lists what makes the run
    incomplete (a centralised reference that failed, rounds not aggregated), each also in
    summary.json and report.md; the results that exist are written all the same.
    """
    resources = resources or ClientResources()
    choose_threads(threads)  # a bad --threads or $FEDMARKET_THREADS: an error before anything
    plan = _resolve(data, run_config, out, resume, key_file)
    n_clients = preflight(plan.cfg)  # everything the run reads, before Ray and any write
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    files = RunDir(plan.run_dir)
    with log_file(files.log):
        log.debug("fedmarket simulate from round %d: %s; %s", plan.offset, plan.cfg, resources)
        return _simulate(plan, files, n_clients, centralised, resources, threads)


def _simulate(
    plan: RunPlan,
    files: RunDir,
    n_clients: int,
    centralised: bool,
    resources: ClientResources,
    threads: int | None = None,
) -> dict[str, Any]:
    if plan.resumed:  # the directory may have moved: its config now names where it is
        files.write_config(plan.cfg)
    federated: dict[str, Any] = {}
    if plan.cfg.num_server_rounds > plan.offset:
        _run_flower(plan, n_clients, federated, resources, threads)
    elif files.federated.exists():
        federated.update(json.loads(files.federated.read_text()))
    else:  # every round was committed, but the process ended before federated.json
        from fedmarket.federated.run_log import RunLog

        run = RunLog(
            plan.cfg,
            plan.run_dir,
            Path(plan.cfg.data_dir),
            num_nodes=n_clients,
            round_offset=plan.offset,
            fernet=plan.fernet,
        )
        federated.update(run.finish(0.0))
    if plan.cfg.task in RANKING_TASKS:  # a ranking has its own comparison and report
        from fedmarket.experiments.recommend_run import write_recommend_outputs

        summary = write_recommend_outputs(
            plan.cfg, plan.run_dir, federated, centralised=centralised, fernet=plan.fernet
        )
        return {"run_dir": plan.run_dir, "summary": summary, "problems": summary["problems"]}
    cen, cen_error = _centralised(plan, files, threads) if centralised else (None, None)
    local_only = _local_only(plan, files, threads, centralised)
    anchor = anchor_block(plan.cfg, plan.run_dir, federated, plan.fernet)
    from fedmarket.reporting import write_run_outputs  # matplotlib: after the rounds

    paths = write_run_outputs(
        plan.run_dir,
        plan.cfg,
        federated,
        cen,
        centralised_error=cen_error,
        anchor=anchor,
        local_only=local_only,
    )
    summary = json.loads(paths["summary"].read_text())
    return {"run_dir": plan.run_dir, "summary": summary, "problems": summary["problems"]}


def preflight(cfg: RunConfig) -> int:
    """Check what the run will read against its settings; the number of clients.

    The manifest against the arrays (partitions, customer counts, feature count, whole
    files) and the settings against the number of retailers (min-train-replies, Krum's
    minimum, central DP's rules): each a clear error before Ray starts (30-50 s).
    """
    data_dir = Path(cfg.data_dir)
    manifest = store.read_manifest(data_dir)
    store.verify_prepared(data_dir, manifest)
    if cfg.task in RANKING_TASKS:
        from fedmarket.recommend.data import check_prepared

        check_prepared(data_dir, manifest)
    if cfg.task == PRODUCTS_TASK:
        from fedmarket.recommend.products import check_prepared_products

        check_prepared_products(data_dir, manifest)
    n_clients = len(manifest["partitions"])
    check_setup(cfg, n_clients, warn=False)  # the strategy warns once, when it is built
    return n_clients


def _resolve(
    data: Path | None,
    run_config: str | Mapping[str, Any],
    out: Path | None,
    resume: Path | None,
    key_file: Path | None,
) -> RunPlan:
    if resume is not None:
        return _resume_plan(resume, run_config, key_file)
    overrides = parse_overrides(run_config) if isinstance(run_config, str) else dict(run_config)
    for key in ("data-dir", "out-dir", "state-dir"):
        if key in overrides:
            raise ConfigError(
                f"--run-config: {key} is set by fedmarket simulate; use --data / --out"
            )
    run_dir = (out or default_run_dir("simulate")).resolve()
    check_writable(run_dir, "--out")
    if RunDir(run_dir).holds_run():
        raise ConfigError(
            f"--out {run_dir} already holds a run; resume it with --resume or pick another"
        )
    RunConfig.from_mapping(overrides)  # a bad setting is an error before any data is made
    data_dir = ensure_default_data(_stage_bar, log=log.info) if data is None else data.resolve()
    fernet = prepared_data_fernet(data_dir, key_file, outside=[run_dir])
    cfg = RunConfig.from_mapping(
        {
            **overrides,
            "data-dir": str(data_dir),
            "out-dir": str(run_dir),
            "state-dir": str(RunDir(run_dir).client_state),
        }
    )
    return RunPlan(cfg, run_dir, fernet=fernet)


def _resume_plan(
    resume: Path, run_config: str | Mapping[str, Any], key_file: Path | None
) -> RunPlan:
    """Continue ``resume`` in place, whatever paths its config.json was written with.

    A state-dir that was the run directory's own ``client_state`` moves with it; one that
    was set elsewhere (a retailer's own path) is kept.
    """
    if run_config:
        raise ConfigError("--resume continues with the run's own config; drop --run-config")
    run_dir = resume.resolve()
    files = RunDir(run_dir)
    try:
        cfg = files.read_config()
    except ConfigError as exc:
        raise ConfigError(f"--resume {resume}: {exc}") from None
    check_writable(run_dir, "--resume")
    moved = {"out-dir": str(run_dir)}
    if Path(cfg.state_dir) == RunDir(Path(cfg.out_dir)).client_state:
        moved["state-dir"] = str(files.client_state)
    cfg = cfg.replace(**moved)
    fernet = prepared_data_fernet(Path(cfg.data_dir), key_file, outside=[run_dir])
    checkpoint = files.latest_checkpoint()
    offset, weights = checkpoint if checkpoint is not None else (0, None)
    rng = (files.read_marker() or {}).get("rng")
    log.info("resuming %s after round %d of %d", run_dir, offset, cfg.num_server_rounds)
    return RunPlan(cfg, run_dir, offset, weights, resumed=True, fernet=fernet, rng=rng)


def _stage_bar(description: str, total: int | None, unit: str) -> Any:
    """A progress bar for one stage of the first run's default data (the line before it says
    it happens once per machine; the bar keeps its width for the count and the times)."""
    return progress_bar(description, total, unit=unit)


def _centralised(
    plan: RunPlan, files: RunDir, threads: int | None = None
) -> tuple[Any, str | None]:
    """The matched reference, or why it failed: its failure never loses the federated result.

    Under DP on a large pooled set it is the longest stage of a run (half an hour on a
    laptop CPU), so it has a bar over its epochs and a line per epoch. Its threads are
    chosen when it starts (the client actors' load is gone by then).
    """
    from fedmarket.centralised import run_matched_reference

    data_dir = Path(plan.cfg.data_dir)
    try:
        with progress_bar("centralised reference", plan.cfg.total_epochs, unit="epochs") as advance:
            reference = run_matched_reference(
                plan.cfg,
                data_dir,
                files.centralised,
                fernet=plan.fernet,
                progress=lambda n=1, **_: advance(n),  # the bar keeps its name
                threads=threads,
            )
        return reference, None
    except FedmarketError as exc:
        log.error("centralised reference failed: %s", exc)
        return None, str(exc)
    except Exception as exc:  # a bug: keep its traceback in the log, and the federated result
        log.exception("centralised reference failed")
        return None, f"{type(exc).__name__}: {exc}"


def _local_only(plan: RunPlan, files: RunDir, threads: int | None, references: bool) -> str:
    """Each retailer's local-only model (``fedmarket.value.local_only``), after the
    centralised reference, written to RUN/local; what the report says of it: "trained",
    "off: why" or "failed: why" (a failure never loses the federated result). Off with
    ``local-only-models = false``, and with ``--no-centralised`` (the trade-off sweep and the bench
    train no reference of either kind)."""
    if not plan.cfg.local_only_models:
        return "off: the run setting local-only-models = false"
    if not references:
        return "off: --no-centralised trains neither reference"
    from fedmarket.value.local_only import run_local_only

    n = len(store.read_manifest(Path(plan.cfg.data_dir))["partitions"])
    try:
        total = plan.cfg.total_epochs * n
        with progress_bar("local-only models", total, unit="epochs") as advance:
            run_local_only(
                plan.cfg,
                Path(plan.cfg.data_dir),
                files.local_only,
                fernet=plan.fernet,
                progress=lambda n=1, **_: advance(n),
                threads=threads,
            )
        return "trained"
    except FedmarketError as exc:
        log.error("local-only models failed: %s", exc)
        return f"failed: {exc}"
    except Exception as exc:  # a bug: its traceback in the log, the federated result kept
        log.exception("local-only models failed")
        return f"failed: {type(exc).__name__}: {exc}"


def _run_flower(
    plan: RunPlan,
    n_clients: int,
    federated: dict[str, Any],
    resources: ClientResources,
    threads: int | None = None,
) -> None:
    """The rounds, on the session's Ray runtime (a run on its own is a session of one): Ray
    and the client actors start while torch, Flower and the apps load in a background
    thread; torch's threads are set once both are done, before anything computes."""
    ray_environment()
    with ray_session():
        finished = False
        try:
            start_runtime_warm(resources, meanwhile=_import_flower_apps)
            apply_threads(threads)  # the server's evaluation runs in this process
            _flower_rounds(plan, n_clients, federated, resources)
            finished = True
        finally:  # the session keeps Ray for its next run, unless this one ended abnormally
            if not finished:
                end_runtime()
    if not federated:
        raise ConfigError("the Flower simulation ended without a result; see the log above")


def _import_flower_apps() -> None:
    """What the rounds import (torch, Flower, the apps: seconds), loaded while Ray starts;
    and what the server's evaluation of the initial model, before round 1, loads on its
    first call (scikit-learn's metrics, scipy.stats)."""
    import flwr.simulation  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import torch  # noqa: F401

    import clients.app  # noqa: F401
    import server.app  # noqa: F401


def _flower_rounds(
    plan: RunPlan,
    n_clients: int,
    federated: dict[str, Any],
    resources: ClientResources,
) -> None:
    from flwr.simulation import run_simulation

    from clients.app import make_client_app
    from server.app import make_server_app

    quiet_flower()
    stop = StopRequest()
    rounds = plan.cfg.num_server_rounds
    with progress_bar("federated rounds", rounds, unit="rounds", completed=plan.offset) as bar:
        server = make_server_app(
            plan.cfg,
            round_offset=plan.offset,
            initial_weights=plan.weights,
            initial_rng=plan.rng,
            on_done=federated.update,
            fernet=plan.fernet,
            stop_requested=stop.is_set,
            progress=bar,
        )
        try:
            with stop_at_round_end(stop), flower_backend():
                run_simulation(
                    server_app=server,
                    # the key travels in the pickled closure, to local actors and a joined cluster
                    client_app=make_client_app(plan.cfg, fernet=plan.fernet),
                    num_supernodes=n_clients,
                    backend_config=resources.backend_config(),
                )
        except RunStopped as stopped:
            raise RunStopped(stopped.run_dir, stopped.committed, stop.signum) from None
        except KeyboardInterrupt:  # the second signal: now, at the last commit
            if not stop.is_set():
                raise
            end_runtime()  # first: the actors end, and the round in flight with them
            marker = RunDir(plan.run_dir).read_marker() or {}
            committed = int(marker.get("round", plan.offset))
            raise RunStopped(plan.run_dir, committed, stop.signum) from None
