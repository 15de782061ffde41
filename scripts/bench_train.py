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
...), by the wall clock and by the process's CPU time, and reports the medians and the DP/fast
ratio: on a shared, noisy machine compare ratios from one such run (the CPU-time ones are the
steadier), not absolute figures.
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


def timed_fit(name: str, device: str, dp: bool, steps: int, warmup: int) -> dict:
    """One ``fit`` epoch after a warm-up fit, as ``measure_throughput`` does, timed by the wall
    clock and by this process's CPU time: with one thread the CPU time is the work done, which
    other jobs on a shared machine disturb far less than the wall time."""
    import time

    import numpy as np

    from fedmarket.experiments.bench.workload import random_split
    from fedmarket.models import build_model
    from fedmarket.privacy import PrivacySettings
    from fedmarket.tasks import get_task
    from fedmarket.training import TrainConfig, fit

    task = get_task("purchase")
    privacy = PrivacySettings(noise_multiplier=1.0, max_grad_norm=1.0) if dp else None
    cfg = TrainConfig(epochs=1, batch_size=BATCH, val_fraction=0, device=device)
    rng = np.random.default_rng(0)
    warm = random_split(BATCH * warmup, T, F, rng)
    fit(build_model(name, F, dp=dp, seed=0), warm, task, cfg, privacy=privacy)
    data = random_split(BATCH * steps, T, F, rng)
    model = build_model(name, F, dp=dp, seed=0)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fit(model, data, task, cfg, privacy=privacy)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": result.samples_seen / wall, "cpu": result.samples_seen / cpu}


def alternate(args: argparse.Namespace, steps: int, warmup: int) -> None:
    """Fast and DP-SGD runs interleaved, so both see the same machine load; medians of each."""
    import statistics

    table = Table(title=f"DP-SGD / fast path, batch {BATCH}, T={T}, {args.alternate} alternations")
    for column in ("model", "device", "clock", "fast samples/s", "DP samples/s", "DP/fast"):
        table.add_column(column, justify="left" if column in ("model", "device") else "right")
    results = []
    for device in args.devices.split(","):
        for name in args.models.split(","):
            runs: dict[str, list[dict]] = {"fast": [], "dp": []}
            for _ in range(args.alternate):
                for path, dp in (("fast", False), ("dp", True)):
                    runs[path].append(timed_fit(name, device, dp, steps, warmup))
            row = {"model": name, "device": device, "runs": runs}
            for clock in ("cpu", "wall"):
                fast, private = (statistics.median(r[clock] for r in runs[k]) for k in runs)
                row[f"share_{clock}"] = private / fast
                table.add_row(
                    name, device, clock, f"{fast:,.0f}", f"{private:,.0f}", f"{private / fast:.0%}"
                )
            results.append(row)
    Console().print(table)
    Console().print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.json:
        args.json.write_text(json.dumps({"alternate": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
