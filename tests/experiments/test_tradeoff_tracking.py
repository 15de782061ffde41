"""The trade-off sweep in MLflow: a parent run, a child per trained point (with its
settings, tradeoff.csv numbers and rounds), the sweep's table and plots as the parent's
files; a failed point is a FAILED child and a FAILED parent."""

from __future__ import annotations

from pathlib import Path

from fedmarket.config import RunConfig
from fedmarket.experiments.tradeoff import Point, SweepConfig, run_sweep, sweep_runs, track_sweep
from fedmarket.rundir import RunDir
from fedmarket.tracking import open_tracker
from tests.tracking.helpers import artifacts, history, runs, store

FAILS = "federated-central-dp-eps8-seed0"


def runner(point: Point, run_dir: Path) -> dict:
    """Writes what a federated point's run directory has (config, rounds) without training."""
    if point.key == FAILS:
        raise RuntimeError("boom")
    files = RunDir(run_dir)
    run_dir.mkdir(parents=True)
    files.write_config(RunConfig.from_mapping({"seed": point.seed, "num-server-rounds": 2}))
    rows = [{"round": r, "test_roc_auc": 0.5 + r / 10} for r in (1, 2)]
    files.write_rounds(rows, ["round", "test_roc_auc"])
    return {"epsilon": point.epsilon, "roc_auc": 0.7, "unit": "customer", "wall_s": 1.0}


def test_a_sweep_is_a_parent_run_with_a_child_per_point(tmp_path: Path):
    cfg = SweepConfig(out=tmp_path / "sweep", epsilons=(1.0, 8.0), seeds=(0,), rounds=2)
    result = run_sweep(cfg, runner=runner)
    target = store(tmp_path)
    track_sweep(open_tracker(target), cfg, result)
    found = runs(target)
    parent = next(r for r in found if "mlflow.parentRunId" not in r.data.tags)
    children = {r.data.tags["mlflow.runName"]: r for r in found if r is not parent}
    assert set(children) == {p.key for p in sweep_runs(cfg)}
    assert parent.info.status == "FAILED" and parent.data.params["epsilons"] == "1,8"
    assert children[FAILS].info.status == "FAILED"
    assert "boom" in children[FAILS].data.tags["fedmarket.error"]
    child = children["federated-client-dp-eps1-seed0"]
    assert child.info.status == "FINISHED"
    assert child.data.params["setting"] == "federated-client-dp"
    assert child.data.params["target-epsilon"] == "1.0" and child.data.params["seed"] == "0"
    assert child.data.metrics["roc_auc"] == 0.7 and child.data.metrics["epsilon"] == 1.0
    assert history(target, child, "test_roc_auc") == ([1, 2], [0.6, 0.7])
    assert {"config.json", "rounds.csv"} <= artifacts(target, child)
    assert children["federated-nodp-seed0"].data.params["target-epsilon"] == "none"
    files = artifacts(target, parent)
    assert {"tradeoff.csv", "tradeoff.md", "sweep.json"} <= files
    assert not any(f.startswith(("points/", "data/")) for f in files)
