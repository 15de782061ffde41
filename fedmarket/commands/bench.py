"""Body of `fedmarket bench`."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.table import Table

from fedmarket.errors import ConfigError
from fedmarket.progress import console, log_to_console, progress_bar


def bench(
    out: Path,
    quick: bool,
    scale: bool,
    model: str,
    clients: int | None,
    customers: int | None,
    rounds: int | None,
    clients_per_round: int | None,
    batch_size: int,
    client_cpus: float,
    client_gpus: float | None,
    dp: bool,
) -> None:
    from fedmarket.bench import BenchConfig, run_bench, stages

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
        f"device {cfg.torch_device}, {cfg.gpus_per_client:g} GPU per client"
    )
    with progress_bar("bench", len(stages(cfg))) as advance:
        report = run_bench(cfg, advance=advance)
    console.print(_table(report))
    console.print(f"wrote {out / 'bench.json'} ({report['wall_s']:.0f} s in all)")


def _table(report: dict) -> Table:
    from fedmarket.bench.stages import steady

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
    tp = report["dp_throughput"]
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


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
