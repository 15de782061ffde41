"""Body of `fedmarket simulate`."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.table import Table

from fedmarket.progress import console, log_to_console


def simulate(
    data: Path | None,
    run_config: str,
    out: Path | None,
    centralised: bool,
    resume: Path | None,
    client_cpus: float,
    client_gpus: float,
    ray_address: str | None,
) -> None:
    from fedmarket.simulate import ClientResources
    from fedmarket.simulate import simulate as run

    log_to_console(logging.INFO)
    result = run(
        data=data,
        run_config=run_config,
        out=out,
        centralised=centralised,
        resume=resume,
        resources=ClientResources(client_cpus, client_gpus, ray_address),
    )
    summary = result["summary"]
    fed, cen = summary["federated"], summary["centralised"] or {}
    table = Table(title="federated versus centralised (same test customers)")
    for col in ("metric", "federated", "centralised", "gap"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key in ("roc_auc", "pr_auc", "f1", "lift_at_10", "rmse", "mae"):
        f, c = (fed.get("test") or {}).get(key), (cen.get("test") or {}).get(key)
        if f is not None or c is not None:
            g = (summary.get("gap") or {}).get(key)
            table.add_row(key, _n(f), _n(c), _n(g))
    console.print(table)
    console.print(summary["privacy"])
    console.print(
        f"run directory: {result['run_dir']} (report.md, summary.json, rounds.csv, plots)"
    )


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
