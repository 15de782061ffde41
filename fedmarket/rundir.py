"""The run directory: the one module that names its files, and the readers of them.

A run directory is the contract between whoever trains (``fedmarket simulate``, ``flwr run``,
a trade-off point, a deployment) and whoever reads the result (the report, the audit, a
resume, a later scoring run)::

    RUN/config.json                  the RunConfig, kebab-case (``RunConfig.to_flower``)
    RUN/rounds.csv                   one row per finished round
    RUN/checkpoints/round-NNNN.pt    {"round", "state_dict"} of the global model
    RUN/checkpoints/latest.json      the commit point: {"round", "path", "model_round",
                                     "epsilon_by_client", "participation", "skipped",
                                     "wall_s", "final_test", "rng"}
    RUN/federated.json               the federated result (``RunLog.finish``)
    RUN/test_scores.csv              the last evaluated global model's prediction for each
                                     pooled test customer (simulation): task, model,
                                     partition, customer pseudonym, label, score
                                     (``fedmarket.predictions``), for the gains and lift
                                     figure and `fedmarket compare`
    RUN/client_state/client-<i>/accountant.json   a client's privacy history (simulation)
    RUN/centralised/metrics.json, model.pt, test_scores.csv, *.png   the centralised reference
                                     (the same layout as `fedmarket centralised --out DIR`)
    DIR/baselines.csv, .json, baselines_test_scores.csv   `fedmarket baselines --out DIR`:
                                     the predictions of every model in one long file
    RUN/local/metrics.json, test_scores.csv   the local-only models (``fedmarket.value``):
                                     each retailer's model trained on its own data alone,
                                     and its prediction for each of its test customers
    RUN/personal/metrics.json, test_scores.csv   the personalised models (``personalisation``,
                                     ``fedmarket.value.personal``): each retailer's metrics
                                     and, in simulation, its prediction for each of its test
                                     customers (gathered from the clients' state-dir)
    RUN/anchor/test_scores.csv       the BG/NBD anchor's prediction for each pooled test
                                     customer (``fedmarket.anchors.in_run``), same columns
    RUN/summary.json, report.md, report.html, *.png   the comparison a person reads
    RUN/audit.json                   the membership-inference audit
    RUN/contribution/coalitions.jsonl   `fedmarket contribution`: one line per trained
                                     coalition (members, value, wall_s, epsilon per client)
    RUN/contribution/contribution.json, .md, .png   each retailer's value, its standard
                                     error and the privacy the valuation spent
    RUN/contribution/views/<key>/, runs/<key>/   each coalition's data view and run directory
    RUN/contribution/settings.json   the rounds every recorded coalition trained (one per dir)
    RUN/log.txt                      the run's whole log at DEBUG: fedmarket's, Flower's, and
                                     the Python warnings kept off the terminal (appended on resume)

Like ``fedmarket.data.store`` for prepared data, nothing else spells these names.

Durability: every file is written to a temporary name and renamed into place, and a round
is committed by ``latest.json`` last (after its checkpoint and ``rounds.csv``), so a crash at
any instant leaves a directory at round k or k+1, never between: rows and checkpoints past
the marker are work in flight, dropped or overwritten on resume.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedmarket.errors import ConfigError

# The centralised reference's own directory (RUN/centralised, or `fedmarket centralised --out`).
CENTRALISED_METRICS = "metrics.json"
CENTRALISED_MODEL = "model.pt"
# The local-only models' directory (RUN/local): what each retailer's training did
LOCAL_ONLY_METRICS = "metrics.json"
# Post-hoc probability calibration fitted on validation customers (fedmarket.calibration)
CALIBRATION = "calibration.json"
# Per-customer test predictions (fedmarket.predictions): in RUN and in RUN/centralised, one
# model's; in a baselines directory, every model's. Never logged to a tracking server.
TEST_SCORES = "test_scores.csv"
BASELINE_SCORES = "baselines_test_scores.csv"
PER_CUSTOMER_FILES = frozenset({TEST_SCORES, BASELINE_SCORES})

if TYPE_CHECKING:
    import torch

    from fedmarket.config import RunConfig


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (nothing is created by naming them)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def rounds(self) -> Path:
        return self.path / "rounds.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def latest_marker(self) -> Path:
        return self.checkpoints / "latest.json"

    def checkpoint(self, rnd: int) -> Path:
        return self.checkpoints / f"round-{rnd:04d}.pt"

    @property
    def federated(self) -> Path:
        return self.path / "federated.json"

    @property
    def client_state(self) -> Path:
        return self.path / "client_state"

    @property
    def centralised(self) -> Path:
        return self.path / "centralised"

    @property
    def centralised_metrics(self) -> Path:
        return self.centralised / CENTRALISED_METRICS

    @property
    def centralised_model(self) -> Path:
        return self.centralised / CENTRALISED_MODEL

    @property
    def test_scores(self) -> Path:
        return self.path / TEST_SCORES

    @property
    def centralised_scores(self) -> Path:
        return self.centralised / TEST_SCORES

    @property
    def local_only(self) -> Path:
        """The local-only models' directory (``fedmarket.value.local_only``)."""
        return self.path / "local"

    @property
    def local_only_metrics(self) -> Path:
        return self.local_only / LOCAL_ONLY_METRICS

    @property
    def local_only_scores(self) -> Path:
        """Each retailer's local-only prediction for each of its test customers."""
        return self.local_only / TEST_SCORES

    @property
    def personal(self) -> Path:
        """The personalised models' directory (``fedmarket.value.personal``)."""
        return self.path / "personal"

    @property
    def personal_metrics(self) -> Path:
        return self.personal / LOCAL_ONLY_METRICS

    @property
    def personal_scores(self) -> Path:
        """Each retailer's personalised prediction for each of its test customers."""
        return self.personal / TEST_SCORES

    @property
    def anchor_scores(self) -> Path:
        """The BG/NBD anchor's per-customer test predictions (RUN/anchor/)."""
        return self.path / "anchor" / TEST_SCORES

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    def figure(self, name: str) -> Path:
        """A figure of the report, ``name`` without the .png."""
        return self.path / f"{name}.png"

    @property
    def audit(self) -> Path:
        return self.path / "audit.json"

    @property
    def log(self) -> Path:
        return self.path / "log.txt"

    @property
    def contribution(self) -> Path:
        """`fedmarket contribution`'s directory: records, results, coalition runs."""
        return self.path / "contribution"

    @property
    def contribution_records(self) -> Path:
        return self.contribution / "coalitions.jsonl"

    @property
    def contribution_settings(self) -> Path:
        """The settings every recorded coalition was trained with (their rounds)."""
        return self.contribution / "settings.json"

    @property
    def contribution_json(self) -> Path:
        return self.contribution / "contribution.json"

    @property
    def contribution_md(self) -> Path:
        return self.contribution / "contribution.md"

    @property
    def contribution_figure(self) -> Path:
        return self.contribution / "contribution.png"

    def coalition_view(self, key: str) -> Path:
        """A coalition's prepared-data view (``fedmarket.data.subset``)."""
        return self.contribution / "views" / key

    def coalition_run(self, key: str) -> Path:
        return self.contribution / "runs" / key

    def holds_run(self) -> bool:
        return self.config.exists()

    def write_config(self, cfg: RunConfig) -> None:
        write_json(self.config, cfg.to_flower())

    def read_config(self) -> RunConfig:
        """The run's settings; a clear error where this is not a run directory."""
        from fedmarket.config import RunConfig

        if not self.config.is_file():
            raise ConfigError(
                f"{self.path}: no config.json there; not a fedmarket run directory "
                "(written by `fedmarket simulate`, `flwr run` or a trade-off point)"
            )
        return RunConfig.from_mapping(json.loads(self.config.read_text()), where=str(self.config))

    def read_marker(self) -> dict[str, Any] | None:
        """The last committed round's marker, or None before the first commit."""
        if not self.latest_marker.exists():
            return None
        try:
            marker = json.loads(self.latest_marker.read_text())
            int(marker["round"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{self.latest_marker}: damaged commit marker ({exc}); restore it from a "
                f"backup, or start the run again in a new directory"
            ) from None
        return marker

    def latest_checkpoint(self) -> tuple[int, dict[str, torch.Tensor] | None] | None:
        """(last committed round, the global weights then), or None before the first commit.

        The weights are None when no round has aggregated yet (every round so far was
        skipped): the run then continues from its seeded initial model.
        """
        import torch

        marker = self.read_marker()
        if marker is None:
            return None
        if not marker.get("path"):
            return int(marker["round"]), None
        path = self.checkpoints / str(marker["path"])
        try:
            blob = torch.load(path, weights_only=True)
            weights = blob["state_dict"]
        except (OSError, EOFError, RuntimeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}: the checkpoint of committed round {marker['round']} cannot be read "
                f"({type(exc).__name__}: {exc}); the run directory is damaged: restore the "
                "file, or start the run again in a new directory"
            ) from None
        return int(marker["round"]), weights

    def save_checkpoint(self, rnd: int, weights: dict[str, torch.Tensor]) -> Path:
        """``round-NNNN.pt``, written whole before it is given its name."""
        import torch

        path = self.checkpoint(rnd)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"round": rnd, "state_dict": weights}, tmp)
        os.replace(tmp, path)
        return path

    def read_rounds(self, *, up_to: int | None = None) -> list[dict[str, Any]]:
        """rounds.csv as dicts of floats (None for empty cells); [] before the first round.

        ``up_to``: only rounds at or before it (a resume drops the rows of work in flight).
        """
        if not self.rounds.exists():
            return []
        with open(self.rounds, newline="") as handle:
            rows = [
                {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
                for row in csv.DictReader(handle)
            ]
        if up_to is not None:
            rows = [r for r in rows if r.get("round") is not None and r["round"] <= up_to]
        return rows

    def write_rounds(self, rows: list[dict[str, Any]], fields: list[str]) -> None:
        """rounds.csv with ``rows`` in ``fields`` order, replacing the file whole."""
        tmp = self.rounds.with_name(self.rounds.name + ".tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in fields})
        os.replace(tmp, self.rounds)

    def commit(self, marker: dict[str, Any]) -> None:
        """Make round ``marker["round"]`` the run directory's state (written last)."""
        write_json(self.latest_marker, marker)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return value


def read_scores(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(label, score) of a one-model predictions file (``fedmarket.predictions``), or of the
    ``y,score`` file older runs wrote; None where the file is not there (a run from before it
    was written, or one whose server has no test customers)."""
    if not path.is_file():
        return None
    with open(path) as handle:
        header = handle.readline().strip()
    try:
        if header != "y,score":
            from fedmarket.predictions import read_predictions

            models = list(read_predictions(path).values())
            if len(models) != 1:
                raise ValueError(f"{len(models)} models, expected one")
            return models[0].label, models[0].score
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        if table.shape[1] != 2:
            raise ValueError(f"{table.shape[1]} columns, expected 2 (y,score)")
    except (ValueError, ConfigError) as exc:
        raise ConfigError(
            f"{path}: damaged test scores ({exc}); delete it and the report leaves out the "
            "curves that need it"
        ) from None
    return table[:, 0], table[:, 1]


def json_safe(value: Any) -> Any:
    """NaN/inf become null: JSON has no NaN and a reader should not have to guess."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: Path, data: Any) -> Path:
    """Indented JSON (NaN as null), written to a temporary name and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2) + "\n")
    os.replace(tmp, path)
    return path
