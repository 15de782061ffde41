"""What a simulation logs, on a run directory written through ``RunDir`` (the contract the
real run writes; tests/cli/test_tracking.py checks it on a real, slow run), and that reading
a damaged directory is a warning, never an error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedmarket.config import RunConfig
from fedmarket.rundir import RunDir, write_json
from fedmarket.tracking import NullTracker, log_simulation, open_tracker
from tests.tracking.helpers import artifacts, history, runs, store

ROUNDS = [
    {"round": 1, "train_loss": 0.7, "epsilon_max": 4.0, "test_roc_auc": 0.6},
    {"round": 2, "train_loss": 0.6, "epsilon_max": 6.0, "test_roc_auc": None},
    {"round": 3, "train_loss": 0.5, "epsilon_max": 8.0, "test_roc_auc": 0.7},
]


def run_dir(root: Path, problems: list[str] | None = None) -> tuple[Path, dict]:
    files = RunDir(root / "run")
    cfg = RunConfig.from_mapping({"num-server-rounds": 3, "model": "lstm"})
    files.path.mkdir(parents=True)
    files.write_config(cfg)
    files.write_rounds(ROUNDS, list(ROUNDS[0]))
    for rnd in (1, 2, 3):
        files.save_checkpoint(rnd, {})
    files.commit({"round": 3, "path": "round-0003.pt"})
    (files.centralised).mkdir()
    (files.centralised / "model.pt").write_bytes(b"weights")
    files.report.write_text("# report\n")
    (files.path / "roc_auc_per_round.png").write_bytes(b"png")
    (files.path / "summary.json.tmp").write_text("{")  # a write in flight
    files.test_scores.write_text("y,score\n1,0.9\n")  # per customer: not for a tracking server
    summary = {
        "config": cfg.to_flower(),
        "federated": {
            "test": {"roc_auc": 0.7, "n": 118, "lift_table": [{"k": 0.1}]},
            "epsilon": {"max": 8.0, "unit": "customer", "per_client": {"0": 8.0, "1": 7.5}},
            "wall_s": 12.5,
            "rounds": 3,
        },
        "centralised": {"test": {"roc_auc": 0.75}, "wall_s": 3.0, "epsilon": None},
        "gap": {"roc_auc": -0.05},
        "delta": 1e-4,
        "privacy": "Customer-level DP",
        "problems": problems or [],
    }
    write_json(files.summary, summary)
    return files.path, summary


def test_a_simulation_logs_settings_rounds_results_and_its_directory(tmp_path: Path):
    path, summary = run_dir(tmp_path)
    summary["anchor"] = {"model": "bg-nbd", "test": {"roc_auc": 0.68}, "fit_s": 0.4}
    write_json(RunDir(path).summary, summary)
    RunDir(path).anchor_scores.parent.mkdir()
    RunDir(path).anchor_scores.write_text("task,model,partition,customer,label,score\n")
    target = store(tmp_path)
    log_simulation(open_tracker(target), path, summary)
    (run,) = runs(target)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.runName"] == "run"
    assert run.data.params == {k: str(v) for k, v in summary["config"].items()}
    assert history(target, run, "train_loss") == ([1, 2, 3], [0.7, 0.6, 0.5])
    assert history(target, run, "test_roc_auc") == ([1, 3], [0.6, 0.7])  # none in round 2
    metrics = run.data.metrics
    assert metrics["federated.roc_auc"] == 0.7 and metrics["centralised.roc_auc"] == 0.75
    assert metrics["gap.roc_auc"] == -0.05 and metrics["delta"] == 1e-4
    assert metrics["federated.epsilon_max"] == 8.0
    assert metrics["federated.epsilon.client-1"] == 7.5 and metrics["federated.wall_s"] == 12.5
    assert "centralised.epsilon" not in metrics  # None: not a number
    assert metrics["anchor.roc_auc"] == 0.68 and metrics["anchor.fit_s"] == 0.4
    tags = run.data.tags
    assert tags["fedmarket.status"] == "complete" and tags["fedmarket.model"] == "lstm"
    assert tags["fedmarket.run_dir"] == str(path) and tags["fedmarket.command"] == "simulate"
    assert artifacts(target, run) == {
        "config.json",
        "rounds.csv",
        "summary.json",
        "report.md",
        "roc_auc_per_round.png",
        "centralised/model.pt",
        "checkpoints/latest.json",
        "checkpoints/round-0003.pt",  # the final model, not rounds 1 and 2
    }


def test_an_incomplete_run_is_failed_with_its_problems(tmp_path: Path):
    path, summary = run_dir(tmp_path, problems=["the centralised reference failed"])
    target = store(tmp_path)
    log_simulation(open_tracker(target), path, summary)
    (run,) = runs(target)
    assert run.info.status == "FAILED" and run.data.tags["fedmarket.status"] == "incomplete"
    assert run.data.tags["fedmarket.problems"] == "the centralised reference failed"


def test_a_damaged_directory_is_a_warning_and_the_run_is_marked_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path, summary = run_dir(tmp_path)
    RunDir(path).latest_marker.write_text("{not json")
    target = store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fedmarket"):
        log_simulation(open_tracker(target), path, summary)  # does not raise
    (run,) = runs(target)
    assert run.info.status == "FAILED"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "damaged commit marker" in warning and "keeps every result" in warning


def test_with_tracking_off_nothing_is_read(tmp_path: Path):
    log_simulation(NullTracker(), tmp_path / "no such run", {"config": {}})


def test_an_old_file_store_directory_is_refused_with_the_migration_command(tmp_path: Path):
    from fedmarket.errors import ConfigError
    from fedmarket.tracking import tracking_target

    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    with pytest.raises(ConfigError, match="holds an MLflow file store") as raised:
        tracking_target(tmp_path / "mlruns")
    assert "mlflow migrate-filestore" in str(raised.value)
