"""What each command logs: read from what it wrote, after it wrote it.

A simulation is logged once its run directory is complete (rounds.csv row by row with
step = round, then summary.json), not round by round from inside Flower: the run
directory is the record that is committed atomically and resumed, Ray actors and the
ServerApp stay free of a tracking client, and a resumed run logs its whole history again,
as one MLflow run, rather than the rounds since the restart.

Metric names are those of the file a value comes from: rounds.csv's columns per round
(``test_roc_auc``, ``train_loss``, ``epsilon_max``), the training history's per epoch,
summary.json's sections for a simulation (``federated.roc_auc``, ``centralised.roc_auc``,
``gap.roc_auc``), ``test.<metric>`` for one trained model, baselines.csv's and
tradeoff.csv's columns. Parameters are run settings with their kebab-case keys.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

from fedmarket.rundir import CENTRALISED_METRICS, PER_CUSTOMER_FILES, RunDir
from fedmarket.tracking.trackers import SkipFile, Tracker

if TYPE_CHECKING:
    from fedmarket.baselines import ResultRow

log = logging.getLogger("fedmarket")
P = ParamSpec("P")


def never_fails(log_fn: Callable[P, None]) -> Callable[P, None]:
    """Run a ``log_*`` function only when tracking is on, and make any error in it (a
    damaged file it reads, say) a warning: the command's result and exit code stand."""

    @functools.wraps(log_fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        tracker = args[0]
        if not getattr(tracker, "active", True):
            return
        try:
            log_fn(*args, **kwargs)
        except Exception as exc:
            abandon = getattr(tracker, "abandon", None)
            if abandon is None:
                log.warning("MLflow tracking failed (%s: %s)", type(exc).__name__, exc)
            else:
                abandon(f"reading what to log ({log_fn.__name__})", exc)

    return wrapper


# Final numbers of one trained model, besides its test metrics and its history.
MODEL_NUMBERS = (
    "epsilon",
    "delta",
    "noise_multiplier",
    "wall_s",
    "epochs_run",
    "best_epoch",
    "n_train",
    "n_test",
)


def run_tags(command: str, **tags: Any) -> dict[str, str]:
    """Tags every fedmarket run carries, for filtering in the MLflow UI."""
    from fedmarket import __version__

    base = {"fedmarket.version": __version__, "fedmarket.command": command}
    return {**base, **{f"fedmarket.{k}": str(v) for k, v in tags.items() if v is not None}}


@never_fails
def log_simulation(
    tracker: Tracker, run_dir: Path, summary: Mapping[str, Any], *, name: str | None = None
) -> None:
    """One MLflow run for a `fedmarket simulate` run directory; FAILED if it is incomplete
    (its problems are a tag), as the command's exit code 1 says."""
    cfg, problems = summary["config"], list(summary.get("problems") or [])
    tags = run_tags(
        "simulate",
        dp=cfg.get("dp"),
        model=cfg.get("model"),
        task=cfg.get("task"),
        strategy=cfg.get("strategy"),
        run_dir=Path(run_dir).resolve(),
        status="incomplete" if problems else "complete",
        problems="; ".join(problems) or None,
        privacy=summary.get("privacy"),
    )
    tracker.start(name or Path(run_dir).name, cfg, tags)
    log_rounds(tracker, run_dir)
    tracker.log_metrics(simulation_metrics(summary))
    tracker.log_artifacts(Path(run_dir), skip=run_dir_skip(run_dir))
    tracker.end("FAILED" if problems else "FINISHED")


def log_rounds(tracker: Tracker, run_dir: Path) -> None:
    """rounds.csv, a step per round (every column but ``round``)."""
    for row in RunDir(run_dir).read_rounds():
        if row.get("round") is not None:
            values = {k: v for k, v in row.items() if k != "round"}
            tracker.log_metrics(values, step=int(row["round"]))


def simulation_metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    """summary.json's final numbers: each model's test metrics (the BG/NBD anchor's too),
    the gap, epsilon (the maximum and per client), delta and wall times."""
    fed = summary.get("federated") or {}
    cen = summary.get("centralised") or {}
    eps = fed.get("epsilon") or {}
    out: dict[str, Any] = {
        "federated": {
            **(fed.get("test") or {}),
            "epsilon_max": eps.get("max"),
            "epsilon": {f"client-{k}": v for k, v in (eps.get("per_client") or {}).items()},
            "wall_s": fed.get("wall_s"),
            "rounds": fed.get("rounds"),
        },
        "centralised": {
            **(cen.get("test") or {}),
            **{k: cen.get(k) for k in ("epsilon", "delta", "noise_multiplier", "wall_s")},
            "epochs": cen.get("epochs"),
        },
        "gap": summary.get("gap") or {},
        "delta": summary.get("delta"),
    }
    anchor = summary.get("anchor") or {}
    if anchor.get("test"):  # the BG/NBD anchor, fitted across the retailers
        out["anchor"] = {**anchor["test"], "fit_s": anchor.get("fit_s")}
    return out


def not_for_a_tracking_server(relative: Path) -> bool:
    """Files in flight (``*.tmp``), and a prediction per test customer (``test_scores.csv``,
    ``baselines_test_scores.csv``): a tracking server is often shared beyond whoever may see
    customer-level rows, and the figures and metrics logged beside them already carry what
    the scores show."""
    return relative.name.endswith(".tmp") or relative.name in PER_CUSTOMER_FILES


def run_dir_skip(run_dir: Path) -> SkipFile:
    """Every file of a run directory but the checkpoints before the last committed one (a
    model each; the last is the final model), per-customer scores and files in flight."""
    files = RunDir(run_dir)
    marker = files.read_marker() if files.latest_marker.exists() else None
    keep = (marker or {}).get("path")
    checkpoints = files.checkpoints.relative_to(files.path)

    def skip(relative: Path) -> bool:
        if not_for_a_tracking_server(relative):
            return True
        return relative.parent == checkpoints and relative.suffix == ".pt" and relative.name != keep

    return skip


@never_fails
def log_centralised(
    tracker: Tracker,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    out: Path | None = None,
    name: str | None = None,
    command: str = "centralised",
) -> None:
    """One MLflow run for a centralised model: ``metrics`` is metrics.json's content
    (``CentralisedResult.to_dict()``), its history a step per epoch."""
    tags = run_tags(
        command,
        model=metrics.get("model"),
        task=metrics.get("task"),
        dp="client" if metrics.get("epsilon") is not None else "none",
        out=Path(out).resolve() if out is not None else None,
    )
    tracker.start(name or f"{command}-{metrics.get('model')}", params, tags)
    log_model_numbers(tracker, metrics)
    if out is not None:
        tracker.log_artifacts(Path(out), skip=not_for_a_tracking_server)
    tracker.end("FINISHED")


def log_model_numbers(tracker: Tracker, metrics: Mapping[str, Any]) -> None:
    for row in metrics.get("history") or []:
        if row.get("epoch") is not None:
            values = {k: v for k, v in row.items() if k != "epoch"}
            tracker.log_metrics(values, step=int(row["epoch"]))
    tracker.log_metrics(
        {"test": metrics.get("test") or {}, **{k: metrics.get(k) for k in MODEL_NUMBERS}}
    )


@never_fails
def log_baselines(
    tracker: Tracker,
    rows: Sequence[ResultRow],
    params: Mapping[str, Any],
    *,
    out: Path | None = None,
    name: str | None = None,
) -> None:
    """A parent run for the comparison (its files: baselines.csv and .json) and a child run
    per model, so the MLflow UI compares the models as rows of one table."""
    task = params.get("task")
    tracker.start(name or f"baselines-{task}", params, run_tags("baselines", task=task))
    for row in rows:
        tags = run_tags("baselines", task=task, family=row.family, notes=row.notes or None)
        tracker.start(row.model, {**params, "model": row.model, "family": row.family}, tags)
        tracker.log_metrics({**row.metrics, "fit_seconds": row.fit_seconds})
        tracker.end("FINISHED")
    if out is not None:
        tracker.log_artifacts(Path(out), skip=not_for_a_tracking_server)
    tracker.end("FINISHED")


def log_run_dir(tracker: Tracker, run_dir: Path) -> None:
    """What a run directory holds, into the open run: its rounds (a federated run) or its
    centralised model's history, and its files (a point of the trade-off sweep)."""
    files = RunDir(run_dir)
    if files.rounds.exists():
        log_rounds(tracker, run_dir)
    if files.summary.exists():
        tracker.log_metrics(simulation_metrics(json.loads(files.summary.read_text())))
    elif (files.centralised / CENTRALISED_METRICS).exists():
        log_model_numbers(tracker, json.loads(files.centralised_metrics.read_text()))
    tracker.log_artifacts(files.path, skip=run_dir_skip(run_dir))
