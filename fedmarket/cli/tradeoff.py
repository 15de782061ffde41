"""`fedmarket tradeoff` (and scripts/privacy_tradeoff.py): the privacy/accuracy sweep."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedmarket.cli.app import Command, EncryptionKeyFile, Threads, app, friendly_errors
from fedmarket.cli.tracking import Experiment, TrackingUri, say_tracked
from fedmarket.config import DEFAULTS, RunConfig, parse_overrides
from fedmarket.errors import ConfigError
from fedmarket.progress import console, log_to_console, progress_bar

# The run settings the sweep sets for each point, and the option that chooses them
# (experiments/tradeoff/points.py RESERVED_KEYS, which a test keeps equal to these keys;
# the experiment is not imported here, as it brings torch).
SET_BY_THE_SWEEP = {
    "dp": "set by each setting (--settings)",
    "target-epsilon": "set by the sweep (--epsilons)",
    "noise-multiplier": "set by the sweep",
    "central-noise-multiplier": "calibrated to each epsilon",
    "seed": "set by the sweep (--seeds)",
    "num-server-rounds": "set by the sweep (--rounds)",
    "data-dir": "set with --data",
    "out-dir": "a point's directory under --out",
    "state-dir": "a point's own",
}


@app.command("tradeoff", cls=Command.reading(DEFAULTS, set_elsewhere=SET_BY_THE_SWEEP))
@friendly_errors
def tradeoff_cmd(
    out: Annotated[
        Path,
        typer.Option(
            help="Sweep directory (records, points, csv, md, png); re-running it resumes."
        ),
    ],
    quick: Annotated[
        bool,
        typer.Option(
            help="Smoke run: epsilon 1 and 8 + no DP, one seed, two "
            "rounds, 3 small synthetic retailers."
        ),
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Prepared data (default: the default retailers; with --quick, a small set)."
        ),
    ] = None,
    epsilons: Annotated[
        str | None,
        typer.Option(
            help="Target epsilons, comma-separated (default 0.5,1,2,4,8,16; no DP is always added)."
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Seeds, comma-separated (default 0,1,2).")
    ] = None,
    settings: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of "
            "federated-client-dp, federated-central-dp, "
            "centralised-dp."
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            help="Federated rounds (centralised: as many epochs x local-epochs); default 3."
        ),
    ] = None,
    run_config: Annotated[
        str,
        typer.Option(
            help="Run settings for every point, as for flwr run (TOML values, strings quoted), "
            "e.g. \"model='lstm' local-epochs=2\"; listed below."
        ),
    ] = "",
    audit: Annotated[
        bool, typer.Option(help="Run the membership-inference audit on every point.")
    ] = True,
    encryption_key_file: EncryptionKeyFile = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "fedmarket",
    threads: Threads = None,
) -> None:
    """Sweep epsilon for federated (client or central DP) and centralised DP training."""
    where = "tradeoff --run-config"  # checked before the experiment's heavy imports
    RunConfig.from_mapping(parse_overrides(run_config, where=where), where=where)
    from fedmarket.tracking import open_tracker, tracking_target

    target = tracking_target(tracking_uri, experiment)
    from fedmarket.experiments.tradeoff import SweepConfig, run_sweep, sweep_runs, track_sweep

    changes: dict = {
        "data": data,
        "run_config": run_config,
        "audit": audit,
        "key_file": encryption_key_file,
        "threads": threads,
    }
    if epsilons is not None:
        changes["epsilons"] = tuple(_numbers(epsilons, "--epsilons", float))
    if seeds is not None:
        changes["seeds"] = tuple(_numbers(seeds, "--seeds", int))
    if settings is not None:
        changes["settings"] = tuple(s.strip() for s in settings.split(",") if s.strip())
    if rounds is not None:
        changes["rounds"] = rounds
    cfg = SweepConfig.quick_mode(out, **changes) if quick else SweepConfig(out=out, **changes)
    # warnings only, so the progress bar stays readable; Flower's notice that run_simulation
    # is deprecated would otherwise repeat for every federated point
    log_to_console(logging.WARNING, drop_flower=("run_simulation",))
    runs, tracker = sweep_runs(cfg), open_tracker(target)
    console.print(
        f"trade-off sweep: {len(runs)} runs ({len(cfg.settings)} settings x "
        f"{len(cfg.epsilons)} epsilons + no DP, seeds {list(cfg.seeds)}, "
        f"{cfg.rounds} rounds) into {out}"
    )
    with progress_bar("trade-off sweep", len(runs), unit="runs") as advance:
        result = run_sweep(cfg, advance=advance)
    track_sweep(tracker, cfg, result)
    console.print(_table(result.paths["csv"]))
    console.print(
        f"{result.skipped} run(s) were already done; wrote "
        + ", ".join(str(p) for p in result.paths.values())
    )
    say_tracked(tracker, target)
    for record in result.failed:
        console.print(
            f"[bold red]failed:[/] {record['key']}: {record['error']} "
            f"(traceback in {out / 'records' / (record['key'] + '.json')})",
            highlight=False,
        )
    if result.failed:
        raise typer.Exit(code=1)


def _table(csv_path: Path) -> Table:
    """The summary, narrow enough for a terminal; tradeoff.md has every column."""
    from fedmarket.experiments.tradeoff import load_table, summarise

    summary = summarise(load_table(csv_path))
    table = Table(
        title="privacy/accuracy trade-off (means over the n seeds; MIA: membership inference "
        "attack)"
    )
    table.add_column("setting", no_wrap=True, min_width=11)
    for col in ("target", "ε spent", "ROC", "PR", "lift10", "MIA AUC", "MIA ε≥", "n"):
        table.add_column(col, justify="right")
    short = {
        "federated-client-dp": "fed/client",
        "federated-central-dp": "fed/central",
        "centralised-dp": "centralised",
    }
    for _, r in summary.iterrows():
        target = "no DP" if r["target_epsilon"] == float("inf") else f"{r['target_epsilon']:g}"
        table.add_row(
            short.get(r["setting"], r["setting"]),
            target,
            *(
                _n(r[f"{k}_mean"], d)
                for k, d in (
                    ("epsilon", 3),
                    ("roc_auc", 4),
                    ("pr_auc", 4),
                    ("lift_at_10", 3),
                    ("attack_auc", 4),
                    ("attack_epsilon_lb", 3),
                )
            ),
            str(int(r["n"])),
        )
    return table


def _n(value: float, digits: int) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def _numbers(text: str, option: str, kind: type) -> list:
    try:
        return [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got {text!r}") from None
