"""`fedmarket synth-private`: a DP generator trained federatedly, its shareable synthetic
customer table, and the table's utility, fidelity and privacy, measured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedmarket.cli.app import EncryptionKeyFile, Threads, app, friendly_errors
from fedmarket.progress import console, progress_bar


@app.command("synth-private")
@friendly_errors
def synth_private_cmd(
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            help="A run directory: its prepared data and task (output in RUN_DIR/synthetic)."
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="A prepared data directory (instead of a run directory).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default RUN_DIR/synthetic).")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="purchase | churn | churn-inactive (default: the run's, else purchase)."),
    ] = None,
    epsilon: Annotated[
        float, typer.Option(help="Target epsilon per retailer (customer-level, delta 1/(10 N)).")
    ] = 4.0,
    rounds: Annotated[int, typer.Option(help="Federated rounds of the generator.")] = 10,
    local_epochs: Annotated[int, typer.Option(help="DP-SGD epochs per retailer per round.")] = 3,
    customers: Annotated[
        int | None,
        typer.Option(help="Synthetic customers to sample (default: as many as real training)."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the generator, its DP noise and sampling.")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an earlier synthetic table in the output directory.")
    ] = False,
    encryption_key_file: EncryptionKeyFile = None,
    threads: Threads = None,
) -> None:
    """Private synthetic customers: train a DP generator federatedly, write a shareable
    table, and measure its utility, fidelity and privacy."""
    from fedmarket.experiments.synth_private import (
        REPORT_MD,
        TABLE,
        SynthSettings,
        resolve_inputs,
        synth_private,
    )
    from fedmarket.generative.dpvae import GeneratorConfig

    data_dir, out_dir, run_task = resolve_inputs(run_dir, data, out, overwrite=overwrite)
    settings = SynthSettings(
        task=task or run_task or "purchase",
        epsilon=epsilon,
        customers=customers,
        seed=seed,
        generator=GeneratorConfig(rounds=rounds, local_epochs=local_epochs),
    )
    from fedmarket.threads import apply_threads

    apply_threads(threads)
    with progress_bar("DP generator (federated)", rounds, unit="rounds") as advance:
        report = synth_private(
            data_dir, out_dir, settings, key_file=encryption_key_file, advance=advance
        )
    priv, utility = report["privacy"], report["utility"]
    for name, entry in utility.items():
        if "skipped" in entry:
            console.print(f"{name}: skipped ({entry['skipped']})")
            continue
        console.print(
            f"{name}: test ROC-AUC trained on real {entry['real']['roc_auc']:.3f}, "
            f"on synthetic {entry['synthetic']['roc_auc']:.3f}",
            highlight=False,
        )
    console.print(
        f"ε per retailer ≤ {priv['epsilon_max']:.3f} (δ = {priv['delta']:.3g}); membership "
        f"attack (DCR) ROC-AUC {priv['audit']['roc_auc']:.3f}. Wrote {out_dir / TABLE} and "
        f"{out_dir / REPORT_MD}",
        highlight=False,
    )
