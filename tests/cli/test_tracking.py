"""--tracking-uri on the training commands: each logs to a temporary MLflow store and the
store reads back what the command wrote; a bad URI is an error before any work, and a store
that fails is a warning, never a lost result or a failed exit code."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from fedmarket.rundir import RunDir
from fedmarket.tracking import MlflowTracker
from tests.cli.output import cli, ok, one_error_line
from tests.tracking.helpers import artifacts, history, runs, store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN = ["--model", "lstm", "--epochs", "2", "--patience", "5", "--batch-size", "128"]


def centralised(data: Path, out: Path, *options: object):
    return cli("centralised", "--data", data, "--out", out, *TRAIN, *options)


def test_centralised_logs_its_settings_epochs_test_metrics_and_files(
    tiny_data: Path, tmp_path: Path
):
    target = store(tmp_path)
    printed = ok(centralised(tiny_data, tmp_path / "out", "--tracking-uri", tmp_path / "mlruns"))
    (run,) = runs(target)
    assert run.info.status == "FINISHED" and f"MLflow: run {run.info.run_id}" in printed
    params = run.data.params
    assert params["model"] == "lstm" and params["epochs"] == "2" and params["dp"] == "none"
    assert params["batch-size"] == "128" and params["learning-rate"] == "0.003"
    assert run.data.tags["fedmarket.command"] == "centralised"
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [r["epoch"] for r in written["history"]] == [1, 2]
    for key in ("train_loss", "val_loss"):
        steps, values = history(target, run, key)
        assert steps == [1, 2]  # one value per epoch, at its epoch
        assert values == pytest.approx([r[key] for r in written["history"]])
    assert run.data.metrics["test.roc_auc"] == pytest.approx(written["test"]["roc_auc"])
    assert run.data.metrics["wall_s"] == pytest.approx(written["wall_s"])
    assert artifacts(target, run) == {
        "metrics.json",
        "model.pt",
        "learning_curve.png",
        "gains.png",
    }  # not test_scores.csv: a score per customer stays in the run directory


def test_without_tracking_uri_nothing_is_tracked(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    printed = ok(centralised(tiny_data, tmp_path / "out", "--epochs", "1"))
    assert "MLflow" not in printed
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("command", ["centralised", "baselines", "simulate", "tradeoff"])
def test_a_bad_tracking_uri_is_one_error_line_before_any_work(
    tiny_data: Path, tmp_path: Path, command: str
):
    out = tmp_path / "out"
    result = cli(command, "--data", tiny_data, "--out", out, "--tracking-uri", "ftp://host/x")
    assert "--tracking-uri ftp://host/x: unknown scheme 'ftp'" in one_error_line(result)
    assert not out.exists()


def test_a_failing_store_is_a_warning_and_the_run_keeps_its_result(
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    def unreachable(self, *args: object, **kwargs: object) -> None:
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(MlflowTracker, "log_artifacts", unreachable)
    target = store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fedmarket"):
        printed = ok(
            centralised(tiny_data, tmp_path / "out", "--tracking-uri", tmp_path / "mlruns")
        )
    assert (tmp_path / "out" / "metrics.json").is_file() and "test metrics" in printed
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "tracking server went away" in warned[0]
    (run,) = runs(target)  # what was logged before the failure stays, marked FAILED
    assert run.info.status == "FAILED" and "test.roc_auc" in run.data.metrics


def test_baselines_log_a_parent_run_and_a_child_per_model(tiny_data: Path, tmp_path: Path):
    target = store(tmp_path)
    out = tmp_path / "out"
    ok(
        cli(
            "baselines",
            "--data",
            tiny_data,
            "--out",
            out,
            "--sequence-models",
            "",
            "--tracking-uri",
            tmp_path / "mlruns",
            "--experiment",
            "compare",
        )
    )
    found = runs(replace(target, experiment="compare"))
    parent = next(r for r in found if "mlflow.parentRunId" not in r.data.tags)
    children = {r.data.tags["mlflow.runName"]: r for r in found if r is not parent}
    with open(out / "baselines.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert set(children) == {r["model"] for r in rows} and len(rows) > 1
    for row in rows:
        child = children[row["model"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert (
            child.data.params["family"]
            == row["family"]
            in (
                "classical",
                "customer-base",
                "generative",
            )
        )
        assert child.data.params["task"] == "purchase"
        if row["roc_auc"]:
            assert child.data.metrics["roc_auc"] == pytest.approx(float(row["roc_auc"]))
    assert {"baselines.csv", "baselines.json"} <= artifacts(target, parent)
    # a prediction per customer stays in the directory
    assert (out / "baselines_test_scores.csv").is_file()
    assert "baselines_test_scores.csv" not in artifacts(target, parent)


@pytest.mark.slow
def test_simulate_logs_every_round_the_final_metrics_and_the_run_directory(
    tiny_data: Path, tmp_path: Path
):
    target = store(tmp_path)
    out = tmp_path / "run"
    settings = "num-server-rounds=2 model='lstm' target-epsilon=8.0"
    ok(
        cli(
            "simulate",
            "--data",
            tiny_data,
            "--out",
            out,
            "--run-config",
            settings,
            "--client-cpus",
            "1",
            "--tracking-uri",
            tmp_path / "mlruns",
        )
    )
    (run,) = runs(target)
    summary = json.loads((out / "summary.json").read_text())
    assert run.data.params == {k: str(v) for k, v in summary["config"].items()}
    rounds = RunDir(out).read_rounds()
    for key in ("test_roc_auc", "train_loss", "epsilon_max"):
        steps, values = history(target, run, key)
        assert steps == [1, 2]  # one value per round, at its round
        assert values == pytest.approx([r[key] for r in rounds])
    metrics = run.data.metrics
    assert metrics["federated.roc_auc"] == pytest.approx(summary["federated"]["test"]["roc_auc"])
    assert metrics["centralised.roc_auc"] == pytest.approx(
        summary["centralised"]["test"]["roc_auc"]
    )
    assert metrics["gap.roc_auc"] == pytest.approx(summary["gap"]["roc_auc"])
    assert metrics["federated.epsilon_max"] == pytest.approx(summary["federated"]["epsilon"]["max"])
    assert "federated.epsilon.client-0" in metrics and metrics["delta"] > 0
    tags = run.data.tags
    assert tags["fedmarket.dp"] == "client" and tags["fedmarket.status"] == "complete"
    assert tags["fedmarket.run_dir"] == str(out.resolve())
    files = artifacts(target, run)
    assert {"report.md", "summary.json", "rounds.csv", "config.json"} <= files
    assert {"centralised/model.pt", "centralised/metrics.json", "roc_auc_per_round.png"} <= files
    assert {f for f in files if f.endswith(".pt") and f.startswith("checkpoints/")} == {
        "checkpoints/round-0002.pt"  # the final model; earlier checkpoints stay in the run
    }


def test_tradeoff_logs_the_sweep_and_a_child_per_point(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The command's wiring (the sweep's points are tests/experiments' fake runner)."""
    from fedmarket.experiments.tradeoff import sweep as sweep_module
    from tests.experiments.test_tradeoff_tracking import runner

    monkeypatch.setattr(sweep_module, "make_runner", lambda cfg, data: runner)
    target = store(tmp_path)
    options = ["--epsilons", "1", "--seeds", "0", "--settings", "federated-client-dp"]
    out = tmp_path / "sweep"
    printed = ok(
        cli(
            "tradeoff",
            "--data",
            tiny_data,
            "--out",
            out,
            *options,
            "--tracking-uri",
            tmp_path / "mlruns",
        )
    )
    found = runs(target)
    parent = next(r for r in found if "mlflow.parentRunId" not in r.data.tags)
    children = sorted(r.data.tags["mlflow.runName"] for r in found if r is not parent)
    assert children == ["federated-client-dp-eps1-seed0", "federated-nodp-seed0"]
    assert parent.info.status == "FINISHED" and parent.data.tags["fedmarket.command"] == "tradeoff"
    assert f"MLflow: run {parent.info.run_id}" in printed
    assert "tradeoff.csv" in artifacts(target, parent)
