"""`fedmarket contribution`: each retailer's leave-one-out or Shapley value to a finished run."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fedmarket.cli.app import EncryptionKeyFile, Threads, app, friendly_errors
from fedmarket.progress import console, log_to_console, progress_bar


@app.command("contribution")
@friendly_errors
def contribution_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory to value.")],
    method: Annotated[
        str, typer.Option(help="loo (leave-one-out: N runs) or shapley (Monte-Carlo).")
    ] = "loo",
    permutations: Annotated[int, typer.Option(help="Shapley: permutations to sample.")] = 20,
    tolerance: Annotated[
        float,
        typer.Option(help="Shapley: truncate a permutation within this fraction of v(all)."),
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Shapley: seed of the permutations.")] = 0,
    max_runs: Annotated[
        int | None, typer.Option(help="Train at most this many coalitions in this call.")
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(help="Rounds of each coalition run (default: the run's; a deviation)."),
    ] = None,
    encryption_key_file: EncryptionKeyFile = None,
    threads: Threads = None,
) -> None:
    """Value each retailer of a run: its effect on the run's test metric, by retraining
    coalitions with the run's own settings (DP included). Re-running it resumes."""
    from fedmarket.experiments.contribution import ContributionConfig, make_plan, run_contribution

    log_to_console(logging.WARNING, drop_flower=("run_simulation",))
    cfg = ContributionConfig(
        run_dir, method, permutations, tolerance, seed, max_runs, rounds,
        encryption_key_file, threads,
    )  # fmt: skip
    plan = make_plan(cfg)
    _say_cost(plan)
    total = plan.needed if max_runs is None else min(plan.needed, max_runs)
    with progress_bar("coalitions", total, unit="runs") as advance:
        result = run_contribution(cfg, plan=plan, advance=advance)
    _show(result)


def _say_cost(plan: Any) -> None:
    cfg = plan.cfg
    bound = "at most " if cfg.method == "shapley" else ""
    eta = "" if plan.estimate_s is None else f", about {plan.estimate_s / 60:.1f} min"
    console.print(
        f"{cfg.method}: {len(plan.players)} retailers, {bound}{plan.needed} federated runs "
        f"to train ({len(plan.known)} recorded before) of {plan.rounds} rounds each{eta} "
        "(from the run's own time per round)."
    )
    if plan.rounds != plan.run.num_server_rounds:
        console.print(
            f"--rounds {plan.rounds}: a deviation from the run's {plan.run.num_server_rounds}."
        )
    if cfg.max_runs is not None and plan.needed > cfg.max_runs:
        console.print(
            f"--max-runs {cfg.max_runs} caps this call below the {plan.needed} runs "
            "needed: the estimate will be partial; run again to continue."
        )


def _show(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['method']}: contribution to {result['metric']}")
    for column in ("retailer", "value", "SE", "run ε", "total ε"):
        table.add_column(column, justify="left" if column == "retailer" else "right")
    privacy = result["privacy"]["retailers"]
    for pid, entry in result["retailers"].items():
        spent = privacy.get(pid, {})
        table.add_row(
            entry["name"], _n(entry["value"]), _n(entry["se"]),
            _n(spent.get("run_epsilon"), ".3f"), _n(spent.get("total_epsilon"), ".3f"),
        )  # fmt: skip
    console.print(table)
    console.print(result["privacy"]["statement"])
    if result["stopped_at_max_runs"]:
        console.print(f"stopped at --max-runs {result['max_runs']}: run again to continue.")
    console.print(f"Wrote {result['paths']['md']}, {result['paths']['json']}")


def _n(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, int | float) and math.isfinite(value) else "-"
