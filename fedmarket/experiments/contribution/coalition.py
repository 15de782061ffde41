"""Training one coalition with the run's own settings, and the value of a trained model.

A coalition's run is `fedmarket simulate` on a prepared-data view of its members
(``fedmarket.data.subset``) with the valued run's config (its model, strategy, rounds unless
``--rounds`` overrides them, seed and DP settings), without the centralised reference. Its
value is the task's primary metric of its final global model on the FULL consortium's
pooled test customers, so every coalition is judged on the same customers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedmarket.contribution.records import coalition_key
from fedmarket.contribution.values import Coalition
from fedmarket.data import store, subset
from fedmarket.errors import FedmarketError
from fedmarket.experiments.contribution.plan import Plan
from fedmarket.rundir import RunDir
from fedmarket.tasks import Task

# Train a coalition into a run directory: {"value", "metric", "epsilon", "rounds"}.
CoalitionRunner = Callable[[Coalition, Path], dict[str, Any]]
SET_PER_COALITION = ("data-dir", "out-dir", "state-dir")


def signed(task: Task, metric: float) -> float:
    """The game's value: the primary metric, negated where lower is better (RMSE), so a
    positive contribution always means the retailer makes the model better."""
    higher = task.primary_metric[1]
    return float(metric) if higher else -float(metric)


def model_metric(run_dir: Path, test: store.SplitArrays, task: Task) -> float:
    """The primary metric of a run's last global model on ``test`` (uncalibrated scores:
    the same for every coalition, and ROC-AUC does not depend on a monotone calibration)."""
    from fedmarket.scoring.run_model import load_run_model

    model = load_run_model(run_dir, "federated")
    prediction = model.predict(np.asarray(test.X), calibrated=False)
    return float(task.metrics(task.targets(test), prediction)[task.primary_metric[0]])


def empty_metric(task: Task, test: store.SplitArrays) -> float:
    """The empty coalition (no retailer's data, so no model): the metric of a constant score,
    0.5 for a probability (ROC-AUC 0.5, a random ranking) and 0 expected purchases for a
    count."""
    constant = 0.5 if task.name == "purchase" else 0.0
    prediction = np.full(len(test), constant, dtype=np.float64)
    return float(task.metrics(task.targets(test), prediction)[task.primary_metric[0]])


def make_runner(plan: Plan, test: store.SplitArrays, task: Task) -> CoalitionRunner:
    """Train a coalition with fedmarket's simulation on its data view."""
    overrides = {k: v for k, v in plan.run.to_flower().items() if k not in SET_PER_COALITION}
    overrides["num-server-rounds"] = plan.rounds
    files = RunDir(Path(plan.cfg.run_dir))

    def run(coalition: Coalition, out: Path) -> dict[str, Any]:
        from fedmarket.experiments.simulate import simulate

        members = sorted(coalition)
        view = subset.coalition_view(
            plan.data_dir, members, files.coalition_view(coalition_key(members))
        )
        if out.exists():  # what a failed or interrupted try left behind
            shutil.rmtree(out)
        result = simulate(
            data=view,
            run_config=overrides,
            out=out,
            centralised=False,
            key_file=plan.cfg.key_file,
            threads=plan.cfg.threads,
        )
        fed = result["summary"]["federated"]
        if not fed.get("test"):
            raise FedmarketError(f"{out}: no round was aggregated, so there is no model to value")
        metric = model_metric(out, test, task)
        per_client = (fed.get("epsilon") or {}).get("per_client") or {}
        epsilon = {str(m): per_client.get(str(i)) for i, m in enumerate(members)}
        return {
            "value": signed(task, metric),
            "metric": metric,
            "epsilon": epsilon,
            "rounds": fed.get("rounds"),
        }

    return run
