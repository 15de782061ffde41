"""`fedmarket simulate`: the Flower simulation and the matched centralised reference.

The run settings are read and checked here, before the experiment is imported: it brings
torch, flwr and Ray (seconds; tens of seconds on a busy machine), and a misspelt key or a
setting out of range should be one error line at once, not after that wait.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from fedmarket.cli.app import Command, EncryptionKeyFile, Threads, app, friendly_errors
from fedmarket.cli.tracking import Experiment, TrackingUri, say_tracked
from fedmarket.config import DEFAULTS, RunConfig, parse_overrides
from fedmarket.errors import RunStopped
from fedmarket.progress import console, log_to_console

# Set by simulate's own options, so --run-config refuses them (experiments/simulate.py).
SET_BY_OPTIONS = {
    "data-dir": "set with --data",
    "out-dir": "set with --out",
    "state-dir": "the run directory's client_state/",
}


# As a shell reports a command a signal ended (128 + the signal: 130 for Ctrl-C, 143 for
# SIGTERM), so scripts and supervisors can tell a stop from a failure.
SIGNAL_EXIT_BASE = 128


@app.command("simulate", cls=Command.reading(DEFAULTS, set_elsewhere=SET_BY_OPTIONS))
@friendly_errors
def simulate_cmd(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Prepared data (default: synthesise and prepare the default retailers once)."
        ),
    ] = None,
    run_config: Annotated[
        str,
        typer.Option(
            help="Run settings, as for flwr run (TOML values, strings quoted): "
            "\"num-server-rounds=5 dp='none'\". Every setting and its default is listed below."
        ),
    ] = "",
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/simulate-<time>).")
    ] = None,
    centralised: Annotated[
        bool,
        typer.Option(
            help="Also train the matched centralised reference and each retailer's local-only "
            "model (run setting local-only-models)."
        ),
    ] = True,
    resume: Annotated[
        Path | None, typer.Option(help="Continue a run directory from its last checkpoint.")
    ] = None,
    client_cpus: Annotated[float, typer.Option(help="CPUs per client actor.")] = 1.0,
    client_gpus: Annotated[
        float, typer.Option(help="GPU share per client actor (0.25: four per GPU).")
    ] = 0.0,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Join a running Ray cluster: 'auto' (started here with `ray start --head`) "
            "or the head's HOST:PORT; the client actors are placed over its nodes."
        ),
    ] = None,
    encryption_key_file: EncryptionKeyFile = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "fedmarket",
    threads: Threads = None,
) -> None:
    """Run the Flower simulation (Ray) and compare it with centralised training."""
    overrides = parse_overrides(run_config)
    RunConfig.from_mapping(overrides, where="--run-config")  # before the heavy imports
    from fedmarket.tracking import log_simulation, open_tracker, tracking_target

    target = tracking_target(tracking_uri, experiment)
    from fedmarket.experiments.simulate import ClientResources
    from fedmarket.experiments.simulate import simulate as run

    log_to_console(logging.INFO)
    tracker = open_tracker(target)
    try:
        result = run(
            data=data,
            run_config=overrides,
            out=out,
            centralised=centralised,
            resume=resume,
            resources=ClientResources(client_cpus, client_gpus, ray_address),
            key_file=encryption_key_file,
            threads=threads,
        )
    except RunStopped as stopped:  # asked for (Ctrl-C, SIGTERM): not an error, and not done
        console.print(f"[bold yellow]stopped:[/] {escape(str(stopped))}", highlight=False)
        raise typer.Exit(code=SIGNAL_EXIT_BASE + stopped.signum) from None
    summary = result["summary"]
    log_simulation(tracker, result["run_dir"], summary)  # a failure here is only a warning
    print_outcome(summary, result["run_dir"])
    say_tracked(tracker, target)
    for problem in result["problems"]:  # written to the run directory; the exit code says it
        console.print(f"[bold red]incomplete:[/] {escape(problem)}", highlight=False)
    if result["problems"]:
        raise typer.Exit(code=1)


# The console's table: ranking metrics, then the top-10% decision (never F1 at 0.5, which on
# a 13 % base rate reads 0 for a good model); report.html has every metric.
CONSOLE_METRICS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "lift_at_10": "lift, top 10%",
    "capture_at_10": "buyers reached, top 10%",
    "f1_at_10": "F1, top 10%",
    "rmse": "RMSE",
    "mae": "MAE",
    "spearman": "Spearman correlation",
    "tracking_error": "error of the total",
}


def print_recommend_outcome(summary: dict[str, Any], run_dir: Path) -> None:
    """A recommender run (task next-categories): its comparison with the baselines."""
    table = Table(title="recommendation on the pooled test customers (all / warm / cold)")
    for col in ("model", "HR@10", "NDCG@10", "MRR", "NDCG@10 warm", "NDCG@10 cold"):
        table.add_column(col, justify="left" if col == "model" else "right")
    rows = (summary.get("recommend") or {}).get("table") or []
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], {})[row["customers"]] = row
    for name, seg in by_model.items():
        cells = [seg["all"]["hr@10"], seg["all"]["ndcg@10"], seg["all"]["mrr"]]
        cells += [seg["warm"]["ndcg@10"], seg["cold"]["ndcg@10"]]
        table.add_row(name, *(_n(c) for c in cells))
    console.print(table)
    for problem in summary.get("problems") or []:
        console.print(f"[bold yellow]- {escape(problem)}[/]", highlight=False)
    console.print(f"run directory: {run_dir}: report.md, summary.json, rounds.csv", highlight=False)


def print_outcome(summary: dict[str, Any], run_dir: Path) -> None:
    """The comparison table, the report's three answers, and where the report is."""
    if "recommend" in summary:
        print_recommend_outcome(summary, run_dir)
        return
    from fedmarket.reporting.words import (
        anchor_sentence,
        chance_warning,
        federation_sentence,
        privacy_sentence,
        small_test_caution,
        targeting_in_short,
        test_customers,
        tests,
    )

    fed_test, cen_test = tests(summary)
    counted = test_customers(summary)
    table = Table(
        title=f"federated versus centralised (same test customers{': ' if counted else ''}"
        f"{counted}; 95% intervals in brackets)"
    )
    for col in ("metric", "federated", "centralised", "gap"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    from fedmarket.tasks import get_task

    positives = get_task(summary["config"]["task"]).positives  # churners, for churn
    for key, label in CONSOLE_METRICS.items():
        label = label.replace("buyers", positives)
        if key in fed_test or key in cen_test:
            gap = (summary.get("gap") or {}).get(key)
            table.add_row(label, _cell(fed_test, key), _cell(cen_test, key), _n(gap))
    console.print(table)
    _print_retailers(summary)
    for caution in filter(None, (chance_warning(summary), small_test_caution(summary))):
        console.print(f"[bold yellow]- {escape(caution)}[/]", highlight=False)
    for sentence in (federation_sentence, anchor_sentence, privacy_sentence, targeting_in_short):
        if said := sentence(summary):
            console.print(f"- {escape(said)}", highlight=False)
    console.print(
        f"run directory: {run_dir}: open report.html (also report.md, summary.json, "
        "rounds.csv, the figures; log.txt: the whole log, Flower's included)",
        highlight=False,
    )


def _print_retailers(summary: dict[str, Any]) -> None:
    """Per retailer, on its own test customers: local-only against federated, and who
    joining does not pay, and the personalised models' figure where the run trained them
    (report.md has a sentence per retailer)."""
    from fedmarket.reporting.retailers import not_paying_sentence, retailer_table
    from fedmarket.reporting.words import LABELS

    block = summary.get("retailers")
    if not block or "failed" in block or not block.get("rows"):
        return
    _, rows = retailer_table(block, short=True)
    label = LABELS.get(block["metric"], block["metric"])
    local = any(r["local_only"] is not None for r in block["rows"])
    table = Table(
        title=f"per retailer, each on its own test customers: {label}"
        + (" (difference: federated minus local-only, 95% interval)" if local else ""),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    names = ["retailer", "customers", "buyers"]
    names += ["local-only", "federated", "difference"] if local else ["federated"]
    for i, col in enumerate(names):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row[: len(names)])  # the personalised cells: a line of their own
    console.print(table)
    if said := not_paying_sentence(block):
        console.print(f"- {escape(said)}", highlight=False)
    if method := block.get("personal"):  # 80 columns have no room for two more in the table
        against = "local-only" if local else "federated"
        each = "; ".join(f"{row[0]} {row[-2]}, {row[-1]}" for row in rows)
        line = f"Personalised models ({method}), {label} and difference from {against}: {each}."
        console.print(f"- {escape(line)}", highlight=False)


def _n(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.4f}"


def _cell(test: dict[str, Any], key: str) -> str:
    """A metric with its interval where it has one, else the number as before."""
    from fedmarket.intervals import metric_cell

    return metric_cell(test, key, _n)
