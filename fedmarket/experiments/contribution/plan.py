"""What a valuation will do, checked before anything trains: the run, the method, the
coalitions still to train and the time they should take."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.config import RunConfig
from fedmarket.contribution.records import read_records, values_known
from fedmarket.contribution.values import Coalition, runs_needed
from fedmarket.data import store
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.errors import ConfigError
from fedmarket.names import did_you_mean
from fedmarket.rundir import RunDir

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

METHODS = ("loo", "shapley")


@dataclass(frozen=True)
class ContributionConfig:
    """The options of `fedmarket contribution`."""

    run_dir: Path
    method: str = "loo"
    permutations: int = 20  # Shapley: Monte-Carlo permutations
    tolerance: float = 0.01  # Shapley: truncation, a fraction of the grand value
    seed: int = 0  # Shapley: the permutations' generator
    max_runs: int | None = None  # at most this many coalition runs in this call
    rounds: int | None = None  # override of the run's rounds for each coalition run
    key_file: Path | None = None
    threads: int | None = None


@dataclass(frozen=True)
class Plan:
    cfg: ContributionConfig
    run: RunConfig  # the valued run's settings
    players: tuple[int, ...]  # partition ids
    names: dict[int, str]  # partition id -> retailer (or "partition i")
    known: dict[Coalition, float]  # coalitions valued by an earlier call
    needed: int  # coalition runs still to do (Shapley: an upper bound)
    rounds: int  # rounds of each coalition run
    seconds_per_run: float | None  # from the run's own wall time per round
    federated: dict[str, Any] = field(repr=False)  # the run's federated.json
    fernet: Fernet | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return Path(self.run.data_dir)

    @property
    def estimate_s(self) -> float | None:
        return None if self.seconds_per_run is None else self.needed * self.seconds_per_run


def make_plan(cfg: ContributionConfig) -> Plan:
    """Every check a valuation needs, before Ray and before any write."""
    _check_options(cfg)
    cfg = replace(cfg, run_dir=Path(cfg.run_dir).resolve())  # records name absolute paths
    files = RunDir(cfg.run_dir)
    run = files.read_config()
    if not files.federated.is_file() or files.read_marker() is None:
        raise ConfigError(
            f"{files.path}: the run has not finished (no federated.json or committed round); "
            f"finish it first: `fedmarket simulate --resume {files.path}`"
        )
    federated = json.loads(files.federated.read_text())
    data_dir = Path(run.data_dir)
    manifest = store.read_manifest(data_dir)
    fernet = prepared_data_fernet(data_dir, cfg.key_file, outside=[files.path])
    players = tuple(store.partition_ids(manifest))
    if len(players) < 2:
        raise ConfigError(
            f"{files.path}: the run has {len(players)} retailer; a contribution compares "
            "retailers, so it needs a run of at least 2"
        )
    rounds = cfg.rounds or run.num_server_rounds
    _check_recorded_rounds(files, rounds)
    known = values_known(read_records(files.contribution_records))
    needed = runs_needed(players, cfg.method, set(known), cfg.permutations, cfg.seed)
    names = {
        int(p["id"]): str(p.get("retailer") or f"partition {p['id']}")
        for p in manifest["partitions"]
    }
    per_round = _seconds_per_round(federated)
    per_run = None if per_round is None else per_round * rounds
    return Plan(cfg, run, players, names, known, needed, rounds, per_run, federated, fernet)


def _check_options(cfg: ContributionConfig) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(
            f"--method {cfg.method!r}: {did_you_mean(cfg.method, METHODS)}choose one of "
            f"{', '.join(METHODS)}"
        )
    if cfg.permutations < 1:
        raise ConfigError(f"--permutations {cfg.permutations}: need at least 1 permutation")
    if not (math.isfinite(cfg.tolerance) and 0 <= cfg.tolerance < 1):
        raise ConfigError(f"--tolerance {cfg.tolerance}: a fraction in [0, 1)")
    if cfg.max_runs is not None and cfg.max_runs < 0:
        raise ConfigError(f"--max-runs {cfg.max_runs}: a number of runs, 0 or more")
    if cfg.rounds is not None and cfg.rounds < 1:
        raise ConfigError(f"--rounds {cfg.rounds}: at least 1 round")


def coalition_settings(rounds: int) -> dict[str, Any]:
    """What makes recorded coalition values comparable: the rounds they trained."""
    return {"rounds": rounds}


def _check_recorded_rounds(files: RunDir, rounds: int) -> None:
    path = files.contribution_settings
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text())
    except json.JSONDecodeError:
        return  # a torn file: written again before the first run
    if before != coalition_settings(rounds):
        raise ConfigError(
            f"{files.contribution} holds coalitions trained with {before.get('rounds')} rounds, "
            f"this call would train {rounds}: their values are not comparable. Give "
            f"--rounds {before.get('rounds')}, or move {files.contribution} away to start over"
        )


def _seconds_per_round(federated: dict[str, Any]) -> float | None:
    wall, rounds = federated.get("wall_s"), federated.get("rounds")
    if not wall or not rounds:
        return None
    return float(wall) / float(rounds)
