"""Training throughput of every registered model: fast path vs DP-SGD, CPU and CUDA.

Usage::

    .venv/bin/python scripts/bench_train.py [--steps 200] [--quick] [--json PATH]
        [--models lstm,gru] [--devices cpu,cuda] [--threads N]

Each measurement is one ``fedmarket.training.fit`` epoch over synthetic customers
(batch 256, T=28 by default, F=11, so ``--steps`` batches), after a short warm-up fit; throughput is
samples seen / wall time of that fit, so it includes what a client really pays per call
(tensor transfer, Opacus wrapping, one epsilon computation for DP). DP uses noise 1.0 and
clip 1.0 with Poisson sampling. A benchmark, not a test: numbers depend on the machine.
On a CPU shared with other work use ``--threads 1``: torch's worker threads spin-wait for
cores that are busy elsewhere, which made steps 10-20x slower and erratic in our runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

import numpy as np
import opacus
import torch
from rich.console import Console
from rich.table import Table

from fedmarket.data.store import SplitArrays
from fedmarket.models import available_models, build_model
from fedmarket.privacy import PrivacySettings
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit

BATCH, F = 256, 11
T = 28  # the prepared default: 56 days in 2-day steps; --seq-len changes it


def synthetic(n: int, seed: int = 0) -> SplitArrays:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = (X[:, -1, 0] + X[:, -2, 1] > 0).astype(np.float32)
    customers = np.array([f"c{i}" for i in range(n)])
    return SplitArrays(X, np.zeros((n, 1), np.float32), y, y, customers)


def measure(name: str, device: str, dp: bool, steps: int, warmup: int, repeats: int) -> dict:
    task = get_task("purchase")
    privacy = PrivacySettings(noise_multiplier=1.0, max_grad_norm=1.0) if dp else None
    cfg = TrainConfig(epochs=1, batch_size=BATCH, val_fraction=0, device=device)
    fit(
        build_model(name, F, dp=dp, seed=0),
        synthetic(BATCH * warmup, 1),
        task,
        cfg,
        privacy=privacy,
    )
    data = synthetic(BATCH * steps)
    runs = [
        fit(build_model(name, F, dp=dp, seed=0), data, task, cfg, privacy=privacy)
        for _ in range(repeats)
    ]
    result = min(runs, key=lambda r: r.wall_s)  # the least disturbed run on a shared machine
    return {
        "model": name,
        "device": device,
        "path": "dp" if dp else "fast",
        "steps": result.steps,
        "samples": result.samples_seen,
        "wall_s": result.wall_s,
        "samples_per_s": result.samples_seen / result.wall_s,
        "ms_per_step": 1000 * result.wall_s / result.steps,
        "epsilon": result.epsilon,
    }


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
    args = parser.parse_args()
    global T
    T = args.seq_len
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, warmup = (30, 2) if args.quick else (args.steps, 5)
    warnings.filterwarnings("ignore", message="Optimal order is the")
    rows = []
    for device in args.devices.split(","):
        for name in args.models.split(","):
            fast = measure(name, device, False, steps, warmup, args.repeats)
            private = measure(name, device, True, steps, warmup, args.repeats)
            private["slowdown"] = fast["samples_per_s"] / private["samples_per_s"]
            rows += [fast, private]
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


if __name__ == "__main__":
    main()
