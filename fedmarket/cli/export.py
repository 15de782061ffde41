"""`fedmarket export`: a run's model as an ONNX or TorchScript file with its model card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedmarket.cli.app import EncryptionKeyFile, app, friendly_errors
from fedmarket.progress import console


@app.command("export")
@friendly_errors
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (fedmarket simulate).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Directory for the model file, model_card.json and model_card.md (created; "
            "an existing non-empty one needs --overwrite)."
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="onnx (ONNX Runtime, opset 20; needs pip install 'fedmarket\\[export]') or "
            "torchscript (torch.jit.load).",
        ),
    ] = "onnx",
    model_source: Annotated[
        str,
        typer.Option(
            help="federated (the global model of the last round) or centralised (the pooled "
            "reference a simulation keeps)."
        ),
    ] = "federated",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out directory.")
    ] = False,
    encryption_key_file: EncryptionKeyFile = None,
) -> None:
    """Export the model with its normalisation (and calibration) inside: RAW features in,
    probability or expected count out; checked against PyTorch on the test customers."""
    from fedmarket.scoring.export import CARD_JSON, CARD_MD, export_run

    result = export_run(
        run_dir,
        fmt,
        out,
        source=model_source,
        overwrite=overwrite,
        key_file=encryption_key_file,
    )
    block = result.card["export"]
    console.print(
        f"Wrote {result.model_file} ({block['format']}, {result.seconds:.1f} s), "
        f"{result.out / CARD_JSON} and {result.out / CARD_MD}.\n"
        f"Input {block['input']['name']!r}: float32 {block['input']['shape']}, RAW features "
        "in the card's order (normalisation inside). Output "
        f"{block['output']['name']!r}: {block['output']['meaning']}.\n"
        f"Checked on {result.n_customers:,} test customers: max abs difference to PyTorch "
        f"{result.max_abs_diff:.2g} (tolerance {block['verification']['tolerance']:g}).",
        highlight=False,
        soft_wrap=True,
    )
