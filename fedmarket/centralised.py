"""The centralised reference: the same model and training loop on the pooled data.

Every federated result is compared against this, on the same test customers (the union
of every partition's test split), so the price of federation and of privacy is measured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fedmarket import plots
from fedmarket.calibration import Calibrator, fit_calibrator, reliability
from fedmarket.data import store
from fedmarket.errors import ConfigError
from fedmarket.marketing import cumulative_gains
from fedmarket.models import build_model
from fedmarket.names import BINARY_TASKS
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.privacy.config import PrivacySettings
from fedmarket.rundir import (
    CALIBRATION,
    CENTRALISED_METRICS,
    CENTRALISED_MODEL,
    TEST_SCORES,
    json_safe,
    write_json,
)
from fedmarket.tasks import get_task
from fedmarket.threads import ThreadChoice, apply_threads
from fedmarket.training import FitResult, TrainConfig, fit, predict, validation_customers

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

    from fedmarket.config import RunConfig

log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class CentralisedResult:
    model: str
    task: str
    test: dict[str, Any]
    history: list[dict[str, Any]]
    n_train: int
    n_test: int
    epochs_run: int
    best_epoch: int
    wall_s: float
    threads: int | None = None  # torch's intra-op threads while it trained (fedmarket.threads)
    epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    gains: tuple[list[float], list[float]] | None = field(default=None, repr=False)
    # (y, score) per test customer, in the pooled test split's order: the report's gains and
    # lift figure draws both models from the same kind of file (rundir.TEST_SCORES)
    test_scores: tuple[Any, Any] | None = field(default=None, repr=False)
    # the same with who each customer is (fedmarket.predictions): RUN/centralised/TEST_SCORES
    predictions: Predictions | None = field(default=None, repr=False)
    # The trained weights (plain layout) and the model's hyper-parameters, so the model can be
    # saved and audited later (fedmarket audit); not part of the JSON summary.
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    hparams: dict[str, Any] | None = field(default=None, repr=False)
    # --calibrate: the map fitted on the validation customers (saved as CALIBRATION), and in
    # the summary its method, customers and the test ECE before and after
    calibrator: Calibrator | None = field(default=None, repr=False)
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(
            replace(
                self,
                gains=None,
                state_dict=None,
                test_scores=None,
                predictions=None,
                calibrator=None,
            )
        )
        for key in ("gains", "state_dict", "hparams", "test_scores", "predictions", "calibrator"):
            out.pop(key)
        return json_safe(out)


def run_centralised(
    data_dir: Path,
    *,
    model: str,
    task: str,
    train_cfg: TrainConfig,
    privacy: PrivacySettings | None = None,
    hparams: dict[str, Any] | None = None,
    fernet: Fernet | None = None,
    progress: Callable[..., None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    threads: int | ThreadChoice | None = None,
    calibrate: str | None = None,
) -> CentralisedResult:
    """``threads``: torch's threads (``--threads``, or the choice a command already showed);
    None chooses them (`fedmarket.threads`): torch's own default spin-waits on a loaded
    machine, several times slower. ``calibrate`` ('platt' or 'isotonic', task purchase)
    fits that map on the validation customers after training and reports the test
    customers' calibrated probabilities (fedmarket.calibration)."""
    started = time.perf_counter()
    _check_calibrate(calibrate, task, train_cfg)
    choice = apply_threads(threads)
    manifest = store.read_manifest(data_dir)
    train = store.load_pooled(data_dir, "train", fernet=fernet)
    test = store.load_pooled(data_dir, "test", fernet=fernet)
    task_obj = get_task(task)
    net = build_model(
        model,
        store.n_features(manifest),
        task=task,
        dp=privacy is not None,
        seed=train_cfg.seed,
        **(hparams or {}),
    )
    # Without a validation split nothing is selected on held-out data, so the test customers
    # can show the learning curve epoch by epoch (as test_loss) without touching the result.
    monitor = train_cfg.val_fraction == 0 and train_cfg.patience is None

    def each_epoch(row: dict[str, Any]) -> None:
        if on_epoch is not None:
            on_epoch(_val_as_test(row) if monitor else row)

    result: FitResult = fit(
        net,
        train,
        task_obj,
        train_cfg,
        val=test if monitor else None,
        privacy=privacy,
        progress=progress,
        on_epoch=each_epoch,
    )
    history = [_val_as_test(row) for row in result.history] if monitor else result.history
    y_test = task_obj.targets(test)
    pred = predict(net, test.X, task_obj, device=train_cfg.device)
    calibrator, calibration = None, None
    if calibrate is not None:
        val = validation_customers(train, train_cfg)
        p_val = predict(net, val.X, task_obj, device=train_cfg.device)
        calibrator = fit_calibrator(task_obj.targets(val), p_val, calibrate)
        pred, raw = calibrator.apply(pred), pred
        before, after = reliability(y_test, raw), reliability(y_test, pred)
        calibration = {
            "method": calibrate,
            "fitted_on": f"{len(val)} validation customers (held out of training)",
            "test_ece_before": before.ece,
            "test_ece_after": after.ece,
            "test_reliability": {"before": before.to_dict(), "after": after.to_dict()},
        }
    x, y = cumulative_gains((y_test > 0).astype(float), pred)
    return CentralisedResult(
        model=model,
        task=task,
        test=task_obj.report(y_test, pred),
        history=history,
        n_train=result.n_train,
        n_test=len(test),
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        wall_s=time.perf_counter() - started,
        threads=choice.threads,
        epsilon=result.epsilon,
        delta=result.delta,
        noise_multiplier=result.noise_multiplier,
        max_grad_norm=privacy.max_grad_norm if privacy is not None else None,
        gains=(x.tolist(), y.tolist()),
        test_scores=(y_test, pred),
        predictions=Predictions.pooled(data_dir, test, task=task, model=model, score=pred),
        state_dict=result.state_dict,
        hparams=dict(hparams or {}),
        calibrator=calibrator,
        calibration=calibration,
    )


def _check_calibrate(calibrate: str | None, task: str, train_cfg: TrainConfig) -> None:
    """Before training: calibration is of probabilities, fitted on validation customers."""
    if calibrate is None:
        return
    if task not in BINARY_TASKS:
        raise ConfigError(
            f"--calibrate: calibration maps probabilities, and task {task!r} predicts counts; "
            f"use it with a 0/1 task ({', '.join(BINARY_TASKS)})"
        )
    if train_cfg.val_fraction == 0:
        raise ConfigError(
            "--calibrate needs validation customers to fit on: a val_fraction > 0 (the test "
            "customers are never used to fit it)"
        )
    fit_calibrator([0, 1], [0.5, 0.5], calibrate)  # an unknown method: an error now


def _val_as_test(row: dict[str, Any]) -> dict[str, Any]:
    return {(f"test_{k[4:]}" if k.startswith("val_") else k): v for k, v in row.items()}


def run_matched_reference(
    cfg: RunConfig,
    data_dir: Path,
    out_dir: Path,
    *,
    fernet: Fernet | None = None,
    progress: Callable[..., None] | None = None,
    threads: int | None = None,
) -> CentralisedResult:
    """The centralised reference of a federated run, written to ``out_dir``.

    Same model, same DP setting (one delta over all training customers), the same number
    of passes over every customer (rounds x local epochs), on the pooled partitions. Logs
    a line per epoch: under DP on a large pooled set an epoch takes minutes.
    """
    n_train = store.n_train_total(store.read_manifest(data_dir))
    train_cfg = cfg.train_config(epochs=cfg.total_epochs)
    privacy = cfg.privacy(n_train)
    log.info(
        "centralised reference: %s, %d epochs on %s pooled customers%s",
        cfg.model,
        train_cfg.epochs,
        f"{n_train:,}",
        ", DP-SGD" if privacy else "",
    )
    result = run_centralised(
        data_dir,
        model=cfg.model,
        task=cfg.task,
        train_cfg=train_cfg,
        privacy=privacy,
        hparams=cfg.model_options(),
        fernet=fernet,
        progress=progress,
        on_epoch=lambda row: log.info("%s", epoch_line(row, train_cfg.epochs)),
        threads=threads,
    )
    write_centralised(result, out_dir)
    return result


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """``centralised epoch 3/12: train loss 0.4123, val loss 0.3981, val roc_auc 0.8012,
    epsilon 3.21`` (what is not measured is left out; ``test`` where the held-out customers
    are the test customers, see `run_centralised`)."""
    parts = [f"train loss {row['train_loss']:.4f}"]
    for key, value in row.items():
        if key.startswith(("val_", "test_")) and value is not None:
            parts.append(f"{key.replace('_', ' ', 1)} {value:.4f}")
    if row.get("epsilon") is not None:
        parts.append(f"epsilon {row['epsilon']:.2f}")
    return f"centralised epoch {row['epoch']}/{epochs}: {', '.join(parts)}"


def write_centralised(result: CentralisedResult, out_dir: Path) -> dict[str, Path]:
    """metrics.json, the learning curve, the cumulative-gains plot and model.pt (the weights,
    for `fedmarket audit`: {"model", "task", "state_dict", "hparams"})."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": write_json(out_dir / CENTRALISED_METRICS, result.to_dict())}
    if result.state_dict is not None:
        paths["model"] = out_dir / CENTRALISED_MODEL
        torch.save(
            {
                "model": result.model,
                "task": result.task,
                "state_dict": result.state_dict,
                "hparams": result.hparams or {},
            },
            paths["model"],
        )
    if result.calibrator is not None and result.calibration is not None:
        paths["calibration"] = result.calibrator.save(out_dir / CALIBRATION)
        tables = result.calibration["test_reliability"]
        paths["reliability"] = plots.reliability_plot(
            {
                f"{result.model} {when} {result.calibration['method']} (ECE {ece:.3f})": (
                    tables[key]["mean_predicted"],
                    tables[key]["observed"],
                )
                for key, when, ece in (
                    ("before", "before", result.calibration["test_ece_before"]),
                    ("after", "after", result.calibration["test_ece_after"]),
                )
            },
            out_dir / RELIABILITY_PLOT,
            title=f"{result.model}: reliability on test customers",
        )
    if result.predictions is not None:
        paths["test_scores"] = write_predictions(out_dir / TEST_SCORES, result.predictions)
    task = get_task(result.task)
    keys = [
        k
        for k in ("train_loss", "val_loss", "test_loss")
        if any(r.get(k) is not None for r in result.history)
    ]
    paths["learning_curve"] = plots.learning_curve_plot(
        result.history,
        out_dir / "learning_curve.png",
        keys,
        x_key="epoch",
        title=f"{result.model} ({result.task}): loss by epoch",
        ylabel=f"loss ({task.loss_name})",
        labels=LOSS_LABELS,
    )
    if result.gains is not None:
        paths["gains"] = plots.gains_plot(
            {result.model: result.gains},
            out_dir / "gains.png",
            title=f"{result.model}: cumulative gains on test customers",
        )
    return paths


RELIABILITY_PLOT = "reliability.png"

# The learning curve's lines, in words (fedmarket.reporting draws the same lines).
LOSS_LABELS = {
    "train_loss": "training loss (averaged over the epoch)",
    "val_loss": "validation loss (held-out training customers)",
    "test_loss": "test loss (held-out test customers)",
}
