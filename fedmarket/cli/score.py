"""`fedmarket score`: a retailer's customers scored with a run's model into a targeting list."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fedmarket.cli.app import app, friendly_errors
from fedmarket.errors import ConfigError
from fedmarket.names import CHURN_TASKS
from fedmarket.progress import console, progress_bar

if TYPE_CHECKING:
    from fedmarket.experiments.score import ScoreResult


@app.command("score")
@friendly_errors
def score_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (simulate).")],
    out: Annotated[
        Path,
        typer.Option(help="The targeting list: .csv or .parquet (raw ids: keep it here)."),
    ],
    raw: Annotated[
        Path | None,
        typer.Option(help="The retailer's event export (a file or directory, as data prepare)."),
    ] = None,
    mapping: Annotated[
        str | None, typer.Option(help="Column mapping: a TOML file or 'kind=...,customer=...'.")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Scoring date YYYY-MM-DD (default: the day after the last event)."),
    ] = None,
    model_source: Annotated[str, typer.Option(help="federated | centralised.")] = "federated",
    top: Annotated[str | None, typer.Option(help="Contact the top share, e.g. 10% or 0.1.")] = None,
    top_n: Annotated[int | None, typer.Option(help="Contact the top N customers.")] = None,
    margin: Annotated[
        float | None,
        typer.Option(help="Margin per purchase: alone, contact where p x margin > cost."),
    ] = None,
    contact_cost: Annotated[float, typer.Option(help="Cost of one contact.")] = 0.0,
    holdout_fraction: Annotated[
        float, typer.Option(help="Share of the selected held out as a control group.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of ties and of the control group.")] = 0,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv | parquet (default: --out's suffix).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Score a prepared partition's customers instead.")
    ] = None,
    partition: Annotated[int | None, typer.Option(help="The partition of --data.")] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(help="Pseudonym key: with --data and --raw, resolve the raw ids here."),
    ] = None,
    calibrate: Annotated[
        str | None,
        typer.Option(
            help="platt | isotonic, fitted here on the retailer's own labelled customers "
            "(--data's training split, or the export one horizon back); they never leave."
        ),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(help="Recommendation run: categories per customer (default 10)."),
    ] = None,
    exclude_bought: Annotated[
        bool,
        typer.Option(help="Recommendation run: leave out categories bought in the window."),
    ] = False,
) -> None:
    """Score a retailer's customers with a run's model and write its targeting list (a
    recommendation run: each customer's top-k categories)."""
    from fedmarket.data.ingest.mapping import mapping_option
    from fedmarket.scoring.rec_model import is_ranking_run

    if is_ranking_run(run_dir):
        from fedmarket.cli.score_recommend import check_recommend_options, score_recommendations

        check_recommend_options(locals())
        score_recommendations(
            run_dir,
            out,
            raw,  # type: ignore[arg-type]  (checked)
            mapping=mapping_option(mapping),
            as_of=as_of,
            source=model_source,
            fmt=fmt,
            top_k=10 if top_k is None else top_k,
            exclude_bought=exclude_bought,
        )
        return
    if top_k is not None or exclude_bought:
        raise ConfigError(
            "--top-k and --exclude-bought rank categories: they apply to a recommendation run "
            "(task next-categories); this run scores customers (use --top, --top-n, --margin)"
        )
    from fedmarket.experiments.score import ScoreOptions, check_options, run_score
    from fedmarket.scoring.run_model import load_run_model
    from fedmarket.scoring.targeting import SelectionRule

    rule = SelectionRule(
        top_fraction=parse_share(top),
        top_n=top_n,
        margin=margin,
        contact_cost=contact_cost,
    )
    opts = ScoreOptions(
        run_dir=run_dir,
        out=out,
        rule=rule,
        raw=raw,
        mapping=mapping_option(mapping),  # type: ignore[arg-type]
        as_of=as_of,
        source=model_source,
        holdout_fraction=holdout_fraction,
        seed=seed,
        fmt=fmt,
        calibrate=calibrate,
        data=data,
        partition=partition,
        pseudonym_key=_key(key_file, data, raw),
    )
    check_options(opts)  # and the run's model: errors before the progress bar
    run = load_run_model(run_dir, model_source)
    with progress_bar("featurising events", None, unit="events") as advance:
        result = run_score(opts, advance, run=run)
    print_score(result, rule.describe())


def parse_share(text: str | None) -> float | None:
    """``--top``: ``10%`` or ``0.1``; checked for (0, 1] by the rule."""
    if text is None:
        return None
    value = text.strip()
    try:
        share = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ConfigError(f"--top {text!r}: not a share; use e.g. --top 10% or --top 0.1") from None
    if not math.isfinite(share) or not 0 < share <= 1:
        hint = f"; for {value}% write --top {value}%" if 1 < share <= 100 else ""
        raise ConfigError(
            f"--top {text}: the share of customers must lie in (0, 100%]: a percentage with %"
            f" (10%) or a fraction (0.1){hint}"
        )
    return share


def _key(key_file: Path | None, data: Path | None, raw: Path | None) -> bytes | None:
    """The pseudonym key, only when the ids are to be resolved (--data with --raw)."""
    if data is None or raw is None:
        if key_file is not None:
            raise ConfigError("--key-file resolves pseudonyms of --data; give --data and --raw")
        return None
    from fedmarket.data.protect import keys

    found = key_file
    if found is None and keys.default_key_path().is_file():
        found = keys.default_key_path()
    try:
        return keys.load_key(found, keys.PSEUDONYM_KEY_ENV, purpose="pseudonym key")
    except ConfigError:
        if key_file is not None:
            raise
        return None  # no key here: the list carries pseudonyms, and says so


def print_score(result: ScoreResult, rule: str) -> None:
    grid = Table(title=f"Targeting list: {rule}")
    profit = any(s.expected_profit is not None for s in result.summaries.values())
    who = "churners" if result.task in CHURN_TASKS else "buyers"  # the positive class
    headers = ["retailer", "scored", "contacted", "held out", f"exp. {who}", "lift"]
    for header in headers + (["exp. profit"] if profit else []):
        left = header == "retailer"
        grid.add_column(header, justify="left" if left else "right", no_wrap=left)
    for name, s in result.summaries.items():
        row = [name, f"{s.customers:,}", f"{s.contacted:,}"]
        row += [f"{s.holdout:,}", f"{s.expected_buyers:,.1f}", f"{s.expected_lift:.2f}x"]
        if profit:
            row.append(f"{s.expected_profit:,.2f}" if s.expected_profit is not None else "")
        grid.add_row(*map(escape, row))
    console.print(grid)
    dates = sorted(set(result.as_of.values()))
    console.print(f"scored as of {', '.join(dates)} (features up to that midnight)")
    console.print(
        f"lift: the contacted's mean probability over everyone's (random contact); expected "
        f"{who}: the sum of their probabilities (the model's, not an outcome)",
        highlight=False,
    )
    console.print(
        f"wrote {result.rows:,} rows to {escape(str(result.out))} ({result.fmt}); the file "
        f"carries {_ids(result.id_column)}: keep it at the retailer",
        highlight=False,
    )
    print_calibration(result)


def _ids(column: str) -> str:
    if column == "customer_id":
        return "the retailer's own customer ids (customer_id)"
    return (
        "pseudonyms (customer_pseudonym), not raw ids: give --raw and the pseudonym key to "
        "resolve them"
    )


def print_calibration(result: ScoreResult) -> None:
    check = result.calibration
    if check is None:
        console.print(
            "[yellow]warning:[/] the run kept no per-customer test predictions; the expected "
            "counts and profit take the probabilities at their word, unchecked",
            highlight=False,
        )
        return
    after = (
        f", {check.after.ece:.3f} after --calibrate {result.calibrator.method}"
        if check.after is not None and result.calibrator is not None
        else ""
    )
    console.print(
        f"calibration on the run's {check.n_test:,} test customers: ECE {check.before.ece:.3f}"
        f"{after}; reliability plot {escape(str(result.reliability_plot))}",
        highlight=False,
    )
    if check.high:
        console.print(
            f"[yellow]warning:[/] ECE {check.ece:.3f} > 0.05: the probabilities are off, and "
            "the expected counts, lift and profit with them; calibrate at the retailer, e.g. "
            "--calibrate isotonic (fitted on its own labelled customers, which never leave)",
            highlight=False,
        )
