"""The bench's two timed workloads: the centralised floor and the federated simulation.

Both do the same work: ``rounds`` passes over the same training customers (``per_round``
clients' worth per round), batch size and model, on the same device. The floor is one
``fit`` over the pooled customers; the federated run is ``fedmarket simulate`` (Flower's
simulation engine on Ray, the real ClientApp and ServerApp) with client evaluation off, so
what differs is what federation adds.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fedmarket.config import format_overrides
from fedmarket.data import store
from fedmarket.experiments.bench.config import BenchConfig
from fedmarket.experiments.bench.memory import PeakMemory
from fedmarket.models import build_model
from fedmarket.privacy import PrivacySettings
from fedmarket.tasks import get_task
from fedmarket.threads import apply_threads
from fedmarket.training import TrainConfig, fit


def floor(cfg: BenchConfig, data_dir: Path, *, dp: bool) -> dict[str, Any]:
    """Centralised training on ``per_round`` clients' customers for ``rounds`` epochs.

    A one-epoch warm-up on a slice comes first (allocator, kernels, Opacus' first
    wrapping), as the federated steady state excludes the first round. Its torch threads are
    chosen as every training path's are (`fedmarket.threads`, ``--threads``).
    """
    threads = apply_threads(cfg.threads)
    task = get_task("purchase")
    pooled = store.load_pooled(data_dir, "train", partitions=range(cfg.per_round))
    privacy = (
        PrivacySettings(noise_multiplier=cfg.noise_multiplier, max_grad_norm=cfg.max_grad_norm)
        if dp
        else None
    )
    train_cfg = TrainConfig(
        epochs=cfg.rounds,
        batch_size=cfg.batch_size,
        val_fraction=0.0,
        device=cfg.torch_device,
        seed=cfg.seed,
    )
    warm = pooled.take(np.arange(min(len(pooled), 4 * cfg.batch_size)))
    net = build_model(cfg.model, cfg.n_features, dp=dp, seed=cfg.seed)
    fit(net, warm, task, replace(train_cfg, epochs=1), privacy=privacy)
    net = build_model(cfg.model, cfg.n_features, dp=dp, seed=cfg.seed)
    with PeakMemory() as memory:
        result = fit(net, pooled, task, train_cfg, privacy=privacy)
    return {
        "customers": len(pooled),
        "threads": threads.threads,
        "threads_source": threads.source,
        "epochs": result.epochs_run,
        "steps": result.steps,
        "samples": result.samples_seen,
        "wall_s": result.wall_s,
        "epoch_s": result.wall_s / result.epochs_run,
        "samples_per_s": result.samples_seen / result.wall_s,
        "epsilon": result.epsilon,
        **memory.to_dict(),
    }


def federated(cfg: BenchConfig, data_dir: Path, run_dir: Path, *, dp: bool) -> dict[str, Any]:
    """``fedmarket simulate`` with the bench's settings; per-round split from rounds.csv."""
    from fedmarket.experiments.simulate import ClientResources, simulate
    from fedmarket.rundir import RunDir

    values = {
        "model": cfg.model,
        "num-server-rounds": cfg.rounds,
        "local-epochs": 1,
        "batch-size": cfg.batch_size,
        "fraction-train": cfg.fraction_train(),
        "fraction-evaluate": 0.0,
        "min-train-replies": cfg.per_round,
        "seed": cfg.seed,
        "dp": "client" if dp else "none",
    }
    if dp:
        values.update(
            {
                "target-epsilon": 0.0,
                "noise-multiplier": cfg.noise_multiplier,
                "max-grad-norm": cfg.max_grad_norm,
            }
        )
    resources = ClientResources(num_cpus=cfg.client_cpus, num_gpus=cfg.gpus_per_client)
    started = time.perf_counter()
    with PeakMemory(interval=0.25) as memory:
        result = simulate(
            data=data_dir,
            run_config=format_overrides(values),
            out=run_dir,
            centralised=False,
            resources=resources,
            threads=cfg.threads,
        )
    wall = time.perf_counter() - started
    rounds = RunDir(run_dir).read_rounds()
    return {
        "clients": cfg.clients,
        "clients_per_round": cfg.per_round,
        "rounds": len(rounds),
        "wall_s": wall,
        "server_wall_s": result["summary"]["federated"].get("wall_s"),
        "per_round": [round_split(r, slots(cfg)) for r in with_round_time(rounds)],
        "parallel_slots": slots(cfg),
        "client_gpu_peak_mb": max(
            (r["client_gpu_peak_mb"] for r in rounds if r.get("client_gpu_peak_mb")),
            default=None,
        ),
        "test_roc_auc": (result["summary"]["federated"].get("test") or {}).get("roc_auc"),
        **memory.to_dict(),
    }


def slots(cfg: BenchConfig) -> int:
    """How many clients train at once: Ray packs actors by CPU and GPU share."""
    import os

    import torch

    by_cpu = int(len(os.sched_getaffinity(0)) // cfg.client_cpus)  # the CPUs we may use
    limits = [by_cpu, cfg.per_round]
    if cfg.gpus_per_client > 0:
        limits.append(int(torch.cuda.device_count() / cfg.gpus_per_client))
    return max(1, min(limits))


def with_round_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row plus ``round_s``: the time since the previous round ended (the first round
    counts from the server's start, so it carries the actors' start-up)."""
    out, previous = [], 0.0
    for row in rows:
        elapsed = row.get("elapsed_s") or previous
        out.append({**row, "round_s": elapsed - previous})
        previous = elapsed
    return out


def round_split(row: dict[str, Any], parallel: int) -> dict[str, Any]:
    """Where one round's time went.

    ``client_compute_s`` is the clients' own ``fit`` time spread over the slots that run
    in parallel: ceil(clients / slots) waves of the mean client, at least the slowest client
    (exact when clients take equal time); aggregation and the global
    evaluation are timed on the server; ``overhead_s`` is the rest: message encoding,
    Ray scheduling, ClientApp and model set-up, waiting for stragglers.
    """
    total = float(row["round_s"])
    train_sum = float(row.get("client_train_s_sum") or 0.0)
    clients = int(row.get("ok") or 0)
    waves = math.ceil(clients / parallel) if clients else 0
    mean = train_sum / clients if clients else 0.0
    compute = max(waves * mean, float(row.get("client_train_s_max") or 0.0))
    aggregate = float(row.get("aggregate_s") or 0.0)
    evaluate = float(row.get("server_eval_s") or 0.0)
    return {
        "round": int(row["round"]),
        "round_s": total,
        "train_round_s": total - evaluate,  # what the floor's epoch is compared with
        "client_compute_s": compute,
        "aggregate_s": aggregate,
        "server_eval_s": evaluate,
        "overhead_s": total - compute - aggregate - evaluate,
        "client_train_s_sum": train_sum,
    }


def steady(per_round: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over rounds after the first (the first pays actor start-up)."""
    values = [r[key] for r in per_round[1:]] or [r[key] for r in per_round]
    return float(sum(values) / len(values))
