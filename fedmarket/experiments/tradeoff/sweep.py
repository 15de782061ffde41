"""Running a sweep: one record per point, so it resumes and survives a failed point."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedmarket.errors import ConfigError
from fedmarket.experiments.ray_session import ray_session
from fedmarket.experiments.tradeoff.points import (
    Point,
    PointRunner,
    SweepConfig,
    sweep_points,
    sweep_runs,
)
from fedmarket.experiments.tradeoff.report import write_outputs
from fedmarket.experiments.tradeoff.runners import make_runner, resolve_sweep_data

log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class SweepResult:
    rows: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: int
    paths: dict[str, Path] = field(default_factory=dict)


def run_sweep(
    cfg: SweepConfig,
    *,
    runner: PointRunner | None = None,
    advance: Callable[..., None] | None = None,
) -> SweepResult:
    """Run every point without a finished record, then rebuild the outputs from the records.

    ``runner(point, run_dir) -> metrics`` trains one point (default: ``make_runner``);
    ``advance(n, description=)`` is told about each point, done or skipped.
    """
    advance = advance or (lambda n=1, description=None: None)
    cfg.out.mkdir(parents=True, exist_ok=True)
    _check_sweep_file(cfg)
    points, runs = sweep_points(cfg), sweep_runs(cfg)
    if runner is None:
        runner = make_runner(cfg, resolve_sweep_data(cfg))
    skipped = 0
    with ray_session():  # one Ray runtime and its actors for every federated point
        for point in runs:
            record = read_record(cfg.out, point.key)
            if record is not None and record["status"] == "ok":
                skipped += 1
                advance(1, description=f"{point.key} (done before)")
                continue
            advance(0, description=point.key)
            record = run_point(point, runner, cfg.out)
            if record["status"] != "ok":
                log.warning("point %s failed: %s", point.key, record["error"])
            advance(1, description=point.key)
    records = {p.key: read_record(cfg.out, p.key) for p in runs}
    rows = [_row(p, records[p.key]) for p in points]
    failed = [r for r in records.values() if r is not None and r["status"] != "ok"]
    return SweepResult(rows, failed, skipped, write_outputs(cfg.out, rows))


def run_point(point: Point, runner: PointRunner, out: Path) -> dict[str, Any]:
    """Run one point in a clean directory and record the outcome, failure included."""
    run_dir = out / "points" / point.key
    if run_dir.exists():  # what a failed or interrupted try left behind
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "key": point.key,
        "setting": point.setting if point.epsilon is not None else f"{point.family}-nodp",
        "family": point.family,
        "target_epsilon": point.epsilon,
        "seed": point.seed,
        "run_dir": str(run_dir),
    }
    try:
        record.update(status="ok", metrics=runner(point, run_dir))
    except Exception as exc:  # one failed point must not cost the others; its record says why
        record.update(
            status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    record.update(
        point_wall_s=time.perf_counter() - started,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_record(out, record)
    return record


def record_path(out: Path, key: str) -> Path:
    return out / "records" / f"{key}.json"


def read_record(out: Path, key: str) -> dict[str, Any] | None:
    """The point's record, or None when it never finished (a torn file counts as none)."""
    path = record_path(out, key)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "status" in record else None


def write_record(out: Path, record: dict[str, Any]) -> Path:
    """Atomically: a crash while writing leaves the old record or none, never half of one."""
    path = record_path(out, record["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_finite(record), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _row(point: Point, record: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "setting": point.setting,
        "target_epsilon": math.inf if point.epsilon is None else point.epsilon,
        "seed": point.seed,
        "run": point.key,
        "status": "missing" if record is None else record["status"],
    }
    if record is not None:
        row.update(record.get("metrics") or {})
        row["point_wall_s"] = record.get("point_wall_s")
        row["error"] = record.get("error")
    return row


def _check_sweep_file(cfg: SweepConfig) -> None:
    path = cfg.out / "sweep.json"
    fixed = cfg.fixed()
    if path.is_file():
        before = json.loads(path.read_text())
        differ = sorted(k for k in fixed if before.get(k) != fixed[k])
        if differ:
            shown = ", ".join(f"{k}: {before.get(k)!r} then, {fixed[k]!r} now" for k in differ)
            raise ConfigError(
                f"{cfg.out} holds a sweep with other settings ({shown}); its points "
                "would not be comparable. Use another --out or the same settings"
            )
    path.write_text(json.dumps(fixed, indent=2) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
