"""`fedmarket bench`: the performance harness."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fedmarket.cli.app import Threads, app, friendly_errors
from fedmarket.errors import ConfigError
from fedmarket.progress import console, log_to_console, progress_bar


@app.command("bench")
@friendly_errors
def bench_cmd(
    out: Annotated[Path, typer.Option(help="Directory for bench.json, the data and the runs.")],
    quick: Annotated[
        bool, typer.Option(help="Smoke run: 4 clients x 1,024 customers, short throughput.")
    ] = False,
    scale: Annotated[
        bool,
        typer.Option(help="The scale point: 1,000 retailers x 1,000 customers, 10 per round."),
    ] = False,
    model: Annotated[str, typer.Option(help="Model to train.")] = "cnn-lstm",
    clients: Annotated[int | None, typer.Option(help="Simulated retailers (default 8).")] = None,
    customers: Annotated[
        int | None, typer.Option(help="Training customers per retailer (default 8,192).")
    ] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds (default 3).")] = None,
    clients_per_round: Annotated[
        int | None, typer.Option(help="Clients sampled per round (default: all).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size everywhere.")] = 256,
    client_cpus: Annotated[float, typer.Option(help="CPUs per client actor.")] = 1.0,
    client_gpus: Annotated[
        float | None,
        typer.Option(help="GPU share per client actor (default 0.25 with a GPU, else 0)."),
    ] = None,
    dp: Annotated[
        bool, typer.Option(help="Also measure the DP-SGD floor and federated run.")
    ] = True,
    skip: Annotated[
        str,
        typer.Option(
            help="Stages not to run, comma-separated: federated (floor against federated), "
            "throughput, startup, sweep, contention, prepare, overhead, quickstart (against a "
            "Flower quickstart-style app), pfl (against pfl-research; needs the compare extra)."
        ),
    ] = "",
    threads: Threads = None,
) -> None:
    """Performance: every figure of issue #20's goals (centralised floor against the
    federated run, DP-SGD throughput, start-up, a sweep, contended training, prepare, overhead
    per client, fedmarket against a Flower quickstart-style app and pfl-research), each beside
    its goal."""
    from fedmarket.experiments.bench import BenchConfig, run_bench, stages

    if quick and scale:
        raise ConfigError("bench: --quick and --scale are different runs; choose one")
    changes = {
        k: v
        for k, v in {
            "clients": clients,
            "customers": customers,
            "rounds": rounds,
            "clients_per_round": clients_per_round,
        }.items()
        if v is not None
    }
    changes.update(
        model=model,
        batch_size=batch_size,
        client_cpus=client_cpus,
        client_gpus=client_gpus,
        dp=dp,
        threads=threads,
        skip=tuple(name.strip() for name in skip.split(",") if name.strip()),
    )
    if quick:
        cfg = BenchConfig.quick_mode(out, **changes)
    elif scale:
        cfg = BenchConfig.scale_point(out, **changes)
    else:
        cfg = BenchConfig(out=out, **changes)
    # warnings only: the per-round log of each run would bury the progress bar
    log_to_console(
        logging.WARNING, drop_flower=("run_simulation", "fraction_evaluate is set to 0.0")
    )
    console.print(
        f"bench: {cfg.model}, {cfg.clients} clients x {cfg.customers:,} customers "
        f"({cfg.per_round} per round), {cfg.rounds} rounds, batch {cfg.batch_size}, "
        f"device {cfg.torch_device}, {cfg.gpus_per_client:g} GPU per client, "
        f"{max(1, int(cfg.client_cpus))} torch thread(s) per client"
    )
    with progress_bar("bench", len(stages(cfg)), unit="stages") as advance:
        report = run_bench(cfg, advance=advance)
    if report["federated"]:
        console.print(_table(report))
    console.print(_goals_table(report))
    console.print(f"wrote {out / 'bench.json'} ({report['wall_s']:.0f} s in all)")


def _table(report: dict) -> Table:
    from fedmarket.experiments.bench.stages import steady

    table = Table(
        title="floor against federated (steady rounds: after the first; "
        "federated / floor without the global evaluation, which the floor does not do)"
    )
    table.add_column("", no_wrap=True)
    for label in report["federated"]:
        table.add_column("no DP" if label == "nodp" else "DP-SGD", justify="right")
    feds, floors = report["federated"], report["floor"]
    rows = [
        ("floor: s per epoch", lambda k: f"{floors[k]['epoch_s']:.2f}"),
        ("  torch threads", lambda k: str(floors[k].get("threads", "?"))),
        ("federated: s per round", lambda k: f"{steady(feds[k]['per_round'], 'round_s'):.2f}"),
        ("  client compute", lambda k: f"{steady(feds[k]['per_round'], 'client_compute_s'):.2f}"),
        ("  aggregation", lambda k: f"{steady(feds[k]['per_round'], 'aggregate_s'):.3f}"),
        ("  global evaluation", lambda k: f"{steady(feds[k]['per_round'], 'server_eval_s'):.3f}"),
        ("  framework overhead", lambda k: f"{steady(feds[k]['per_round'], 'overhead_s'):.2f}"),
        ("federated / floor", lambda k: f"{report['ratios'][f'federated_over_floor_{k}']:.2f}x"),
        (
            "  with the evaluation",
            lambda k: f"{report['ratios'][f'federated_with_eval_over_floor_{k}']:.2f}x",
        ),
        ("first round s", lambda k: f"{feds[k]['per_round'][0]['round_s']:.2f}"),
        ("peak host MB (fed)", lambda k: f"{feds[k]['peak_host_mb']:.0f}"),
        ("peak GPU MB (client)", lambda k: _mb(feds[k]["client_gpu_peak_mb"])),
        ("peak GPU MB (floor)", lambda k: _mb(floors[k]["peak_gpu_mb"])),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(k) for k in feds))
    tp = report.get("dp_throughput")
    if not tp:
        return table
    table.caption = (
        f"DP-SGD throughput {tp['dp']['samples_per_s']:,.0f} samples/s against the fast "
        f"path's {tp['fast']['samples_per_s']:,.0f}: "
        f"{100 * report['ratios']['dp_over_fast_throughput']:.0f}%"
    )
    if "dp_opacus" in tp:
        table.caption += (
            f" (with Opacus' DPLSTM: {tp['dp_opacus']['samples_per_s']:,.0f} samples/s, "
            f"{100 * report['ratios']['dp_opacus_over_fast_throughput']:.0f}%)"
        )
    return table


def _goals_table(report: dict) -> Table:
    """Each goal of issue #20 beside what this run measured (load average at start/end)."""
    table = Table(
        title=f"issue #20's goals (load average {report['load_at_start']} at the start, "
        f"{report['load_at_end']} at the end)"
    )
    for name, justify in (("goal", "left"), ("target", "right"), ("measured", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("")
    for goal in report["goals"]:
        verdict = {True: "[green]met[/]", False: "[red]not met[/]", None: "skipped"}[goal["met"]]
        # escaped: a note names an extra in brackets (fedmarket[compare]), not markup
        table.add_row(goal["goal"], goal["target"], escape(goal["shown"]), verdict)
    return table


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
