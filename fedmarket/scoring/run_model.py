"""A finished run's model, ready to score customers it has never seen.

Scoring, export and the service all start here, so that each uses the same weights, the same
feature window and the same normalisation statistics the run trained with: a model applied to
features normalised with other statistics gives confident, wrong scores and no error. The run
directory names the prepared data (``config.json``'s ``data-dir``); its manifest holds the
window and the statistics, which every retailer of the consortium shares.

Two models can be scored: ``federated`` (the global model of the last committed round, the one
a retailer that joined receives) and ``centralised`` (the pooled reference, when the run kept
it: a retailer of a real consortium never has it, it exists in simulation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import torch
from torch import nn

from fedmarket.calibration import Calibrator
from fedmarket.config import RunConfig
from fedmarket.data import features, store
from fedmarket.data.normalise import NormStats
from fedmarket.errors import ConfigError
from fedmarket.models import build_model
from fedmarket.names import PRODUCTS_TASK
from fedmarket.rundir import CALIBRATION, RunDir
from fedmarket.tasks import Task, get_task
from fedmarket.training import predict

SOURCES: Final[tuple[str, ...]] = ("federated", "centralised")


_ONE_CALL: Final[int] = 4096  # rows per model call (training.predict's default batch size)


@dataclass(frozen=True)
class RunModel:
    """One trained model of a run and everything needed to feed it new customers."""

    run_dir: Path
    source: str  # one of SOURCES
    config: RunConfig
    manifest: store.Manifest
    window: features.FeatureWindow  # the run's window; scoring moves only its cut-off
    norm: NormStats
    task: Task
    net: nn.Module  # eval mode, CPU
    round: int | None  # the federated round the weights come from (None: centralised)
    calibrator: Calibrator | None  # fitted on validation customers, when the run has one

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["feature_names"])

    @property
    def count_unit(self) -> str:
        return str(self.manifest.get("labels", {}).get("count_unit", "transactions"))

    @property
    def input_shape(self) -> tuple[int, int]:
        """(steps, features) of one customer's input."""
        return self.window.n_steps, len(self.feature_names)

    def window_at(self, as_of: object) -> features.FeatureWindow:
        """The run's window with its cut-off moved to ``as_of`` (a UTC midnight)."""
        return features.FeatureWindow(
            cutoff=as_of,
            window_days=self.window.window_days,
            step_days=self.window.step_days,
            horizon_days=self.window.horizon_days,
        )

    def predict(self, X: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        """Purchase probabilities (or expected counts) of normalised inputs ``X``, float64.

        ``X`` is (customers, steps, features) normalised with ``norm``; the run's calibrator is
        applied to probabilities when it has one and ``calibrated``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3 or X.shape[1:] != self.input_shape:
            raise ConfigError(
                f"scoring input has shape {X.shape}; the run's model reads "
                f"(customers, {self.input_shape[0]} steps, {self.input_shape[1]} features)"
            )
        if 0 < len(X) <= _ONE_CALL and not self.net.training:
            # the service's few rows: the one model call predict() makes, without its per-call
            # device move and mode switches (walks of the module tree) and with inference_mode
            with torch.inference_mode():
                scores = self.net(torch.from_numpy(np.ascontiguousarray(X)))
                out = self.task.prediction(scores).numpy().astype(np.float64)
        else:
            out = predict(self.net, X, self.task, device="cpu", batch_size=_ONE_CALL)
        if calibrated and self.calibrator is not None:
            out = self.calibrator.apply(out)
        return out


class OpenedRun(NamedTuple):
    """What every model loader reads first: the run's files, its settings and its data's
    manifest."""

    files: RunDir
    config: RunConfig
    data_dir: Path  # the run's prepared data (config.json's data-dir)
    manifest: store.Manifest


def run_with_manifest(
    run_dir: Path,
    source: str,
    *,
    holds: str,
    refuse: Callable[[RunDir, RunConfig], str | None] = lambda files, cfg: None,
) -> OpenedRun:
    """The run at ``run_dir`` and its prepared data's manifest, checked before any weights load.

    Both loaders (propensity, recommendation) open a run the same way, so their errors read
    alike: ``source`` must be one of SOURCES; ``refuse`` returns why this loader does not take
    the run's task (None: it does); the manifest must be where ``data-dir`` says, since it
    holds ``holds`` (said in the error) the model needs."""
    if source not in SOURCES:
        raise ConfigError(f"--model-source {source!r}: choose one of {', '.join(SOURCES)}")
    files = RunDir(Path(run_dir))
    cfg = files.read_config()
    reason = refuse(files, cfg)
    if reason is not None:
        raise ConfigError(reason)
    data_dir = Path(cfg.data_dir)
    if not (data_dir / store.MANIFEST_NAME).is_file():
        raise ConfigError(
            f"{files.path}: the run's prepared data {data_dir} (config.json's data-dir) is not "
            f"there; its manifest holds {holds} the model needs. Load the run where that "
            "directory is, or copy the prepared data there"
        )
    return OpenedRun(files, cfg, data_dir, store.read_manifest(data_dir))


def products_refusal(files: RunDir, cfg: RunConfig) -> str | None:
    """Why no scoring path takes a next-products run yet (None for any other task)."""
    if cfg.task != PRODUCTS_TASK:
        return None
    return (
        f"{files.path}: a next-products run ranks each retailer's own products with a "
        "product table that stays at that retailer; `fedmarket score`, `serve` and "
        "`export` do not take such a run yet (its evaluation is the run's report.md)"
    )


def _ranking_run(files: RunDir, cfg: RunConfig) -> str | None:
    """Why a run that ranks items is not loaded here (None for a run that scores customers)."""
    if (reason := products_refusal(files, cfg)) is not None:
        return reason
    if get_task(cfg.task).target_ndim == 1:
        return None
    return (
        f"{files.path}: a {cfg.task} run ranks items for each customer; `fedmarket score` "
        "and `fedmarket serve` give its top-k categories (fedmarket.scoring.rec_model), "
        "export and the propensity paths take runs that score customers (purchase, "
        "purchase-count, churn, churn-inactive)"
    )


def load_run_model(run_dir: Path, source: str = "federated") -> RunModel:
    """The run's ``source`` model; clear errors for an unfinished run or missing data."""
    files, cfg, data_dir, manifest = run_with_manifest(
        run_dir, source, holds="the window and normalisation", refuse=_ranking_run
    )
    window = manifest_window(manifest, data_dir)
    norm = NormStats.from_dict(manifest["normalisation"])
    if source == "federated":
        net, rnd, calibrator = _federated(files, cfg, manifest)
    else:
        net, rnd, calibrator = _centralised(files, manifest)
    net.eval()
    return RunModel(
        run_dir=files.path,
        source=source,
        config=cfg,
        manifest=manifest,
        window=window,
        norm=norm,
        task=get_task(cfg.task),
        net=net,
        round=rnd,
        calibrator=calibrator,
    )


def manifest_window(manifest: store.Manifest, data_dir: Path) -> features.FeatureWindow:
    w: dict[str, Any] | None = manifest.get("window")  # type: ignore[assignment]
    if not w or manifest.get("kind") == "table":
        raise ConfigError(
            f"{data_dir}: the run was trained on a customer table, not on events; score it "
            "with --data PREPARED (the table's prepared customers)"
        )
    return features.FeatureWindow(
        cutoff=w["cutoff"],
        window_days=int(w["window_days"]),
        step_days=int(w["step_days"]),
        horizon_days=int(w["horizon_days"]),
    )


def _federated(
    files: RunDir, cfg: RunConfig, manifest: store.Manifest
) -> tuple[nn.Module, int, Calibrator | None]:
    checkpoint = files.latest_checkpoint()
    if checkpoint is None or checkpoint[1] is None:
        raise ConfigError(
            f"{files.path}: no committed round with a global model yet (checkpoints/"
            "latest.json); finish or resume the run first, or score --model-source centralised"
        )
    net = build_model(
        cfg.model, store.n_features(manifest), task=cfg.task, dp=False, **cfg.model_options()
    )
    net.load_state_dict(checkpoint[1], strict=True)
    path = files.path / CALIBRATION
    return net, checkpoint[0], Calibrator.load(path) if path.is_file() else None


def _centralised(
    files: RunDir, manifest: store.Manifest
) -> tuple[nn.Module, None, Calibrator | None]:
    path = files.centralised_model
    if not path.is_file():
        raise ConfigError(
            f"{files.path}: no centralised/model.pt (the run kept no centralised reference); "
            "score --model-source federated"
        )
    blob = torch.load(path, weights_only=True)
    net = build_model(
        blob["model"], store.n_features(manifest), task=blob["task"], **blob["hparams"]
    )
    net.load_state_dict(blob["state_dict"], strict=True)
    cal = files.centralised / CALIBRATION
    return net, None, Calibrator.load(cal) if cal.is_file() else None
