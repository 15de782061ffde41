"""`fedmarket baselines`: classical models next to the sequence models, same test customers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedmarket.cli.app import EncryptionKeyFile, app, friendly_errors
from fedmarket.progress import console, progress_bar


@app.command("baselines")
@friendly_errors
def baselines_cmd(
    data: Annotated[Path, typer.Option(help="A prepared data directory.")],
    out: Annotated[Path, typer.Option(help="Directory for baselines.csv / .json.")],
    task: Annotated[str, typer.Option(help="purchase | purchase-count.")] = "purchase",
    sequence_models: Annotated[
        str, typer.Option(help="Comma-separated sequence models to train alongside ('' for none).")
    ] = "cnn-lstm,lstm,gru",
    epochs: Annotated[int, typer.Option(help="Maximum epochs for the sequence models.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    encryption_key_file: EncryptionKeyFile = None,
) -> None:
    """Classical models on aggregate features next to the sequence models, same test customers."""
    from fedmarket.baselines import ResultRow, render_table, run_classical_baselines, write_results
    from fedmarket.centralised import run_centralised
    from fedmarket.data import store
    from fedmarket.data.protect.keys import prepared_data_fernet
    from fedmarket.training import TrainConfig

    fernet = prepared_data_fernet(data, encryption_key_file, outside=[out])
    train = store.load_pooled(data, "train", fernet=fernet)
    test = store.load_pooled(data, "test", fernet=fernet)
    with progress_bar("classical baselines", None) as advance:
        rows = run_classical_baselines(
            train, test, task=task, seed=seed, progress=lambda name: advance(1, description=name)
        )
    for name in [m.strip() for m in sequence_models.split(",") if m.strip()]:
        cfg = TrainConfig(
            epochs=epochs, batch_size=256, lr=3e-3, lr_schedule="cosine", patience=3, seed=seed
        )
        with progress_bar(f"training {name}", epochs) as advance:
            result = run_centralised(
                data, model=name, task=task, train_cfg=cfg, fernet=fernet, progress=advance
            )
        metrics = {k: v for k, v in result.test.items() if isinstance(v, int | float)}
        rows.append(
            ResultRow(
                model=name,
                family="sequence",
                metrics=metrics,
                fit_seconds=result.wall_s,
                notes=f"{result.epochs_run} epochs",
            )
        )
    console.print(render_table(rows, task))
    csv_path, json_path = write_results(rows, out)
    console.print(f"wrote {csv_path} and {json_path}")
