"""`fedmarket centralised`: one sequence model on the pooled data (the reference)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedmarket.cli.app import EncryptionKeyFile, app, friendly_errors
from fedmarket.progress import console, progress_bar


@app.command("centralised")
@friendly_errors
def centralised_cmd(
    data: Annotated[Path, typer.Option(help="A prepared data directory.")],
    out: Annotated[Path, typer.Option(help="Directory for metrics.json and the plots.")],
    model: Annotated[str, typer.Option(help="cnn-lstm | lstm | gru | rnn.")] = "cnn-lstm",
    task: Annotated[str, typer.Option(help="purchase | purchase-count.")] = "purchase",
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 20,
    batch_size: Annotated[
        int, typer.Option(help="Batch size (expected batch size under DP).")
    ] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    lr_schedule: Annotated[str, typer.Option(help="cosine | step | none.")] = "cosine",
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience in epochs (none: off).")
    ] = 3,
    epsilon: Annotated[float | None, typer.Option(help="Target epsilon (DP-SGD).")] = None,
    noise_multiplier: Annotated[
        float | None, typer.Option(help="Fixed noise multiplier (DP-SGD).")
    ] = None,
    max_grad_norm: Annotated[
        float, typer.Option(help="Per-customer clipping norm under DP.")
    ] = 1.0,
    delta: Annotated[float | None, typer.Option(help="Delta (default 1/(10 n)).")] = None,
    accountant: Annotated[str, typer.Option(help="rdp | prv.")] = "rdp",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    encryption_key_file: EncryptionKeyFile = None,
) -> None:
    """Train one sequence model on the pooled training data of all partitions (the reference)."""
    from fedmarket.centralised import run_centralised, write_centralised
    from fedmarket.data.protect.keys import prepared_data_fernet
    from fedmarket.training import TrainConfig

    fernet = prepared_data_fernet(data, encryption_key_file, outside=[out])
    privacy = _privacy(epsilon, noise_multiplier, max_grad_norm, delta, accountant)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        patience=patience,
        seed=seed,
    )
    with progress_bar(f"training {model}", epochs) as advance:
        result = run_centralised(
            data,
            model=model,
            task=task,
            train_cfg=cfg,
            privacy=privacy,
            fernet=fernet,
            progress=advance,
        )
    paths = write_centralised(result, out)
    table = Table(title=f"{model} / {task}: test metrics ({result.n_test:,} customers)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.test.items():
        if isinstance(value, int | float):
            table.add_row(key, f"{value:.4f}")
    console.print(table)
    if result.epsilon is not None:
        console.print(
            f"DP-SGD: epsilon = {result.epsilon:.3f}, delta = {result.delta:.3g}, "
            f"noise multiplier = {result.noise_multiplier:.3f}, clip = {max_grad_norm}"
        )
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


def _privacy(epsilon, noise_multiplier, max_grad_norm, delta, accountant):
    from fedmarket.privacy.config import PrivacySettings

    if epsilon is None and noise_multiplier is None:
        return None
    return PrivacySettings(
        target_epsilon=epsilon,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        delta=delta,
        accountant=accountant,
    )
