"""`fedmarket campaign-report`: contacted against held-out customers after a campaign."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from fedmarket.cli.app import app, friendly_errors
from fedmarket.progress import console

if TYPE_CHECKING:
    from fedmarket.experiments.campaign import CampaignReport


@app.command("campaign-report")
@friendly_errors
def campaign_report_cmd(
    targets: Annotated[
        Path, typer.Argument(help="The targeting list `fedmarket score` wrote (with a holdout).")
    ],
    raw: Annotated[
        Path, typer.Option(help="A later export of the same retailer, covering the campaign.")
    ],
    mapping: Annotated[
        str | None, typer.Option(help="Column mapping: a TOML file or 'kind=...,customer=...'.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day of the campaign (default: the list's as-of)."),
    ] = None,
    days: Annotated[int, typer.Option(help="Days of purchases counted from --from.")] = 7,
) -> None:
    """Purchase rate of the contacted against the held out: the campaign's realised lift."""
    from fedmarket.data.ingest.mapping import mapping_option
    from fedmarket.experiments.campaign import campaign_report

    report = campaign_report(
        targets,
        raw,
        mapping=mapping_option(mapping),  # type: ignore[arg-type]
        start=start,
        days=days,
    )
    print_report(report)


def print_report(report: CampaignReport) -> None:
    """Per retailer two lines: the rates, then the realised lift with its interval."""
    import pandas as pd

    end = report.start + pd.Timedelta(days=report.days - 1)
    console.print(
        f"[bold]purchases {report.start:%Y-%m-%d} to {end:%Y-%m-%d}[/] among the selected "
        f"customers ({report.buyers_outside:,} buyers outside the selection not compared)",
        highlight=False,
    )
    for name, o in report.outcomes.items():
        console.print(
            f"{escape(name)}: contacted {o.contacted:,}, {o.rate_contacted:.1%} bought; held out "
            f"{o.holdout:,}, {o.rate_holdout:.1%} bought; predicted {o.predicted_contacted:.1%}",
            highlight=False,
        )
        console.print(
            f"  realised lift: difference {100 * o.difference:+.1f} points (95% "
            f"{100 * o.difference_low:+.1f} to {100 * o.difference_high:+.1f}), ratio "
            f"{o.ratio:.2f}x ({o.ratio_low:.2f} to {o.ratio_high:.2f}), p = {o.p_value:.3g}",
            highlight=False,
        )
    console.print(
        "difference: Newcombe's hybrid score interval; ratio: Katz log interval; p-value: "
        "Fisher's exact test. predicted: the model's mean purchase probability of the "
        "contacted, which assumes no effect of the contact (the held out test it).",
        highlight=False,
    )
    if report.skipped:
        console.print(
            f"[yellow]note:[/] {', '.join(map(escape, report.skipped))}: no one held out or "
            "no one contacted among the selected; only in the pooled row",
            highlight=False,
        )
