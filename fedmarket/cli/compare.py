"""`fedmarket compare`: two results on the same test customers, paired difference and interval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fedmarket.cli.app import app, friendly_errors
from fedmarket.errors import ConfigError
from fedmarket.names import TASKS
from fedmarket.progress import console

if TYPE_CHECKING:
    from fedmarket.experiments.compare import Comparison, Side

KIND_HELP = (
    "federated | centralised | local-only (each retailer's own model) | personal (each "
    "retailer's personalised model) | bg-nbd (a simulate "
    "run's anchor) | a baseline model (e.g. "
    "logistic-regression); default: "
    "federated, else centralised, else the directory's only result."
)


@app.command("compare")
@friendly_errors
def compare_cmd(
    run_a: Annotated[
        Path, typer.Argument(help="Directory of result A (simulate, centralised or baselines).")
    ],
    run_b: Annotated[Path, typer.Argument(help="Directory of result B (may be RUN_A).")],
    a: Annotated[str | None, typer.Option("--a", help=f"Result A in RUN_A: {KIND_HELP}")] = None,
    b: Annotated[str | None, typer.Option("--b", help=f"Result B in RUN_B: {KIND_HELP}")] = None,
    metric: Annotated[
        str,
        typer.Option(
            help="Comma-separated: roc_auc, pr_auc, lift_at_10, rmse, mae, pearson; default "
            "roc_auc,pr_auc,lift_at_10 (purchase) or rmse,pearson,lift_at_10 (counts)."
        ),
    ] = "",
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resamples.")] = 0,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples (every metric but roc_auc).")
    ] = 2000,
    out: Annotated[Path | None, typer.Option(help="Also write the comparison as JSON.")] = None,
) -> None:
    """Paired difference of two results on the same test customers, with its 95% interval."""
    from fedmarket.checks import check_writable
    from fedmarket.experiments.compare import compare_runs
    from fedmarket.rundir import write_json

    if out is not None:  # before the bootstrap, not after it
        check_writable(out.parent, "--out")
        if out.is_dir():
            raise ConfigError(f"--out {out}: a directory; give a file name, e.g. {out}/cmp.json")
    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    result = compare_runs(
        run_a, run_b, kind_a=a, kind_b=b, metrics=metrics, seed=seed, resamples=bootstrap
    )
    console.print(table(result))
    from fedmarket.tasks import get_task

    who = get_task(result.task).positives if result.task in TASKS else "buyers"  # churners
    console.print(
        f"{result.n:,} test customers in both, {result.positives:,} {who} and "
        f"{result.negatives:,} non-{who}; A - B {_methods(result)}.",
        highlight=False,
    )
    if result.small_test:
        console.print(
            f"[yellow]warning:[/] fewer than 30 {who} or non-{who} "
            f"({result.positives} and {result.negatives}): the intervals are rough; compare "
            "on more test customers for a firm answer",
            highlight=False,
        )
    if out is not None:
        write_json(out, result.to_dict())
        console.print(f"wrote {out}", highlight=False)


def table(result: Comparison) -> Table:
    a, b = (_name(side) for side in (result.a, result.b))
    title = f"{result.task}: A = {a} ({result.a.run}), B = {b} ({result.b.run})"
    grid = Table(title=title)
    for header in ("metric", "A", "B", "A - B", "95% interval", "p-value"):
        grid.add_column(header, justify="left" if header == "metric" else "right")
    for r in result.results:
        grid.add_row(
            r.metric,
            f"{r.a:.4f}",
            f"{r.b:.4f}",
            f"{r.difference:+.4f}",
            f"{r.low:+.4f} to {r.high:+.4f}",
            f"{r.p_value:.3g}",
        )
    return grid


def _name(side: Side) -> str:
    """``federated cnn-lstm``, ``centralised lstm``, or a baseline's name alone."""
    model = side.predictions.model
    return side.kind if side.kind == model else f"{side.kind} {model}"


def _methods(result) -> str:
    """How the differences were computed, naming only the methods used."""
    delong = [r.metric for r in result.results if r.method == "delong"]
    boot = f"a paired bootstrap ({result.resamples} resamples, seed {result.seed})"
    if not delong:
        return f"by {boot}"
    if len(delong) == len(result.results):
        return "by DeLong's paired test"
    return f"({', '.join(delong)} by DeLong's paired test, the others by {boot})"
