"""DP-SGD against the non-private fast path: samples per second of one ``fit`` epoch."""

from __future__ import annotations

from typing import Any

from fedmarket.experiments.bench.workload import random_split
from fedmarket.models import build_model
from fedmarket.privacy import PrivacySettings
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit


def measure_throughput(
    model: str,
    *,
    dp: bool | str,
    steps: int,
    batch_size: int,
    seq_len: int,
    n_features: int,
    device: str,
    warmup_steps: int = 3,
    repeats: int = 1,
    noise_multiplier: float = 1.0,
    max_grad_norm: float = 1.0,
) -> dict[str, Any]:
    """``steps`` batches of ``batch_size`` through ``fit`` (what a client pays per call,
    Opacus' wrapping included), after a warm-up call; the fastest of ``repeats``.

    ``dp``: False for the fast path, True for the default DP-SGD form, ``"opacus"`` for the
    DP form with Opacus' own DPLSTM (the reference the batched LSTM replaces)."""
    import numpy as np

    task = get_task("purchase")
    privacy = (
        PrivacySettings(noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm)
        if dp
        else None
    )
    cfg = TrainConfig(epochs=1, batch_size=batch_size, val_fraction=0, device=device)
    rng = np.random.default_rng(0)
    warm = random_split(batch_size * warmup_steps, seq_len, n_features, rng)
    fit(build_model(model, n_features, dp=dp, seed=0), warm, task, cfg, privacy=privacy)
    data = random_split(batch_size * steps, seq_len, n_features, rng)
    runs = [
        fit(build_model(model, n_features, dp=dp, seed=0), data, task, cfg, privacy=privacy)
        for _ in range(repeats)
    ]
    best = min(runs, key=lambda r: r.wall_s)
    return {
        "model": model,
        "path": {False: "fast", True: "dp", "opacus": "dp-opacus"}[dp],
        "device": device,
        "batch_size": batch_size,
        "steps": best.steps,
        "samples": best.samples_seen,
        "wall_s": best.wall_s,
        "samples_per_s": best.samples_seen / best.wall_s,
        "ms_per_step": 1000 * best.wall_s / best.steps,
    }
