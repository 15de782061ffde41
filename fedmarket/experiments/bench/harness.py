"""`fedmarket bench`: every figure issue #20's goals are stated in, in one report.

The ratios are measured side by side in one run on one machine: federated steady-state
round time over the floor's epoch time (same customers, model, batch and device), DP-SGD
samples per second over the fast path's, and the stages of `goal_stages` (start-up, a
sweep's wall over its training, contended over idle training, prepare over the raw read,
overhead per client per round). Each is judged against its goal (`goals`); any stage can be
skipped.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from fedmarket.experiments.bench.config import BenchConfig
from fedmarket.experiments.bench.fresh import load_average
from fedmarket.experiments.bench.goal_stages import GOAL_STAGES, goal_notes, goal_ratios
from fedmarket.experiments.bench.goals import judge
from fedmarket.experiments.bench.stages import federated, floor, steady
from fedmarket.experiments.bench.throughput import measure_throughput
from fedmarket.experiments.bench.workload import ensure_workload
from fedmarket.threads import apply_threads, usable_cores

Advance = Callable[..., None]


def stages(cfg: BenchConfig) -> list[str]:
    """The progress steps, in order."""
    names = []
    if cfg.runs("federated"):
        names += ["floor", "federated"] + (["floor-dp", "federated-dp"] if cfg.dp else [])
    if cfg.runs("throughput"):
        names.append("throughput")
    return [*names, *(name for name in GOAL_STAGES if cfg.runs(name))]


def run_bench(cfg: BenchConfig, advance: Advance | None = None) -> dict[str, Any]:
    """Every stage in turn; writes ``cfg.out/bench.json`` and returns what it wrote."""
    advance = advance or (lambda n=1, description=None: None)
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    apply_threads(cfg.threads)  # machine() reports them; the floor chooses again when it starts
    data_dir = ensure_workload(
        cfg.out / "data",
        clients=cfg.clients,
        customers=cfg.customers,
        seq_len=cfg.seq_len,
        n_features=cfg.n_features,
        seed=cfg.seed,
    )
    report: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["fedmarket", *sys.argv[1:]]) if sys.argv else None,
        "config": cfg.to_json(),
        "load_at_start": load_average(),
        "floor": {},
        "federated": {},
    }
    for dp in ((False, True) if cfg.dp else (False,)) if cfg.runs("federated") else ():
        label = "dp" if dp else "nodp"
        advance(0, description=f"floor ({label})")
        report["floor"][label] = floor(cfg, data_dir, dp=dp)
        advance(1)
        advance(0, description=f"federated ({label})")
        run_dir = cfg.out / f"run-{label}"
        if run_dir.exists():  # a previous bench's run: simulate would refuse to overwrite it
            shutil.rmtree(run_dir)
        report["federated"][label] = federated(cfg, data_dir, run_dir, dp=dp)
        advance(1)
    if cfg.runs("throughput"):
        advance(0, description="DP-SGD throughput")
        report["dp_throughput"] = throughput(cfg)
        advance(1)
    for name, stage in GOAL_STAGES.items():
        if cfg.runs(name):
            advance(0, description=name)
            report[name] = stage(cfg, data_dir)
            advance(1)
    report["ratios"] = ratios(report)
    report["goals"] = judge(report["ratios"], goal_notes(report))
    report["load_at_end"] = load_average()
    report["wall_s"] = time.perf_counter() - started
    (cfg.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def throughput(cfg: BenchConfig) -> dict[str, Any]:
    common = {
        "steps": cfg.throughput_steps,
        "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "n_features": cfg.n_features,
        "device": cfg.torch_device,
        "noise_multiplier": cfg.noise_multiplier,
        "max_grad_norm": cfg.max_grad_norm,
    }
    out = {
        "fast": measure_throughput(cfg.model, dp=False, **common),
        "dp": measure_throughput(cfg.model, dp=True, **common),
    }
    if "lstm" in cfg.model:  # what the batched LSTM gains over Opacus' DPLSTM, side by side
        out["dp_opacus"] = measure_throughput(cfg.model, dp="opacus", **common)
    return out


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """The goals' figures: federated/floor (steady rounds), DP/fast throughput and those of
    the stages that ran."""
    out: dict[str, Any] = {}
    for label, fed in report.get("federated", {}).items():
        floor_epoch = report["floor"][label]["epoch_s"]
        rounds = fed["per_round"]
        # the floor evaluates nothing, so its epoch is set against the round without the
        # global evaluation; the ratio with it is reported too
        out[f"federated_over_floor_{label}"] = steady(rounds, "train_round_s") / floor_epoch
        out[f"federated_with_eval_over_floor_{label}"] = steady(rounds, "round_s") / floor_epoch
        out[f"federated_overhead_share_{label}"] = steady(rounds, "overhead_s") / steady(
            rounds, "round_s"
        )
    tp = report.get("dp_throughput")
    if tp:
        out["dp_over_fast_throughput"] = tp["dp"]["samples_per_s"] / tp["fast"]["samples_per_s"]
        if "dp_opacus" in tp:
            out["dp_opacus_over_fast_throughput"] = (
                tp["dp_opacus"]["samples_per_s"] / tp["fast"]["samples_per_s"]
            )
    return {**out, **goal_ratios(report)}


def machine() -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "usable_cores": usable_cores(),
    }
