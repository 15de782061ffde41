"""`fedmarket baselines`: classical models next to the sequence models, same test customers.

Every finished model is written to baselines.csv / .json at once (the files are rewritten
whole after each one), so a run that is stopped, or a model that fails, keeps the models
that finished; the sequence models take minutes each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from fedmarket.cli.app import EncryptionKeyFile, Threads, app, friendly_errors
from fedmarket.cli.tracking import Experiment, TrackingUri, say_tracked
from fedmarket.errors import ConfigError
from fedmarket.names import MODELS, RANKING_TASK, TASKS, did_you_mean
from fedmarket.progress import console, progress_bar

if TYPE_CHECKING:
    from fedmarket.generative.ssgan import GANConfig


@app.command("baselines")
@friendly_errors
def baselines_cmd(
    data: Annotated[Path, typer.Option(help="A prepared data directory.")],
    out: Annotated[
        Path, typer.Option(help="Directory for baselines.csv / .json (a row per finished model).")
    ],
    task: Annotated[
        str,
        typer.Option(
            help="purchase | purchase-count | churn (active before the cut-off, no purchase "
            "in the horizon) | churn-inactive (no event at all in the horizon)."
        ),
    ] = "purchase",
    count_loss: Annotated[
        str,
        typer.Option(
            help="poisson | negative-binomial: the sequence models' loss for purchase-count "
            "(a negative-binomial row is named MODEL-nb)."
        ),
    ] = "poisson",
    sequence_models: Annotated[
        str, typer.Option(help="Comma-separated sequence models to train alongside ('' for none).")
    ] = "cnn-lstm,lstm,gru",
    epochs: Annotated[int, typer.Option(help="Maximum epochs for the sequence models.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    anchors: Annotated[
        bool,
        typer.Option(
            help="Fit the BG/NBD and Pareto/NBD customer-base models too (pooled and "
            "federated across the partitions)."
        ),
    ] = True,
    anchor_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Also fit the anchors federated under client DP at this epsilon per "
            "retailer (clipped, noised sums; delta 1/(10 n))."
        ),
    ] = None,
    generative: Annotated[
        bool,
        typer.Option(
            help="Fit the GAN rows too: the semi-supervised GAN classifier and GAN minority "
            "oversampling before logistic regression and gradient boosting (0/1 tasks)."
        ),
    ] = True,
    gan_epochs: Annotated[int, typer.Option(help="Epochs of each GAN.")] = 20,
    gan_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Also fit the GAN classifier with DP-SGD on its discriminator at this "
            "epsilon per customer (row ssgan-dp; delta 1/(10 n))."
        ),
    ] = None,
    encryption_key_file: EncryptionKeyFile = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "fedmarket",
    threads: Threads = None,
) -> None:
    """Classical models on aggregate features next to the sequence models, same test customers."""
    # before the data are read or a model trained
    names = check_names(task, sequence_models, count_loss)
    gan_cfg = _gan_config(gan_epochs, gan_epsilon)
    from fedmarket.threads import choose_threads

    choice = choose_threads(threads)  # a bad --threads or $FEDMARKET_THREADS: an error now
    from fedmarket.tracking import log_baselines, open_tracker, tracking_target

    target = tracking_target(tracking_uri, experiment)
    from fedmarket import baselines as bl
    from fedmarket.anchors import AnchorPrivacy
    from fedmarket.data import store
    from fedmarket.data.protect.keys import prepared_data_fernet

    if anchor_epsilon is not None:  # a bad epsilon is an error before any data is read
        AnchorPrivacy(anchor_epsilon, 1e-5)
    fernet = prepared_data_fernet(data, encryption_key_file, outside=[out])
    manifest = store.read_manifest(data)
    train_parts = store.load_partitions(data, "train", store.partition_ids(manifest), fernet)
    test = store.load_pooled(data, "test", fernet=fernet)
    tracker = open_tracker(target)
    rows: list[bl.ResultRow] = []

    def keep(row: bl.ResultRow) -> None:
        rows.append(row)
        bl.write_results(rows, out)
        bl.write_test_scores(rows, data, test, out, task)

    try:
        _classical_rows(train_parts, test, task, seed, keep)
        if generative:
            _generative_rows(train_parts, test, task, seed, gan_cfg, gan_epsilon, keep)
        if anchors:
            _anchor_rows(manifest, train_parts, test, task, anchor_epsilon, seed, keep)
        if names:
            console.print(choice.describe(), highlight=False)
        for name in names:
            keep(_sequence_row(data, name, task, count_loss, epochs, seed, fernet, choice))
    except BaseException:  # stopped or failed: say what was kept, then report as usual
        if rows:
            console.print(f"kept {len(rows)} finished model(s) in {out / 'baselines.csv'}")
        raise
    settings = {
        "task": task,
        "count-loss": count_loss,
        "sequence-models": ",".join(names),
        "anchors": anchors,
        "anchor-epsilon": anchor_epsilon,
        "generative": generative,
        "gan-epochs": gan_epochs,
        "gan-epsilon": gan_epsilon,
        "epochs": epochs,
        "seed": seed,
    }
    log_baselines(tracker, rows, settings, out=out)
    console.print(bl.render_table(rows, task))
    console.print(escape(bl.render_notes(rows)), highlight=False)
    console.print(f"wrote baselines.csv, .json and baselines_test_scores.csv in {out}")
    say_tracked(tracker, target)


def check_names(task: str, sequence_models: str, count_loss: str = "poisson") -> list[str]:
    """The sequence models of ``--sequence-models``; a clear error for an unknown task or
    model (with the closest name), or a --count-loss the task does not take (checked as the
    run setting count-loss), before anything is trained."""
    if task not in TASKS:
        raise ConfigError(
            f"--task: unknown task {task!r}; {did_you_mean(task, TASKS)}known: {', '.join(TASKS)}"
        )
    if task == RANKING_TASK:
        raise ConfigError(
            f"--task {task}: the recommender's baselines (popularity, co-occurrence kNN, ALS) "
            f"run with `fedmarket centralised --task {task} --model gru-ncf` and in every "
            f"`fedmarket simulate` run of that task"
        )
    names = [m.strip() for m in sequence_models.split(",") if m.strip()]
    for name in names:
        if name not in MODELS:
            raise ConfigError(
                f"--sequence-models: unknown model {name!r}; {did_you_mean(name, MODELS)}"
                f"known: {', '.join(MODELS)}"
            )
    from fedmarket.config import RunConfig

    RunConfig.from_mapping({"task": task, "count-loss": count_loss}, where="--count-loss")
    return names


def _gan_config(epochs: int, epsilon: float | None) -> GANConfig:
    """The GANs' settings; a bad --gan-epochs or --gan-epsilon is an error named as the
    option, before any data is read."""
    from fedmarket.checks import integer, number
    from fedmarket.generative.ssgan import GANConfig

    if epsilon is not None:
        number("--gan-epsilon", epsilon, above=0.0)
    return GANConfig(epochs=integer("--gan-epochs", epochs, at_least=1))


def _classical_rows(train_parts, test, task, seed, keep) -> None:
    from fedmarket.baselines import run_classical_baselines
    from fedmarket.data.store import SplitArrays

    with progress_bar("classical baselines", None, unit="models") as advance:
        run_classical_baselines(
            SplitArrays.concat(train_parts),
            test,
            task=task,
            seed=seed,
            progress=lambda name: advance(1, description=name),
            on_row=keep,
        )


def _generative_rows(train_parts, test, task, seed, cfg, epsilon, keep) -> None:
    """The GAN rows on the classical rows' features and customers."""
    from fedmarket.data.store import SplitArrays
    from fedmarket.generative.rows import run_generative_baselines

    with progress_bar("generative baselines", None, unit="models") as advance:
        run_generative_baselines(
            SplitArrays.concat(train_parts),
            test,
            task=task,
            seed=seed,
            cfg=cfg,
            epsilon=epsilon,
            progress=lambda name: advance(1, description=name),
            on_row=keep,
        )


def _anchor_rows(manifest, train_parts, test, task, epsilon, seed, keep) -> None:
    """BG/NBD and Pareto/NBD rows (pooled, federated, and federated under DP when
    ``epsilon`` is given), or a line saying why the data cannot have them."""
    from fedmarket.anchors import AnchorData, run_manifest_anchors

    skip = AnchorData.missing(manifest)
    if skip:
        console.print(f"customer-base anchors skipped: {skip}", highlight=False)
        return
    with progress_bar("customer-base anchors", None, unit="fits") as advance:
        run_manifest_anchors(
            manifest,
            train_parts,
            test,
            task=task,
            epsilon=epsilon,
            seed=seed,
            progress=lambda name: advance(1, description=name),
            on_row=keep,
        )


def _sequence_row(data, name, task, count_loss, epochs, seed, fernet, choice):
    """One sequence model trained centrally on the same training customers (named MODEL-nb
    under the negative-binomial count loss)."""
    from fedmarket.baselines import ResultRow
    from fedmarket.centralised import run_centralised
    from fedmarket.training import TrainConfig

    cfg = TrainConfig(
        epochs=epochs, batch_size=256, lr=3e-3, lr_schedule="cosine", patience=3, seed=seed
    )
    with progress_bar(f"training {name}", epochs, unit="epochs") as advance:
        result = run_centralised(
            data,
            model=name,
            task=task,
            train_cfg=cfg,
            hparams={"count_loss": count_loss},
            fernet=fernet,
            progress=advance,
            threads=choice,
        )
    metrics = {k: v for k, v in result.test.items() if isinstance(v, int | float)}
    notes, prediction = f"{result.epochs_run} epochs", result.test_scores[1]
    label = f"{name}-nb" if count_loss == "negative-binomial" else name
    return ResultRow(label, "sequence", metrics, result.wall_s, notes, prediction)
