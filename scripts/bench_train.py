"""Training throughput of every registered model: fast path vs DP-SGD, CPU and CUDA.

Usage::

    .venv/bin/python scripts/bench_train.py [--steps 200] [--quick] [--json PATH]
        [--models lstm,gru] [--devices cpu,cuda] [--threads N] [--opacus] [--alternate N]

Each measurement is one ``fedmarket.training.fit`` epoch over synthetic customers
(batch 256, T=28 by default, F=11, so ``--steps`` batches), after a short warm-up fit; throughput is
samples seen / wall time of that fit, so it includes what a client really pays per call
(tensor transfer, Opacus wrapping, one epsilon computation for DP). DP uses noise 1.0 and
clip 1.0 with Poisson sampling; LSTMs use fedmarket's BatchedDPLSTM (``--opacus`` adds a
``dp-opacus`` row with Opacus' DPLSTM for comparison). A benchmark, not a test: numbers
depend on the machine.
On a CPU shared with other work use ``--threads 1``: torch's worker threads spin-wait for
cores that are busy elsewhere, which made steps 10-20x slower and erratic in our runs.
``--alternate N`` times the fast path and DP-SGD N times each, alternating (fast, DP, fast,
...), and reports the medians and the DP/fast ratio: on a shared, noisy machine compare ratios
from one such run, not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

import opacus
import torch
from rich.console import Console
from rich.table import Table

from fedmarket.experiments.bench.throughput import measure_throughput
from fedmarket.models import available_models

BATCH, F = 256, 11
T = 28  # the prepared default: 56 days in 2-day steps; --seq-len changes it


def measure(name: str, device: str, dp: bool | str, steps: int, warmup: int, repeats: int) -> dict:
    return measure_throughput(
        name, dp=dp, steps=steps, batch_size=BATCH, seq_len=T, n_features=F, device=device,
        warmup_steps=warmup, repeats=repeats,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="batches per measurement")
    parser.add_argument("--quick", action="store_true", help="30 steps, 2 warm-up")
    parser.add_argument("--models", default=",".join(available_models()))
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=1, help="keep the fastest of N runs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--seq-len", type=int, default=28, help="time steps per customer")
    parser.add_argument(
        "--opacus", action="store_true", help="also time LSTMs with Opacus' DPLSTM (dp-opacus)"
    )
    parser.add_argument(
        "--alternate", type=int, default=0, help="N alternating fast/DP runs, medians and ratio"
    )
    args = parser.parse_args()
    global T
    T = args.seq_len
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, warmup = (30, 2) if args.quick else (args.steps, 5)
    warnings.filterwarnings("ignore", message="Optimal order is the")
    if args.alternate:
        alternate(args, steps, warmup)
        return
    rows = []
    for device in args.devices.split(","):
        for name in args.models.split(","):
            fast = measure(name, device, False, steps, warmup, args.repeats)
            rows.append(fast)
            for form in (True, "opacus") if args.opacus and "lstm" in name else (True,):
                private = measure(name, device, form, steps, warmup, args.repeats)
                private["slowdown"] = fast["samples_per_s"] / private["samples_per_s"]
                rows.append(private)
    meta = {
        "batch_size": BATCH, "T": T, "F": F, "steps": steps, "repeats": args.repeats,
        "torch": torch.__version__,
        "opacus": opacus.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }  # fmt: skip
    table = Table(title=f"fit() throughput, batch {BATCH}, T={T}, F={F}, {steps} steps")
    for column in ("model", "device", "path", "samples/s", "ms/step", "DP slowdown"):
        table.add_column(
            column, justify="left" if column in ("model", "device", "path") else "right"
        )
    for r in rows:
        slow = f"{r['slowdown']:.1f}x" if "slowdown" in r else ""
        table.add_row(
            r["model"],
            r["device"],
            r["path"],
            f"{r['samples_per_s']:,.0f}",
            f"{r['ms_per_step']:.1f}",
            slow,
        )
    Console().print(table)
    Console().print(
        f"torch {meta['torch']}, opacus {meta['opacus']}, {meta['threads']} CPU threads"
    )
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")


def alternate(args: argparse.Namespace, steps: int, warmup: int) -> None:
    """Fast and DP-SGD runs interleaved, so both see the same machine load; medians of each."""
    import statistics

    table = Table(title=f"DP-SGD / fast path, batch {BATCH}, T={T}, {args.alternate} alternations")
    for column in ("model", "device", "fast samples/s", "DP samples/s", "DP share of fast"):
        table.add_column(column, justify="left" if column in ("model", "device") else "right")
    results = []
    for device in args.devices.split(","):
        for name in args.models.split(","):
            runs: dict[str, list[float]] = {"fast": [], "dp": []}
            for _ in range(args.alternate):
                for path, dp in (("fast", False), ("dp", True)):
                    r = measure(name, device, dp, steps, warmup, 1)
                    runs[path].append(r["samples_per_s"])
            fast, private = (statistics.median(runs[k]) for k in ("fast", "dp"))
            results.append({"model": name, "device": device, "runs": runs, "share": private / fast})
            table.add_row(name, device, f"{fast:,.0f}", f"{private:,.0f}", f"{private / fast:.0%}")
    Console().print(table)
    Console().print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.json:
        args.json.write_text(json.dumps({"alternate": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
