"""`fedmarket centralised`: one sequence model on the pooled data (the reference).

It reads the run settings that centralised training has (model, task, batch size, learning
rate, DP-SGD) from ``--run-config`` with simulate's keys and meanings, so a setting is spelt
one way everywhere; its older flags still work, and a flag given on the command line wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from click.core import ParameterSource
from rich.markup import escape
from rich.table import Table

from fedmarket.cli.app import Command, EncryptionKeyFile, Threads, app, friendly_errors
from fedmarket.cli.tracking import Experiment, TrackingUri, say_tracked
from fedmarket.config import DEFAULTS, RunConfig, parse_overrides
from fedmarket.errors import ConfigError
from fedmarket.names import RANKING_TASK, RANKING_TASKS, did_you_mean
from fedmarket.progress import console, progress_bar

# The run settings centralised training has; the rest (rounds, strategies, server-side DP,
# paths) belong to a federated run.
KEYS = (
    "model",
    "task",
    "count-loss",
    "batch-size",
    "learning-rate",
    "dp",
    "target-epsilon",
    "noise-multiplier",
    "max-grad-norm",
    "delta",
    "accountant",
    "seed",
)
# Each flag and the run setting it sets.
FLAGS = {
    "model": "model",
    "task": "task",
    "count_loss": "count-loss",
    "batch_size": "batch-size",
    "lr": "learning-rate",
    "epsilon": "target-epsilon",
    "noise_multiplier": "noise-multiplier",
    "max_grad_norm": "max-grad-norm",
    "delta": "delta",
    "accountant": "accountant",
    "seed": "seed",
}
# Where this command's defaults differ from simulate's: no DP unless asked for, and a larger
# batch, as the pooled data are ten retailers' customers.
CENTRALISED_DEFAULTS = {"batch-size": 256, "dp": "none"}
PRIVACY_KEYS = ("target-epsilon", "noise-multiplier")
NOTE = (
    "Here dp is 'client' (DP-SGD on the pooled data) or 'none', and 'none' unless dp, "
    "target-epsilon or noise-multiplier is given; as in simulate, target-epsilon > 0 "
    "calibrates the noise and 0 uses noise-multiplier. A flag given on the command line "
    "(--model, --task, --count-loss, --batch-size, --lr, --epsilon, --noise-multiplier, "
    "--max-grad-norm, --delta, --accountant, --seed) wins over the same setting in --run-config; "
    "epochs, the schedule and early stopping are flags only."
)


def centralised_settings(run_config: str, flags: Mapping[str, Any]) -> RunConfig:
    """The settings of one centralised run, checked: simulate's defaults, then this command's
    own (``CENTRALISED_DEFAULTS``), then ``--run-config``, then ``flags`` (the flags given
    on the command line, by parameter name).

    ``--epsilon`` or ``--noise-multiplier`` turn DP-SGD on, as they always did, and
    ``--noise-multiplier`` alone means fixed noise (target-epsilon 0).
    """
    where = "centralised --run-config"
    given = parse_overrides(run_config, where=where)
    for key in given:
        if key not in DEFAULTS:
            raise ConfigError(
                f"{where}: unknown key {key!r}; {did_you_mean(key, KEYS)}"
                f"centralised reads: {', '.join(KEYS)}"
            )
        if key not in KEYS:
            raise ConfigError(
                f"{where}: {key} is a setting of a federated run, not of centralised "
                f"training; centralised reads: {', '.join(KEYS)} (epochs: --epochs)"
            )
    values: dict[str, Any] = {**CENTRALISED_DEFAULTS, **given}
    if "dp" not in given and any(k in given for k in PRIVACY_KEYS):
        values["dp"] = "client"
    explicit = {FLAGS[name]: value for name, value in flags.items() if value is not None}
    if all(k in explicit for k in PRIVACY_KEYS):
        raise ConfigError("--epsilon and --noise-multiplier: give one (a budget or fixed noise)")
    if any(k in explicit for k in PRIVACY_KEYS):
        explicit.setdefault("target-epsilon", 0.0)  # --noise-multiplier alone: fixed noise
        explicit["dp"] = "client"
    cfg = RunConfig.from_mapping({**values, **explicit}, where=where)
    if cfg.dp == "central":
        raise ConfigError(
            f"{where}: dp='central' is Flower's server-side DP, and centralised training has "
            "no server; use dp='client' (DP-SGD on the pooled data) or dp='none'"
        )
    return cfg


def given_flags(ctx: typer.Context) -> dict[str, Any]:
    """The flags of ``FLAGS`` given on the command line (or in the environment), not their
    defaults: those lose to ``--run-config``."""
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {name: ctx.params[name] for name in FLAGS if ctx.get_parameter_source(name) in given}


@app.command(
    "centralised",
    cls=Command.reading(
        KEYS,
        defaults=CENTRALISED_DEFAULTS,
        notes={"dp": "client (DP-SGD on the pooled data) or none"},
        note=NOTE,
    ),
)
@friendly_errors
def centralised_cmd(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="A prepared data directory.")],
    out: Annotated[Path, typer.Option(help="Directory for metrics.json and the plots.")],
    run_config: Annotated[
        str,
        typer.Option(
            help="Run settings with simulate's keys, e.g. \"model='lstm' target-epsilon=8\" "
            "(listed below); a flag given on the command line wins over the same setting here."
        ),
    ] = "",
    model: Annotated[
        str, typer.Option(help="cnn-lstm | lstm | gru | rnn (run setting model).")
    ] = "cnn-lstm",
    task: Annotated[
        str,
        typer.Option(
            help="purchase | purchase-count | next-categories | next-products (run setting task)."
        ),
    ] = "purchase",
    count_loss: Annotated[
        str,
        typer.Option(
            help="poisson | negative-binomial: the loss of task purchase-count "
            "(run setting count-loss)."
        ),
    ] = "poisson",
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 20,
    batch_size: Annotated[
        int, typer.Option(help="Batch size, expected batch size under DP (run setting batch-size).")
    ] = 256,
    lr: Annotated[
        float, typer.Option(help="Adam learning rate (run setting learning-rate).")
    ] = 3e-3,
    lr_schedule: Annotated[str, typer.Option(help="cosine | step | none.")] = "cosine",
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience in epochs (none: off).")
    ] = 3,
    epsilon: Annotated[
        float | None, typer.Option(help="Target epsilon: DP-SGD (run setting target-epsilon).")
    ] = None,
    noise_multiplier: Annotated[
        float | None,
        typer.Option(help="Fixed noise multiplier: DP-SGD (run setting noise-multiplier)."),
    ] = None,
    max_grad_norm: Annotated[
        float, typer.Option(help="Per-customer clipping norm under DP (run setting max-grad-norm).")
    ] = 1.0,
    delta: Annotated[
        float | None, typer.Option(help="Delta, default 1/(10 n) (run setting delta).")
    ] = None,
    accountant: Annotated[str, typer.Option(help="rdp | prv (run setting accountant).")] = "rdp",
    seed: Annotated[int, typer.Option(help="Seed (run setting seed).")] = 0,
    calibrate: Annotated[
        str | None,
        typer.Option(
            help="platt | isotonic: fit a probability calibration on the validation customers "
            "after training (task purchase), saved as calibration.json and applied to the "
            "test predictions."
        ),
    ] = None,
    encryption_key_file: EncryptionKeyFile = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "fedmarket",
    threads: Threads = None,
) -> None:
    """Train one sequence model on the pooled training data of all partitions (the reference)."""
    cfg = centralised_settings(run_config, given_flags(ctx))  # before the heavy imports
    from fedmarket.threads import choose_threads

    choice = choose_threads(threads)  # a bad --threads or $FEDMARKET_THREADS: an error now
    from fedmarket.tracking import log_centralised, open_tracker, tracking_target

    target = tracking_target(tracking_uri, experiment)
    from fedmarket.centralised import epoch_line, run_centralised, write_centralised
    from fedmarket.data import store
    from fedmarket.data.protect.keys import prepared_data_fernet
    from fedmarket.training import TrainConfig

    fernet = prepared_data_fernet(data, encryption_key_file, outside=[out])
    privacy = cfg.privacy(store.n_train_total(store.read_manifest(data)))
    tracker = open_tracker(target)
    console.print(choice.describe(), highlight=False)
    train_cfg = TrainConfig(
        epochs=epochs,
        batch_size=cfg.batch_size,
        lr=cfg.learning_rate,
        lr_schedule=lr_schedule,
        patience=patience,
        seed=cfg.seed,
    )
    if cfg.task in RANKING_TASKS:
        _recommend(data, out, train_cfg, privacy, fernet, cfg.task)
        return
    with progress_bar(f"training {cfg.model}", epochs, unit="epochs") as advance:
        result = run_centralised(
            data,
            model=cfg.model,
            task=cfg.task,
            train_cfg=train_cfg,
            privacy=privacy,
            hparams=cfg.model_options(),
            fernet=fernet,
            progress=advance,
            on_epoch=lambda row: console.print(epoch_line(row, epochs), highlight=False),
            threads=choice,
            calibrate=calibrate,
        )
    paths = write_centralised(result, out)
    log_centralised(tracker, result.to_dict(), tracked_settings(cfg, train_cfg), out=out)
    table = Table(title=f"{cfg.model} / {cfg.task}: test metrics ({result.n_test:,} customers)")
    table.add_column("metric")
    table.add_column("value (95% interval)", justify="right")
    for key, value in metric_rows(result.test):
        table.add_row(key, value)
    console.print(table)
    say_notes(result, cfg)
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    say_tracked(tracker, target)


def _recommend(
    data: Path, out: Path, train_cfg: Any, privacy: Any, fernet: Any, task: str = RANKING_TASK
) -> None:
    """Task next-categories (or next-products: per-retailer tables side by side): GRU+NCF,
    GRU-only and NCF-only trained centralised, with the baselines, warm and cold apart;
    written as OUT/recommend.json and OUT/report.md."""
    from fedmarket.recommend.experiment import compare
    from fedmarket.recommend.product_compare import compare_products
    from fedmarket.rundir import json_safe, write_json

    result = (compare_products if task != RANKING_TASK else compare)(
        data,
        train_cfg,
        privacy=privacy,
        fernet=fernet,
        on_model=lambda name: console.print(f"training {name}", highlight=False),
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "recommend.json", json_safe(result.to_dict()))
    (out / "report.md").write_text(f"# {task} (centralised)\n\n{result.markdown()}\n")
    console.print(result.markdown(), highlight=False)
    console.print(f"wrote {out / 'recommend.json'}, {out / 'report.md'}")


def say_notes(result: Any, cfg: RunConfig) -> None:
    """The lines under the metrics table: a small-test caution, the DP guarantee, and the
    calibration's test ECE before and after (``--calibrate``)."""
    from fedmarket.intervals import report_warning

    if warning := report_warning(result.test):
        console.print(f"[bold yellow]Caution: {escape(warning)}.[/]", highlight=False)
    if result.epsilon is not None:
        console.print(
            f"DP-SGD: epsilon = {result.epsilon:.3f}, delta = {result.delta:.3g}, "
            f"noise multiplier = {result.noise_multiplier:.3f}, clip = {cfg.max_grad_norm}"
        )
    if (cal := result.calibration) is not None:
        console.print(
            f"{cal['method']} calibration fitted on {cal['fitted_on']}: test ECE "
            f"{cal['test_ece_before']:.4f} -> {cal['test_ece_after']:.4f}"
        )


def metric_rows(test: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(metric, value) for the console: ranking metrics with their 95 % interval in the same
    cell (the ``_low`` / ``_high`` keys are not rows of their own), counts as integers."""
    from fedmarket.intervals import interval_keys, metric_cell
    from fedmarket.metrics import COUNT_KEYS, WITH_INTERVAL

    bounds = {k for key in WITH_INTERVAL for k in interval_keys(key)}
    rows = []
    for key, value in test.items():
        if not isinstance(value, int | float) or key in bounds:
            continue
        if key in COUNT_KEYS and value == value:
            rows.append((key, f"{int(value):,}"))
        else:
            rows.append((key, metric_cell(test, key, _four_places)))
    return rows


def _four_places(value: float) -> str:
    return "n/a" if value != value else f"{value:.4f}"


def tracked_settings(cfg: RunConfig, train_cfg: Any) -> dict[str, Any]:
    """What a centralised run logs as its parameters: the run settings it reads, by their
    keys, and the training flags that are not run settings."""
    settings = cfg.to_flower()
    return {
        **{key: settings[key] for key in KEYS},
        "epochs": train_cfg.epochs,
        "lr-schedule": train_cfg.lr_schedule,
        "patience": train_cfg.patience,
    }
