"""`fedmarket.simulate`, `train_centralised`, `compare_baselines` and `tradeoff`: each on
the tiny data, each the same as its command (same numbers, same errors)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

import fedmarket
from fedmarket.errors import ConfigError
from fedmarket.rundir import RunDir
from tests.cli.output import cli, ok, one_error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}


# --- simulate -----------------------------------------------------------------------------
@pytest.mark.slow
def test_simulate_returns_what_summary_json_says(tiny_data: Path, tmp_path: Path):
    """One round with client DP; a dict of settings of every kind (int, float, string)."""
    settings = {"num-server-rounds": 1, "model": "lstm", "target-epsilon": 8.0}
    run = fedmarket.simulate(data=tiny_data, run_config=settings, out=tmp_path / "run")
    summary = json.loads(RunDir(run.run_dir).summary.read_text())
    assert run.run_dir == (tmp_path / "run").resolve() and run.summary == summary
    assert {k: summary["config"][k] for k in settings} == settings
    fed, cen = summary["federated"]["test"], summary["centralised"]["test"]
    assert run.federated_test["roc_auc"] == fed["roc_auc"] and 0 < fed["roc_auc"] < 1
    assert run.centralised_test["roc_auc"] == cen["roc_auc"]
    assert run.gap["roc_auc"] == pytest.approx(fed["roc_auc"] - cen["roc_auc"])
    assert run.epsilon == summary["federated"]["epsilon"]["max"] and 0 < run.epsilon <= 8.0
    assert run.problems == [] and "Customer-level" in run.privacy
    assert fedmarket.RunResult.load(tmp_path / "run") == run
    text = repr(run)
    assert "roc_auc" in text and "gap" in text and "\n" not in text and len(text) < 200


def test_simulate_reports_a_bad_setting_as_the_cli_does_before_writing(
    tiny_data: Path, tmp_path: Path
):
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as raised:
        fedmarket.simulate(data=tiny_data, run_config={"num-server-rounds": 0}, out=out)
    cli_run = cli("simulate", "--data", tiny_data, "--run-config", "num-server-rounds=0")
    # the same check; each names its own source ("run config" here, "--run-config" there)
    problem = "num-server-rounds must be a positive integer, got 0"
    assert str(raised.value).endswith(problem)
    assert one_error_line(cli_run).endswith(f"--run-config: {problem}")
    assert not out.exists()


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        (42, "run_config must be a dict of run settings"),
        ({"model": 'it\'s "x"'}, "holds both quote characters"),
        ({"dp": "maybe"}, "dp"),
    ],
)
def test_simulate_refuses_run_settings_it_cannot_read(
    tiny_data: Path, tmp_path: Path, run_config: object, message: str
):
    with pytest.raises(ConfigError, match=message):
        fedmarket.simulate(data=tiny_data, run_config=run_config, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- train_centralised ------------------------------------------------------------------
TRAIN = {"model": "lstm", "epochs": 1, "batch_size": 128, "seed": 3}
TRAIN_OPTIONS = ["--model", "lstm", "--epochs", 1, "--batch-size", 128, "--seed", 3]


def test_train_centralised_is_the_centralised_command(tiny_data: Path, tmp_path: Path):
    run = fedmarket.train_centralised(data=tiny_data, out=tmp_path / "api", **TRAIN)
    ok(cli("centralised", "--data", tiny_data, "--out", tmp_path / "cli", *TRAIN_OPTIONS))
    written = json.loads((tmp_path / "api" / "metrics.json").read_text())["test"]
    by_cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())["test"]
    defined = {k: v for k, v in run.test.items() if not math.isnan(v)}  # JSON: NaN is null
    assert defined == numbers(written) == numbers(by_cli)
    assert run.paths["metrics"] == tmp_path / "api" / "metrics.json"
    assert run.paths["model"].is_file() and run.epsilon is None
    assert list(run.history["epoch"]) == [1]
    assert "lstm/purchase: roc_auc" in repr(run) and "no DP" in repr(run)


def test_train_centralised_with_dp_and_without_out_writes_nothing(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    run = fedmarket.train_centralised(data=tiny_data, epsilon=4.0, progress=False, **TRAIN)
    assert 0 < run.epsilon <= 4.0 and run.result.noise_multiplier > 0
    assert (run.out, run.paths, list(tmp_path.iterdir())) == (None, {}, [])


def test_train_centralised_takes_the_count_loss_and_a_calibration(tiny_data: Path):
    counts = fedmarket.train_centralised(
        data=tiny_data,
        task="purchase-count",
        count_loss="negative-binomial",
        progress=False,
        **TRAIN,
    )
    assert "dispersion.log_alpha.weight" in counts.result.state_dict
    calibrated = fedmarket.train_centralised(
        data=tiny_data, calibrate="isotonic", progress=False, **TRAIN
    )
    assert calibrated.result.calibration["method"] == "isotonic"
    assert calibrated.test["ece"] == pytest.approx(calibrated.result.calibration["test_ece_after"])


def test_train_centralised_reports_an_unknown_model_as_the_cli_does(
    tiny_data: Path, tmp_path: Path
):
    with pytest.raises(ConfigError) as raised:
        fedmarket.train_centralised(data=tiny_data, out=tmp_path / "a", model="transformer")
    line = one_error_line(
        cli("centralised", "--data", tiny_data, "--out", tmp_path / "a", "--model", "transformer")
    )
    # the CLI refuses it with the run settings, before torch; the API when building the model
    for text in (line, str(raised.value)):
        assert "'transformer'" in text and "unknown" in text
        assert all(name in text for name in ("cnn-lstm", "lstm", "gru", "rnn"))
    assert not (tmp_path / "a").exists()


# --- compare_baselines ------------------------------------------------------------------
def test_compare_baselines_is_the_baselines_command(tiny_data: Path, tmp_path: Path):
    """Same rows as `fedmarket baselines` (which trains every classical model)."""
    result = fedmarket.compare_baselines(
        data=tiny_data,
        out=tmp_path / "api",
        sequence_models="lstm",
        classical=["logistic-regression", "naive-bayes"],
        epochs=1,
    )
    options = ["--out", tmp_path / "cli", "--sequence-models", "lstm", "--epochs", 1]
    ok(cli("baselines", "--data", tiny_data, *options))
    by_cli = pd.read_csv(tmp_path / "cli" / "baselines.csv").set_index("model")
    table = result.table.set_index("model")
    anchors = ["bg-nbd", "bg-nbd federated", "pareto-nbd", "pareto-nbd federated"]
    anchors.append("logistic-regression + bg-nbd")
    gans = ["ssgan", "ssgan-seq"]
    gans += ["gan-oversampled-logistic-regression", "gan-oversampled-gradient-boosting"]
    assert list(table.index) == ["logistic-regression", "naive-bayes", *gans, *anchors, "lstm"]
    assert list(table["family"]) == (
        ["classical"] * 2 + ["generative"] * 4 + ["customer-base"] * 5 + ["sequence"]
    )
    metrics = [c for c in table.columns if c not in ("family", "fit_seconds", "notes")]
    pd.testing.assert_frame_equal(table[metrics], by_cli.loc[table.index, metrics])
    written = pd.read_csv(result.paths["csv"]).set_index("model")
    pd.testing.assert_frame_equal(written[metrics], table[metrics])
    assert result.best == table["roc_auc"].idxmax()
    assert repr(result) == f"BaselinesResult(purchase: 12 models, best {result.best})"


def test_compare_baselines_reports_an_unknown_model(tiny_data: Path):
    with pytest.raises(ConfigError, match="unknown baseline model"):
        fedmarket.compare_baselines(data=tiny_data, classical=["xgboost"], sequence_models=[])
    with pytest.raises(ConfigError, match="'ssgan-sq'; did you mean 'ssgan-seq'"):
        fedmarket.compare_baselines(data=tiny_data, generative_models="ssgan-sq")


# --- tradeoff ---------------------------------------------------------------------------
def test_tradeoff_summarises_its_runs_and_resumes(tiny_data: Path, tmp_path: Path):
    """Centralised points only (no Ray): epsilon 8 and no DP, one seed, one epoch."""
    sweep = {
        "out": tmp_path / "sweep",
        "data": tiny_data,
        "settings": "centralised-dp",
        "epsilons": [8.0],
        "seeds": [0],
        "rounds": 1,
        "run_config": {"model": "lstm"},
        "audit": False,
        "progress": False,
    }
    result = fedmarket.tradeoff(**sweep)
    table = result.table
    assert result.csv == tmp_path / "sweep" / "tradeoff.csv" and result.csv.is_file()
    assert list(table["status"]) == ["ok", "ok"] and result.failed == []
    assert sorted(result.summary["target_epsilon"]) == [8.0, math.inf]
    dp = result.summary.set_index("target_epsilon").loc[8.0]
    point = table.set_index("target_epsilon").loc[8.0]
    assert dp["roc_auc_mean"] == pytest.approx(point["roc_auc"])
    assert 0 < dp["epsilon_mean"] <= 8.0
    again = fedmarket.tradeoff(**sweep)
    assert again.skipped == 2 and "2 run(s) reused" in repr(again)


def test_tradeoff_reports_bad_settings_as_the_cli_does(tmp_path: Path):
    with pytest.raises(ConfigError) as raised:
        fedmarket.tradeoff(out=tmp_path / "sweep", epsilons=[-1.0])
    line = one_error_line(cli("tradeoff", "--out", tmp_path / "sweep", "--epsilons=-1"))
    assert line == f"error: {raised.value}"


# --- tracking -----------------------------------------------------------------------------
def test_train_centralised_logs_to_mlflow_as_the_command_does(tiny_data: Path, tmp_path: Path):
    from tests.tracking.helpers import artifacts, history, runs, store

    run = fedmarket.train_centralised(
        data=tiny_data,
        out=tmp_path / "out",
        model="lstm",
        epochs=1,
        epsilon=8.0,
        progress=False,
        tracking_uri=tmp_path / "mlruns",
        experiment="api",
    )
    target = store(tmp_path)
    (logged,) = runs(type(target)(target.uri, "api"))
    assert logged.data.params["dp"] == "client" and logged.data.params["target-epsilon"] == "8.0"
    assert logged.data.metrics["epsilon"] == pytest.approx(run.result.epsilon)
    assert logged.data.metrics["test.roc_auc"] == pytest.approx(run.result.test["roc_auc"])
    assert history(target, logged, "train_loss")[0] == [1]
    assert "model.pt" in artifacts(target, logged)


def test_a_bad_tracking_uri_raises_before_training(tiny_data: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="tracking_uri ftp://x: unknown scheme"):
        fedmarket.train_centralised(data=tiny_data, out=tmp_path / "out", tracking_uri="ftp://x")
    assert not (tmp_path / "out").exists()
