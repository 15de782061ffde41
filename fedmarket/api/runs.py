"""Training from Python: `fedmarket simulate`, `centralised`, `baselines` and `tradeoff` as
calls that return typed results.

Thin and keyword-only over what each command calls, so the two front doors train and write
the same things and a bad input raises the same ``FedmarketError`` the CLI prints; a run
that ends incomplete returns, with its ``problems``, where the CLI exits 1. torch, Flower
and Ray load inside each function, never when this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.api.args import PathLike, RunSettings, data_key, items, optional_path, overrides
from fedmarket.api.results import BaselinesResult, CentralisedRun, RunResult, TradeoffResult

DEFAULT_EXPERIMENT = "fedmarket"  # fedmarket.tracking's; not imported here, to stay light

if TYPE_CHECKING:
    from fedmarket.privacy.config import PrivacySettings
    from fedmarket.tracking import Tracker
    from fedmarket.training import TrainConfig

log = logging.getLogger("fedmarket")


def simulate(
    *,
    data: PathLike | None = None,
    run_config: RunSettings = "",
    out: PathLike | None = None,
    centralised: bool = True,
    resume: PathLike | None = None,
    client_cpus: float = 1.0,
    client_gpus: float = 0.0,
    ray_address: str | None = None,
    encryption_key_file: PathLike | None = None,
    tracking_uri: PathLike | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    threads: int | None = None,
) -> RunResult:
    """The Flower simulation and its matched centralised reference (`fedmarket simulate`).

    ``run_config`` is a dict of run settings (``{"num-server-rounds": 3, "dp": "none"}``) or
    the CLI's string. A run that finished incomplete (a failed reference, rounds not
    aggregated) still returns: its ``problems`` say what is missing, as the CLI's exit
    code 1 does. ``tracking_uri`` (a directory such as ``"mlruns"``, ``sqlite:///…`` or a
    server's ``http://…``) also logs the run to MLflow in ``experiment``, as
    ``--tracking-uri`` does; a tracking failure is a warning, never a lost result.
    ``threads``: torch's threads in this process (``--threads``; else $FEDMARKET_THREADS, else
    chosen from the usable cores); each client actor uses ``client_cpus``.
    """
    from fedmarket.tracking import log_simulation

    tracker = _tracker(tracking_uri, experiment)
    from fedmarket.experiments.simulate import ClientResources
    from fedmarket.experiments.simulate import simulate as run

    result = run(
        data=optional_path(data),
        run_config=overrides(run_config),
        out=optional_path(out),
        centralised=centralised,
        resume=optional_path(resume),
        resources=ClientResources(client_cpus, client_gpus, ray_address),
        key_file=optional_path(encryption_key_file),
        threads=threads,
    )
    log_simulation(tracker, result["run_dir"], result["summary"])
    for problem in result["problems"]:
        log.warning("incomplete run %s: %s", result["run_dir"], problem)
    return RunResult(Path(result["run_dir"]), result["summary"])


def train_centralised(
    *,
    data: PathLike,
    out: PathLike | None = None,
    model: str = "cnn-lstm",
    task: str = "purchase",
    count_loss: str = "poisson",
    calibrate: str | None = None,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 3e-3,
    lr_schedule: str = "cosine",
    patience: int | None = 3,
    epsilon: float | None = None,
    noise_multiplier: float | None = None,
    max_grad_norm: float = 1.0,
    delta: float | None = None,
    accountant: str = "rdp",
    seed: int = 0,
    encryption_key_file: PathLike | None = None,
    progress: bool = True,
    tracking_uri: PathLike | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    threads: int | None = None,
) -> CentralisedRun:
    """One sequence model on the pooled data (`fedmarket centralised`): what federation is
    measured against. ``epsilon`` or ``noise_multiplier`` turns on DP-SGD; ``out`` None keeps
    the result in memory (the weights are in ``result.state_dict``). ``tracking_uri`` logs
    the run to MLflow (its files too, with ``out``), as ``--tracking-uri`` does.
    ``threads``: torch's threads, as ``--threads`` (`fedmarket.threads`). ``count_loss`` and
    ``calibrate`` are ``--count-loss`` and ``--calibrate``."""
    tracker = _tracker(tracking_uri, experiment)
    from fedmarket.centralised import run_centralised, write_centralised
    from fedmarket.privacy.config import PrivacySettings
    from fedmarket.progress import progress_bar
    from fedmarket.training import TrainConfig

    data, where = Path(data), optional_path(out)
    fernet = data_key(data, encryption_key_file, where)
    privacy = None
    if epsilon is not None or noise_multiplier is not None:
        privacy = PrivacySettings(
            target_epsilon=epsilon,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            delta=delta,
            accountant=accountant,
        )
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        patience=patience,
        seed=seed,
    )
    with progress_bar(f"training {model}", epochs, unit="epochs", enabled=progress) as advance:
        result = run_centralised(
            data,
            model=model,
            task=task,
            train_cfg=cfg,
            privacy=privacy,
            hparams={"count_loss": count_loss},
            fernet=fernet,
            progress=advance,
            threads=threads,
            calibrate=calibrate,
        )
    paths = write_centralised(result, where) if where is not None else {}
    _log_centralised(tracker, result.to_dict(), where, cfg, privacy)
    return CentralisedRun(result, where, paths)


def compare_baselines(
    *,
    data: PathLike,
    out: PathLike | None = None,
    task: str = "purchase",
    count_loss: str = "poisson",
    sequence_models: Sequence[str] | str = ("cnn-lstm", "lstm", "gru"),
    classical: Sequence[str] | None = None,
    epochs: int = 20,
    seed: int = 0,
    anchors: bool = True,
    anchor_epsilon: float | None = None,
    generative: bool = True,
    generative_models: Sequence[str] | str | None = None,
    gan_epochs: int = 20,
    gan_epsilon: float | None = None,
    encryption_key_file: PathLike | None = None,
    progress: bool = True,
    tracking_uri: PathLike | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    threads: int | None = None,
) -> BaselinesResult:
    """Classical models on per-customer aggregates next to the sequence models, on the same
    test customers (`fedmarket baselines`): whether the sequence is worth its cost.
    ``classical`` None is every registered model; ``anchors`` adds BG/NBD and Pareto/NBD
    (pooled and federated over the partitions; skipped for a customer table, which has no
    purchase history); ``anchor_epsilon`` adds their federated fit under client DP at that
    epsilon per retailer; ``generative`` adds the GAN rows (the semi-supervised GAN classifier
    and GAN minority oversampling, ``gan_epochs`` each; skipped rows for counts;
    ``generative_models`` picks some by name, as ``--generative-models``: ``ssgan``,
    ``ssgan-seq`` (the event-feature sequence and the aggregates), ``gan-oversampled-...``;
    ``gan_epsilon`` adds the GAN classifiers under DP-SGD on their discriminator);
    ``count_loss`` is ``--count-loss`` (a negative-binomial row is named MODEL-nb);
    ``threads``: torch's threads for the sequence models, as ``--threads``;
    ``out`` writes baselines.csv and .json.
    ``tracking_uri`` logs a parent MLflow run with a child run per model."""
    from fedmarket.baseline_suite import SuiteData, SuiteSettings, baseline_rows, check_names

    names = check_names(task, items(sequence_models), count_loss)
    tracker = _tracker(tracking_uri, experiment)
    from fedmarket.baselines import write_results, write_test_scores
    from fedmarket.generative.rows import check_generative_models
    from fedmarket.generative.ssgan import GANConfig
    from fedmarket.progress import progress_bar
    from fedmarket.tracking import log_baselines

    gan_cfg = GANConfig(epochs=gan_epochs)  # a bad gan_epochs: an error before any data is read
    gan_names = None if generative_models is None else check_generative_models(generative_models)
    data, where = Path(data), optional_path(out)
    inputs = SuiteData.load(data, data_key(data, encryption_key_file, where))
    suite = SuiteSettings(
        task=task,
        seed=seed,
        classical=None if classical is None else tuple(classical),
        generative=generative,
        generative_models=None if gan_names is None else tuple(gan_names),
        gan=gan_cfg,
        gan_epsilon=gan_epsilon,
        anchors=anchors,
        anchor_epsilon=anchor_epsilon,
        sequence_models=tuple(names),
        count_loss=count_loss,
        epochs=epochs,
    )
    bars = partial(progress_bar, enabled=progress)
    rows = baseline_rows(inputs, suite, threads=threads, bars=bars)
    paths = dict(zip(("csv", "json"), write_results(rows, where), strict=True)) if where else {}
    if where is not None:
        paths["test_scores"] = write_test_scores(rows, data, inputs.test, where, task)
    log_baselines(tracker, rows, suite.params(), out=where)
    return BaselinesResult.from_rows(rows, task, paths)


def tradeoff(
    *,
    out: PathLike,
    data: PathLike | None = None,
    quick: bool = False,
    epsilons: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    settings: Sequence[str] | str | None = None,
    rounds: int | None = None,
    run_config: RunSettings = "",
    audit: bool = True,
    encryption_key_file: PathLike | None = None,
    progress: bool = True,
    tracking_uri: PathLike | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> TradeoffResult:
    """The privacy/accuracy sweep (`fedmarket tradeoff`): what each epsilon costs in
    accuracy, and what an attacker still learns. Re-running the same ``out`` resumes it.
    ``tracking_uri`` logs a parent MLflow run with a child run per point."""
    tracker = _tracker(tracking_uri, experiment)
    from fedmarket.experiments.tradeoff import (
        SweepConfig,
        load_table,
        run_sweep,
        summarise,
        sweep_runs,
        track_sweep,
    )
    from fedmarket.progress import progress_bar

    changes: dict[str, Any] = {
        "data": optional_path(data),
        "run_config": overrides(run_config),
        "audit": audit,
        "key_file": optional_path(encryption_key_file),
    }
    for name, value in (("epsilons", epsilons), ("seeds", seeds), ("settings", settings)):
        if value is not None:
            changes[name] = items(value)
    if rounds is not None:
        changes["rounds"] = rounds
    out = Path(out)
    cfg = SweepConfig.quick_mode(out, **changes) if quick else SweepConfig(out=out, **changes)
    with progress_bar(
        "trade-off sweep", len(sweep_runs(cfg)), unit="runs", enabled=progress
    ) as advance:
        result = run_sweep(cfg, advance=advance)
    track_sweep(tracker, cfg, result)
    csv = result.paths["csv"]
    summary = summarise(load_table(csv))
    return TradeoffResult(out, csv, summary, result.failed, result.skipped, result.paths)


def _tracker(tracking_uri: PathLike | None, experiment: str) -> Tracker:
    """The tracker, its URI checked first (before any heavy import or training)."""
    from fedmarket.tracking import open_tracker, tracking_target

    return open_tracker(tracking_target(tracking_uri, experiment, option="tracking_uri"))


def _log_centralised(
    tracker: Tracker,
    metrics: dict[str, Any],
    out: Path | None,
    cfg: TrainConfig,
    privacy: PrivacySettings | None,
) -> None:
    """The run settings `fedmarket centralised --tracking-uri` logs, by the same keys."""
    from fedmarket.tracking import log_centralised

    settings: dict[str, Any] = {
        "model": metrics["model"],
        "task": metrics["task"],
        "batch-size": cfg.batch_size,
        "learning-rate": cfg.lr,
        "dp": "client" if privacy is not None else "none",
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "lr-schedule": cfg.lr_schedule,
        "patience": cfg.patience,
    }
    if privacy is not None:
        settings.update(
            {
                "target-epsilon": privacy.target_epsilon,
                "noise-multiplier": privacy.noise_multiplier,
                "max-grad-norm": privacy.max_grad_norm,
                "delta": privacy.delta,
                "accountant": privacy.accountant,
            }
        )
    log_centralised(tracker, metrics, settings, out=out)
