"""Reading an MLflow store back, as a user's script would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmarket.tracking import TrackingTarget, tracking_target


def store(root: Path) -> TrackingTarget:
    target = tracking_target(root / "mlruns")
    assert target is not None
    return target


def runs(target: TrackingTarget) -> list[Any]:
    """Every run of the experiment, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(target.uri)
    experiment = client.get_experiment_by_name(target.experiment)
    if experiment is None:
        return []
    found = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    return list(found)


def history(target: TrackingTarget, run: Any, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, by step."""
    from mlflow import MlflowClient

    metrics = sorted(
        (m.step, m.value) for m in MlflowClient(target.uri).get_metric_history(run.info.run_id, key)
    )
    return [s for s, _ in metrics], [v for _, v in metrics]


def artifacts(target: TrackingTarget, run: Any, path: str | None = None) -> set[str]:
    from mlflow import MlflowClient

    client = MlflowClient(target.uri)
    out: set[str] = set()
    for item in client.list_artifacts(run.info.run_id, path):
        out |= artifacts(target, run, item.path) if item.is_dir else {item.path}
    return out
