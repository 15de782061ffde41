"""Framework overhead per client per round (issue #20: <= 3 ms).

The same short federated run with more and more clients per round, each client holding
few customers so that compute is small next to what each client costs Flower, Ray and the
ClientApp: a steady round's overhead (its time less client compute, aggregation and the
global evaluation) against the clients in it, fitted by least squares; the slope is the
cost of one more client in a round. The runs share one Ray runtime (`ray_session`), so
start-up is paid once and not counted (it is in the first round, which `steady` leaves out).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from fedmarket.experiments.bench.config import BenchConfig
from fedmarket.experiments.bench.stages import federated, steady
from fedmarket.experiments.bench.workload import ensure_workload

CUSTOMERS = 64  # per client: one batch, so a client's round is mostly its fixed costs


def client_counts(clients: int) -> list[int]:
    """Clients per round: a quarter, a half and all of ``clients`` (distinct, >= 1)."""
    return sorted({max(1, clients // 4), max(1, clients // 2), clients})


def fit_overhead(points: list[tuple[int, float]]) -> dict[str, float]:
    """Least-squares line through (clients, steady overhead s): slope and intercept."""
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    return {"per_client_round_ms": 1000 * float(slope), "intercept_s": float(intercept)}


def overhead_per_client(cfg: BenchConfig, root: Path, clients: int) -> dict[str, Any]:
    """Runs with ``client_counts(clients)`` clients per round; the fit and each point."""
    from fedmarket.experiments.ray_session import ray_session

    data = ensure_workload(
        root / "data",
        clients=clients,
        customers=CUSTOMERS,
        seq_len=cfg.seq_len,
        n_features=cfg.n_features,
        seed=cfg.seed,
    )
    points = []
    with ray_session():
        for k in client_counts(clients):
            run_cfg = cfg.with_(clients=clients, customers=CUSTOMERS, clients_per_round=k)
            run_dir = root / f"run-{k}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            fed = federated(run_cfg, data, run_dir, dp=False)
            points.append(
                {
                    "clients_per_round": k,
                    "overhead_s": steady(fed["per_round"], "overhead_s"),
                    "round_s": steady(fed["per_round"], "round_s"),
                }
            )
    fitted = fit_overhead([(p["clients_per_round"], p["overhead_s"]) for p in points])
    return {"customers_per_client": CUSTOMERS, "points": points, **fitted}
