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

from fedmarket.baseline_suite import check_names
from fedmarket.cli.app import EncryptionKeyFile, Threads, app, friendly_errors
from fedmarket.cli.tracking import Experiment, TrackingUri, say_tracked
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
    generative_models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated GAN rows (default: all): ssgan (aggregates), ssgan-seq "
            "(the event-feature sequence and the aggregates), gan-oversampled-logistic-"
            "regression, gan-oversampled-gradient-boosting."
        ),
    ] = None,
    gan_epochs: Annotated[int, typer.Option(help="Epochs of each GAN.")] = 20,
    gan_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Also fit the GAN classifiers with DP-SGD on their discriminator at this "
            "epsilon per customer (rows ssgan-dp, ssgan-seq-dp; delta 1/(10 n))."
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
    gan_names = _gan_names(generative_models)
    from fedmarket.threads import choose_threads

    choice = choose_threads(threads)  # a bad --threads or $FEDMARKET_THREADS: an error now
    from fedmarket.tracking import log_baselines, open_tracker, tracking_target

    target = tracking_target(tracking_uri, experiment)
    from fedmarket import baselines as bl
    from fedmarket.anchors import AnchorPrivacy
    from fedmarket.baseline_suite import SuiteData, SuiteSettings, baseline_rows
    from fedmarket.data.protect.keys import prepared_data_fernet

    if anchor_epsilon is not None:  # a bad epsilon is an error before any data is read
        AnchorPrivacy(anchor_epsilon, 1e-5)
    fernet = prepared_data_fernet(data, encryption_key_file, outside=[out])
    inputs = SuiteData.load(data, fernet)
    tracker = open_tracker(target)
    rows: list[bl.ResultRow] = []

    def keep(row: bl.ResultRow) -> None:
        rows.append(row)
        bl.write_results(rows, out)
        bl.write_test_scores(rows, data, inputs.test, out, task)

    suite = SuiteSettings(
        task=task,
        seed=seed,
        generative=generative,
        generative_models=gan_names,
        gan=gan_cfg,
        gan_epsilon=gan_epsilon,
        anchors=anchors,
        anchor_epsilon=anchor_epsilon,
        sequence_models=tuple(names),
        count_loss=count_loss,
        epochs=epochs,
    )
    try:
        baseline_rows(inputs, suite, threads=choice, bars=progress_bar, say=_say, on_row=keep)
    except BaseException:  # stopped or failed: say what was kept, then report as usual
        if rows:
            console.print(f"kept {len(rows)} finished model(s) in {out / 'baselines.csv'}")
        raise
    log_baselines(tracker, rows, suite.params(), out=out)
    console.print(bl.render_table(rows, task))
    console.print(escape(bl.render_notes(rows)), highlight=False)
    console.print(f"wrote baselines.csv, .json and baselines_test_scores.csv in {out}")
    say_tracked(tracker, target)


def _gan_config(epochs: int, epsilon: float | None) -> GANConfig:
    """The GANs' settings; a bad --gan-epochs or --gan-epsilon is an error named as the
    option, before any data is read."""
    from fedmarket.checks import integer, number
    from fedmarket.generative.ssgan import GANConfig

    if epsilon is not None:
        number("--gan-epsilon", epsilon, above=0.0)
    return GANConfig(epochs=integer("--gan-epochs", epochs, at_least=1))


def _gan_names(text: str | None) -> tuple[str, ...] | None:
    """The GAN rows of --generative-models (None: all); a bad name is an error named as the
    option, before any data is read."""
    if text is None:
        return None
    from fedmarket.errors import ConfigError
    from fedmarket.generative.rows import check_generative_models

    try:
        return tuple(check_generative_models(text))
    except ConfigError as exc:
        raise ConfigError(f"--generative-models: {exc}") from None


def _say(line: str) -> None:
    console.print(line, highlight=False)
