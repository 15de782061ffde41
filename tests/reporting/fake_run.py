"""The pieces of a finished run, made without training: rounds.csv rows, both models' test
scores, the federated result and the centralised reference."""

from __future__ import annotations

import numpy as np

from fedmarket.centralised import CentralisedResult

N_TEST = 400
BASE_RATE = 0.15


def scores(seed: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels at a 15 % base rate and probabilities that rank buyers higher by ``signal``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(N_TEST) < BASE_RATE).astype(np.float64)
    logit = rng.normal(size=N_TEST) + signal * y - 2.0
    return y, 1 / (1 + np.exp(-logit))


def rounds_rows(n: int = 3) -> list[dict]:
    return [
        {
            "round": r,
            "sent": 3,
            "ok": 3,
            "train_loss": 0.5 - 0.05 * r,
            "epsilon_max": 2.5 * r,
            "test_roc_auc": 0.70 + 0.02 * r,
            "fed_roc_auc": 0.70 + 0.02 * r,  # the same as the server's: the lines overlap
            "test_log_loss": 0.45 - 0.03 * r,
        }
        for r in range(1, n + 1)
    ]


def federated_result(test: dict) -> dict:
    return {
        "test": test,
        "rounds": 3,
        "wall_s": 12.0,
        "participation": {"rounds_aggregated": {"0": 3, "1": 3, "2": 3}, "never": []},
        "skipped_rounds": [],
        "epsilon": {"max": 7.5, "per_client": {"0": 7.5, "1": 7.4, "2": 7.5}, "unit": "customer"},
        "delta": 1e-4,
        "failures": {"failed": 0, "declined": 0, "timed_out": 0},
    }


def centralised(test: dict, y: np.ndarray, score: np.ndarray) -> CentralisedResult:
    history = [
        {"epoch": e, "train_loss": 0.5 - 0.04 * e, "test_loss": 0.46 - 0.02 * e, "epsilon": 2.0}
        for e in (1, 2, 3)
    ]
    return CentralisedResult(
        model="cnn-lstm",
        task="purchase",
        test=test,
        history=history,
        n_train=1600,
        n_test=N_TEST,
        epochs_run=3,
        best_epoch=3,
        wall_s=4.0,
        epsilon=7.9,
        delta=1e-4,
        test_scores=(y, score),
    )
