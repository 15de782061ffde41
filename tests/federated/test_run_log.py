import csv
import json
import math

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, MetricRecord
from opacus.accountants import RDPAccountant
from sklearn.metrics import roc_auc_score

from fedmarket.centralised import CentralisedResult
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.federated.run_log import ROUND_FIELDS, RunLog
from fedmarket.intervals import delong_interval
from fedmarket.models import build_model
from fedmarket.reporting import build_summary, write_run_outputs
from fedmarket.rundir import RunDir, read_scores
from fedmarket.training import predict
from strategies import ReplySummary

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(data_dir, run_dir, **overrides) -> RunConfig:
    return RunConfig.from_mapping(
        {"data-dir": str(data_dir), "out-dir": str(run_dir), "num-server-rounds": 3, **overrides}
    )


def model_weights(cfg: RunConfig, seed: int) -> dict[str, torch.Tensor]:
    return build_model(cfg.model, 11, task=cfg.task, seed=seed).state_dict()


def train_summary(rnd, *, sent=3, ok=3, failed=0, declined=0, timed_out=0, clients=()):
    failures = tuple((900 + i, 2, "DataError: missing X.npy") for i in range(failed))
    failures += tuple((950 + i, 1001, "declined: budget") for i in range(declined))
    per_client = tuple(
        {"node-id": 100 + pid, "partition-id": float(pid), "epsilon": eps, "num-examples": 150.0}
        for pid, eps in clients
    )
    return ReplySummary(rnd, "train", sent, ok, failed, declined, timed_out, failures, per_client)


def eval_summary(rnd, *, sent=3, ok=3, failed=0, timed_out=0):
    return ReplySummary(rnd, "evaluate", sent, ok, failed, 0, timed_out)


def play_two_rounds(run: RunLog, first: dict, second: dict) -> None:
    """What the recording strategy and Flower's evaluate_fn call, in Flower's order."""
    run.evaluate_global(0, ArrayRecord(first))
    run.on_train(
        train_summary(1, ok=2, failed=1, clients=[(0, 2.5), (1, 3.0)]),
        ArrayRecord(first),
        MetricRecord({"train-loss": 0.61, "epsilon": 3.0}),
    )
    run.on_evaluate(
        eval_summary(1, ok=2, failed=1),
        MetricRecord({"roc_auc": 0.61, "accuracy": 0.9, "num-examples": 90}),
    )
    run.evaluate_global(1, ArrayRecord(first))
    run.on_train(
        train_summary(2, ok=1, declined=1, timed_out=1, clients=[(0, 4.0)]),
        ArrayRecord(second),
        MetricRecord({"train-loss": 0.55, "epsilon": 4.0}),
    )
    run.on_evaluate(eval_summary(2, ok=2, timed_out=1), MetricRecord({"roc_auc": 0.64}))
    run.evaluate_global(2, ArrayRecord(second))


def test_rounds_csv_counts_and_epsilon_max(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    first, second = model_weights(cfg, 1), model_weights(cfg, 2)
    play_two_rounds(run, first, second)
    with open(tmp_path / "rounds.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2  # round 0 (the initial model) is evaluated but gets no row
    assert tuple(rows[0])[: len(ROUND_FIELDS)] == ROUND_FIELDS
    counts = ("round", "sent", "ok", "failed", "declined", "timed_out", "eval_ok", "eval_failed")
    assert [tuple(int(r[k]) for k in counts) for r in rows] == [
        (1, 3, 2, 1, 0, 0, 2, 1),
        (2, 3, 1, 0, 1, 1, 2, 1),  # an evaluation that timed out counts as failed
    ]
    # the worst client so far: round 2 heard only from client 0 (4.0); client 1 keeps 3.0
    assert [float(r["epsilon_max"]) for r in rows] == [3.0, 4.0]
    assert [float(r["train_loss"]) for r in rows] == [0.61, 0.55]
    assert [float(r["fed_roc_auc"]) for r in rows] == [0.61, 0.64]
    assert rows[0]["fed_accuracy"] == "0.9" and rows[1]["fed_accuracy"] == ""
    assert rows[0]["test_mae"] == ""  # regression columns stay empty for purchase
    assert float(rows[1]["elapsed_s"]) >= float(rows[0]["elapsed_s"]) >= 0
    assert [r["round"] for r in RunDir(tmp_path).read_rounds()] == [1.0, 2.0]


def test_global_test_metrics_are_on_the_pooled_test_customers(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    weights = model_weights(cfg, 1)
    returned = run.evaluate_global(1, ArrayRecord(weights))
    pooled = store.load_pooled(tiny_data, "test")
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    assert len(pooled) == sum(p["test"]["n"] for p in manifest["partitions"])
    model = build_model(cfg.model, 11, task=cfg.task)
    model.load_state_dict(weights)
    reference = roc_auc_score(pooled.y_purchase, predict(model, pooled.X, run.task))
    assert returned["roc_auc"] == pytest.approx(reference, abs=1e-12)
    assert set(returned) <= {"roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "lift_at_10"}
    [row] = RunDir(tmp_path).read_rounds()
    assert row["test_roc_auc"] == pytest.approx(reference, rel=1e-5)  # 6 significant digits
    # the pooled test set's intervals are in rounds.csv; the clients' averages have none
    low, high = delong_interval(predict(model, pooled.X, run.task), pooled.y_purchase == 1)
    assert (row["test_roc_auc_low"], row["test_roc_auc_high"]) == pytest.approx((low, high))
    assert row["test_pr_auc_low"] < row["test_pr_auc"] < row["test_pr_auc_high"]
    assert not any(k.startswith("fed_") and k.endswith(("_low", "_high")) for k in row)


def test_checkpoints_every_aggregated_round_and_reads_back_equal(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    first, second = model_weights(cfg, 1), model_weights(cfg, 2)
    play_two_rounds(run, first, second)
    # round 3 was skipped (too few replies): no new checkpoint file, but the round is
    # committed (its row is written), so a resume goes on with round 4 from round 2's model
    run.on_train(train_summary(3, ok=0, failed=3), None, None)
    run.evaluate_global(3, ArrayRecord(second))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest.json", "round-0001.pt", "round-0002.pt"]
    rnd, state = RunDir(tmp_path).latest_checkpoint()
    assert rnd == 3 and list(state) == list(second)
    assert all(torch.equal(state[k], second[k]) for k in second)
    assert run.rounds_done == 2 and run.skipped == [3]
    assert len(RunDir(tmp_path).read_rounds()) == 3  # the skipped round still has its row
    assert RunDir(tmp_path / "nowhere").latest_checkpoint() is None


def test_round_offset_numbers_rounds_after_a_resume(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3, round_offset=2)
    weights = model_weights(cfg, 3)
    run.on_train(
        train_summary(1, clients=[(0, 7.5), (1, 7.0), (2, 7.9)]), ArrayRecord(weights), None
    )
    run.on_evaluate(eval_summary(1), None)
    run.evaluate_global(1, ArrayRecord(weights))
    assert RunDir(tmp_path).latest_checkpoint()[0] == 3
    assert [r["round"] for r in RunDir(tmp_path).read_rounds()] == [3.0]
    assert run.finish(1.0)["rounds"] == 3


def test_finish_writes_federated_json(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    play_two_rounds(run, model_weights(cfg, 1), model_weights(cfg, 2))
    returned = run.finish(12.5)
    written = json.loads((tmp_path / "federated.json").read_text())
    assert written["rounds"] == 2 and written["wall_s"] == 12.5
    assert written["epsilon"] == {
        "max": 4.0,
        "unit": "customer",
        "per_client": {"0": 4.0, "1": 3.0},
    }
    n_train = sum(
        p["train"]["n"] for p in json.loads((tiny_data / "manifest.json").read_text())["partitions"]
    )
    assert written["delta"] == pytest.approx(1 / (10 * n_train), rel=1e-12)
    assert written["failures"] == {"failed": 1, "declined": 1, "timed_out": 1}
    assert written["test"]["roc_auc"] == pytest.approx(run.final_test["roc_auc"])
    assert returned["epsilon"] == written["epsilon"]


def test_epsilon_summary_without_dp_and_with_central_dp(tiny_data, tmp_path):
    none = RunLog(
        settings(tiny_data, tmp_path / "a", dp="none"), tmp_path / "a", tiny_data, num_nodes=3
    )
    assert none.epsilon_summary() == {"max": None, "per_client": None, "unit": None}
    assert none.client_delta() is None
    cfg = settings(tiny_data, tmp_path / "b", dp="central", **{"central-noise-multiplier": 1.2})
    central = RunLog(cfg, tmp_path / "b", tiny_data, num_nodes=3)
    weights = model_weights(cfg, 1)
    for rnd in (1, 2):
        central.on_train(train_summary(rnd), ArrayRecord(weights), None)
    accountant = RDPAccountant()  # every retailer trains every round: q = 1, one release each
    for _ in range(2):
        accountant.step(noise_multiplier=1.2, sample_rate=1.0)
    summary = central.epsilon_summary()
    assert summary["max"] == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)
    assert (summary["per_client"], summary["unit"], summary["delta"]) == (None, "retailer", 1e-5)


def centralised_result(test: dict) -> CentralisedResult:
    return CentralisedResult(
        model="cnn-lstm",
        task="purchase",
        test=test,
        history=[],
        n_train=470,
        n_test=118,
        epochs_run=3,
        best_epoch=3,
        wall_s=4.25,
        epsilon=7.9,
        delta=1 / 4700,
        noise_multiplier=0.7,
        max_grad_norm=1.0,
    )


def test_gap_is_federated_minus_centralised(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path)
    federated = {
        "test": {"roc_auc": 0.75, "log_loss": 0.40, "pr_auc": math.nan, "n": 118},
        "rounds": 3,
        "wall_s": 9.0,
        "epsilon": None,
        "delta": 2e-4,
    }
    cen = centralised_result({"roc_auc": 0.70, "log_loss": 0.50, "pr_auc": 0.2, "n": 118})
    summary = build_summary(cfg, federated, cen)
    assert summary["gap"]["roc_auc"] == pytest.approx(0.05)
    assert summary["gap"]["log_loss"] == pytest.approx(-0.10)
    assert "n" not in summary["gap"]  # a count (or an interval) has no meaningful gap
    assert summary["gap"]["pr_auc"] is None  # NaN is not a number a reader can use
    assert build_summary(cfg, federated, None)["gap"] is None


def test_run_outputs_summary_keys_report_and_plots(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    play_two_rounds(run, model_weights(cfg, 1), model_weights(cfg, 2))
    federated = run.finish(12.5)
    fed_auc = federated["test"]["roc_auc"]
    cen = centralised_result({"roc_auc": 0.70, "accuracy": 0.88, "log_loss": 0.5})
    paths = write_run_outputs(tmp_path, cfg, federated, cen)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["federated"]["test"]["roc_auc"] == pytest.approx(fed_auc)
    assert summary["centralised"]["test"] == {"roc_auc": 0.70, "accuracy": 0.88, "log_loss": 0.5}
    assert summary["federated"]["rounds"] == 2
    assert summary["federated"]["wall_s"] == 12.5 and summary["centralised"]["wall_s"] == 4.25
    assert summary["federated"]["epsilon"]["max"] == 4.0
    assert summary["federated"]["epsilon"]["per_client"] == {"0": 4.0, "1": 3.0}
    assert summary["delta"] == federated["delta"]
    assert summary["gap"]["roc_auc"] == pytest.approx(fed_auc - 0.70)
    assert summary["config"] == cfg.to_flower()
    assert "Customer-level" in summary["privacy"]
    report = paths["report"].read_text()
    assert "| metric | federated | centralised | gap (fed - cen) |" in report
    fed = federated["test"]
    shown = f"{fed_auc:.3f} ({fed['roc_auc_low']:.3f}-{fed['roc_auc_high']:.3f})"
    assert f"| roc_auc | {shown} | 0.7 | {fed_auc - 0.70:.4g} |" in report
    assert "| wall time (s) | 12.5 | 4.25 |" in report
    assert "| epsilon | 4 | 7.9 |" in report
    assert "| 1 | 3 |" in report  # epsilon per client
    for name in ("roc_auc_per_round.png", "epsilon_per_round.png", "gains_lift.png"):
        assert (tmp_path / name).stat().st_size > 0 and f"]({name})" in report
    assert paths["html"] == tmp_path / "report.html" and "<table>" in paths["html"].read_text()


def test_the_scores_behind_the_final_test_metrics_are_committed(tiny_data, tmp_path):
    """test_scores.csv holds what final_test was computed from (the gains figure draws it),
    committed with the round: a resumed run reads the same file."""
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    play_two_rounds(run, model_weights(cfg, 1), model_weights(cfg, 2))
    y, score = read_scores(RunDir(tmp_path).test_scores)
    test = store.load_pooled(tiny_data, "test")
    assert len(y) == len(test) and set(np.unique(y)) <= {0.0, 1.0}
    assert roc_auc_score(y, score) == pytest.approx(run.final_test["roc_auc"], abs=1e-6)
    resumed = RunLog(cfg, tmp_path, tiny_data, num_nodes=3, round_offset=2)
    assert resumed.finish(0.0)["test"]["roc_auc"] == run.final_test["roc_auc"]
    assert read_scores(RunDir(tmp_path).test_scores)[1].tolist() == score.tolist()


def test_run_outputs_without_dp_or_centralised(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path, dp="none")
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    weights = model_weights(cfg, 1)
    run.on_train(train_summary(1), ArrayRecord(weights), None)
    run.evaluate_global(1, ArrayRecord(weights))
    write_run_outputs(tmp_path, cfg, run.finish(), None)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["federated"]["epsilon"] == {"max": None, "per_client": None, "unit": None}
    assert summary["delta"] is None and summary["centralised"] is None and summary["gap"] is None
    assert "No differential privacy" in summary["privacy"]
    assert "No centralised reference" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "epsilon_per_round.png").exists()
    assert np.isfinite(summary["federated"]["test"]["log_loss"])


def test_resume_keeps_earlier_epsilons_and_failures(tiny_data, tmp_path):
    # rounds 1-2, then the server dies; the resumed run hears from clients 0 and 1 only
    cfg = settings(tiny_data, tmp_path)
    before = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    weights = model_weights(cfg, 1)
    before.on_train(
        train_summary(1, ok=2, failed=1, clients=[(0, 3.1), (1, 3.2)]), ArrayRecord(weights), None
    )
    before.evaluate_global(1, ArrayRecord(weights))
    before.on_train(
        train_summary(2, clients=[(0, 5.1), (1, 5.2), (2, 6.5)]), ArrayRecord(weights), None
    )
    before.evaluate_global(2, ArrayRecord(weights))

    after = RunLog(cfg, tmp_path, tiny_data, num_nodes=3, round_offset=2)
    after.on_train(
        train_summary(1, ok=2, timed_out=1, clients=[(0, 7.1), (1, 7.2)]),
        ArrayRecord(weights),
        None,
    )
    after.evaluate_global(1, ArrayRecord(weights))
    result = after.finish(1.0)
    # client 2 spent 6.5 before the crash: the run's worst case is not client 1's 7.2 alone
    assert result["epsilon"]["per_client"] == {"0": 7.1, "1": 7.2, "2": 6.5}
    assert result["failures"] == {"failed": 1, "declined": 0, "timed_out": 1}
    assert result["rounds"] == 3
    assert [r["round"] for r in RunDir(tmp_path).read_rounds()] == [1.0, 2.0, 3.0]


def test_evaluate_every_skips_rounds_but_not_the_last(tiny_data, tmp_path):
    cfg = settings(tiny_data, tmp_path, **{"evaluate-every": 2})
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    weights = model_weights(cfg, 1)
    returned = {}
    for rnd in (1, 2, 3):
        run.on_train(train_summary(rnd), ArrayRecord(weights), MetricRecord({"train-loss": 0.5}))
        returned[rnd] = run.evaluate_global(rnd, ArrayRecord(weights))
    assert returned[1] is None and returned[2] is not None and returned[3] is not None
    rows = RunDir(tmp_path).read_rounds()
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert [r["test_roc_auc"] is not None for r in rows] == [False, True, True]
    assert rows[0]["elapsed_s"] is not None  # the row is written all the same
    assert run.final_test["roc_auc"] == pytest.approx(rows[2]["test_roc_auc"], abs=1e-5)


def test_one_line_per_round_with_replies_the_test_metric_and_epsilon(tiny_data, tmp_path, caplog):
    cfg = settings(tiny_data, tmp_path)
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    with caplog.at_level("DEBUG", logger="fedmarket"):
        play_two_rounds(run, model_weights(cfg, 1), model_weights(cfg, 2))
    # what the terminal shows of each round, besides a warning per failed client
    shown = [r for r in caplog.records if r.levelno >= 20 and "/3: " in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in shown] == ["round 1/3", "round 2/3"]
    first, second = (r.getMessage() for r in shown)
    test_auc = run.rows[1]["test_roc_auc"]
    assert first.startswith("round 1/3: 2/3 replies ok (1 failed)")
    assert f"test roc_auc {test_auc:.4f}" in first and "epsilon max 3.000" in first
    assert "(1 declined, 1 timed out)" in second and "epsilon max 4.000" in second
    assert all(r.levelname == "WARNING" for r in shown)  # failures make the line a warning
    per_client = [r for r in caplog.records if "epsilon per client" in r.getMessage()]
    assert per_client and all(r.levelname == "DEBUG" for r in per_client)


def test_a_clean_round_is_info_and_rounds_not_evaluated_say_when(tiny_data, tmp_path, caplog):
    cfg = settings(tiny_data, tmp_path, **{"evaluate-every": 2, "dp": "none"})
    run = RunLog(cfg, tmp_path, tiny_data, num_nodes=3)
    weights = model_weights(cfg, 1)
    run.on_train(train_summary(1), ArrayRecord(weights), MetricRecord({"train-loss": 0.6}))
    with caplog.at_level("INFO", logger="fedmarket"):
        run.evaluate_global(1, ArrayRecord(weights))
    [record] = caplog.records
    assert record.levelname == "INFO"
    assert record.getMessage() == "round 1/3: 3/3 replies ok, test every 2 rounds"
