"""The bench's stages for issue #20's other goals, each skippable (``--skip NAME``).

Each takes the bench's configuration and its workload directory and returns what goes in
``bench.json`` under its name; ``ratios`` reads the figure each goal judges from there. The
sizes follow the mode: ``--quick`` keeps each stage to seconds, the full bench measures on
the shapes BENCHMARKS.md reports (a 12-point sweep, the synthetic retailers' prepare).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedmarket.experiments.bench.compare import compare as compare_runs
from fedmarket.experiments.bench.compare import pfl_missing, settings_of
from fedmarket.experiments.bench.config import BenchConfig
from fedmarket.experiments.bench.contention import training_paths
from fedmarket.experiments.bench.fresh import load_average
from fedmarket.experiments.bench.overhead import overhead_per_client
from fedmarket.experiments.bench.prepare_ratio import ensure_raw, prepare_against_read
from fedmarket.experiments.bench.startup import measure_startup
from fedmarket.experiments.bench.sweep import FOUR_POINTS, TWELVE_POINTS, measure_sweep


def startup(cfg: BenchConfig, data: Path) -> dict[str, Any]:
    return {**measure_startup(data, cfg.out / "startup"), "load": load_average()}


def sweep(cfg: BenchConfig, data: Path) -> dict[str, Any]:
    options = FOUR_POINTS if cfg.quick else TWELVE_POINTS
    got = measure_sweep(data, cfg.out / "sweep", options)
    return {**got, "options": list(options), "load": load_average()}


def contention(cfg: BenchConfig, data: Path) -> dict[str, Any]:
    partitions = 0 if cfg.quick else min(cfg.clients, 2)  # about 16,000 customers
    got = training_paths(data, model=cfg.model, epochs=1, partitions=partitions)
    return {**got, "load": load_average()}


def prepare(cfg: BenchConfig, data: Path) -> dict[str, Any]:
    shape = (
        {"retailers": 2, "customers": 500, "days": 60}
        if cfg.quick
        else {"retailers": 4, "customers": 2000, "days": 120}
    )
    raw = ensure_raw(cfg.out / "raw", seed=cfg.seed, **shape)
    got = prepare_against_read(raw, cfg.out / "prepare-out" / "prepared", 1 if cfg.quick else 3)
    return {**got, "raw": shape, "load": load_average()}


def overhead(cfg: BenchConfig, data: Path) -> dict[str, Any]:
    got = overhead_per_client(cfg, cfg.out / "overhead", 8 if cfg.quick else 16)
    return {**got, "load": load_average()}


PFL_SKIPPED = "skipped: install fedmarket[compare]"


def _compare(cfg: BenchConfig, data: Path, other: str) -> dict[str, Any]:
    """fedmarket against ``other`` on the bench's workload: the bench's rounds, batch size
    and seed, one epoch a round, alternated once (--quick) or three times."""
    settings = settings_of(rounds=cfg.rounds, batch_size=cfg.batch_size, seed=cfg.seed)
    return compare_runs(data, cfg.out / f"compare-{other}", other, 1 if cfg.quick else 3, settings)


def quickstart(cfg: BenchConfig, data: Path) -> dict[str, Any]:
    return _compare(cfg, data, "quickstart")


def pfl(cfg: BenchConfig, data: Path) -> dict[str, Any]:
    """Only where this interpreter has pfl-research (the optional extra ``compare``)."""
    if pfl_missing() is not None:
        return {"skipped": PFL_SKIPPED}
    return _compare(cfg, data, "pfl")


GOAL_STAGES: dict[str, Callable[[BenchConfig, Path], dict[str, Any]]] = {
    "startup": startup,
    "sweep": sweep,
    "contention": contention,
    "prepare": prepare,
    "overhead": overhead,
    "quickstart": quickstart,
    "pfl": pfl,
}


def goal_ratios(report: dict[str, Any]) -> dict[str, float]:
    """The figure each of these stages' goals judges, for the stages that ran."""
    out: dict[str, float] = {}
    if "startup" in report:
        out["startup_s"] = report["startup"]["startup_s"]
    if "sweep" in report:
        out["sweep_wall_over_training"] = report["sweep"]["wall_over_training"]
    if "contention" in report:
        out["contended_over_idle"] = report["contention"]["worst_contended_over_idle"]
    if "prepare" in report:
        out["prepare_over_raw_read"] = report["prepare"]["over_raw_read"]["prepare"]
    if "overhead" in report:
        out["overhead_per_client_round_ms"] = report["overhead"]["per_client_round_ms"]
    for other in ("quickstart", "pfl"):
        ratio = report.get(other, {}).get("ratios", {}).get(other)
        if ratio is not None:
            out[f"fedmarket_over_{other}_wall"] = ratio["wall_s"]
            out[f"fedmarket_over_{other}_round"] = ratio["round_s"]
    return out


def goal_notes(report: dict[str, Any]) -> dict[str, str]:
    """What to show for a goal whose stage ran but could not measure it (pfl not installed)."""
    if "skipped" in report.get("pfl", {}):
        note = report["pfl"]["skipped"]
        return {"fedmarket_over_pfl_wall": note, "fedmarket_over_pfl_round": note}
    return {}
