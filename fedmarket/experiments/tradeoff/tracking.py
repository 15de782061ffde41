"""The sweep in MLflow: a parent run for the sweep (its table and plots as files) and a
child run per trained point, each with its settings, its tradeoff.csv numbers, its rounds
or epochs, and its run directory.

Logged from the records once the sweep is done, points done by an earlier call included,
so a resumed sweep's parent run holds every point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmarket.experiments.tradeoff.points import SweepConfig, sweep_runs
from fedmarket.experiments.tradeoff.sweep import SweepResult, read_record
from fedmarket.rundir import RunDir
from fedmarket.tracking import Tracker, log_run_dir, never_fails, run_tags

# What the parent run leaves to its children: the points' directories, and the quick data.
NOT_THE_SWEEPS_FILES = ("points", "data")


@never_fails
def track_sweep(
    tracker: Tracker, cfg: SweepConfig, result: SweepResult, *, name: str | None = None
) -> None:
    """Log the finished sweep; FAILED when a point failed (as the command's exit code)."""
    params = {
        **cfg.fixed(),
        "epsilons": ",".join(f"{e:g}" for e in cfg.epsilons),
        "seeds": ",".join(str(s) for s in cfg.seeds),
        "settings": ",".join(cfg.settings),
        "audit": cfg.audit,
        "quick": cfg.quick,
    }
    tags = run_tags("tradeoff", out=cfg.out.resolve(), failed=len(result.failed) or None)
    tracker.start(name or f"tradeoff-{cfg.out.name}", params, tags)
    for point in sweep_runs(cfg):
        record = read_record(cfg.out, point.key)
        if record is not None:
            _track_point(tracker, record)
    tracker.log_artifacts(
        cfg.out,
        skip=lambda p: p.parts[0] in NOT_THE_SWEEPS_FILES or p.name.endswith(".tmp"),
    )
    tracker.end("FAILED" if result.failed else "FINISHED")


def _track_point(tracker: Tracker, record: dict[str, Any]) -> None:
    run_dir = Path(record["run_dir"])
    files = RunDir(run_dir)
    settings = files.read_config().to_flower() if files.holds_run() else {}
    epsilon = record.get("target_epsilon")
    params = {
        **settings,
        "setting": record.get("setting"),
        "target-epsilon": "none" if epsilon is None else epsilon,
        "seed": record.get("seed"),
    }
    tags = run_tags("tradeoff", family=record.get("family"), run_dir=run_dir.resolve())
    tags["fedmarket.status"] = record["status"]
    if record.get("error"):
        tags["fedmarket.error"] = record["error"]
    tracker.start(record["key"], params, tags)
    tracker.log_metrics(
        {**(record.get("metrics") or {}), "point_wall_s": record.get("point_wall_s")}
    )
    if record["status"] == "ok" and run_dir.is_dir():
        log_run_dir(tracker, run_dir)
    tracker.end("FINISHED" if record["status"] == "ok" else "FAILED")
