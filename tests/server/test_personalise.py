"""Personalisation end to end in-process: the ServerApp's last message and RUN/personal."""

import json

import pytest
import torch
from flwr.app import MessageType

from clients.app import make_client_app
from fedmarket.experiments.compare import compare_runs
from fedmarket.models import build_model
from fedmarket.predictions import read_predictions
from fedmarket.rundir import RunDir
from fedmarket.value.personal import write_personal
from server.app import make_server_app
from server.personalise import scores_hint
from tests.flower_helpers import InProcessGrid, pretend_running_task
from tests.server.test_app import server_context, settings

pytestmark = [pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "dp"), [("finetune", "client"), ("fedper", "none"), ("ditto", "none")]
)
def test_each_method_writes_personal_scores_and_the_report_column(
    tiny_data, tmp_path, monkeypatch, method, dp
):
    pretend_running_task(monkeypatch)
    cfg = settings(tiny_data, tmp_path, personalisation=method, dp=dp)
    grid = InProcessGrid(make_client_app(cfg), 3)
    make_server_app(cfg)(grid, server_context())

    files = RunDir(tmp_path)
    federated = json.loads(files.federated.read_text())
    assert {k: federated["personal"][k] for k in ("method", "status")} == {
        "method": method,
        "status": "scored",
    }
    [mine] = read_predictions(files.personal_scores).values()
    [fed] = read_predictions(files.test_scores).values()
    assert sorted(zip(mine.partition, mine.customer, strict=True)) == sorted(
        zip(fed.partition, fed.customer, strict=True)
    )
    clients = json.loads(files.personal_metrics.read_text())["clients"]
    assert sorted(c["partition-id"] for c in clients) == [0, 1, 2]
    if dp == "client":  # the fine-tune's steps are in each client's cumulative epsilon
        rounds = files.read_marker()["epsilon_by_client"]
        total = federated["epsilon"]["per_client"]
        for c in clients:
            pid = str(int(c["partition-id"]))
            assert rounds[pid] < c["epsilon"] == total[pid] <= cfg.target_epsilon
        assert federated["personal"]["epsilon_max"] == federated["epsilon"]["max"]
    report = (tmp_path / "report.md").read_text()
    assert "ROC-AUC personalised" in report and f"personalised model ({method})" in report
    comparison = compare_runs(tmp_path, tmp_path, kind_a="personal", kind_b="federated")
    assert comparison.a.kind == "personal"

    # the personalise message is the last one, an evaluate message naming the method
    last = grid.sent[-3:]
    assert all(m.metadata.message_type == MessageType.EVALUATE for m in last)
    assert {m.content["config"]["personalise"] for m in last} == {method}
    if method == "fedper":  # no head left a client; the global head was never trained
        trains = [r for r in grid.replies if r.metadata.message_type == MessageType.TRAIN]
        assert trains and all("head.weight" not in r.content["arrays"] for r in trains)
        _, saved = files.latest_checkpoint()
        initial = build_model(cfg.model, 11, task=cfg.task, seed=cfg.seed).state_dict()
        # (a weighted mean of copies of it: equal up to float rounding)
        torch.testing.assert_close(saved["head.weight"], initial["head.weight"], rtol=0, atol=1e-6)
        assert not torch.equal(saved["recurrent.layers.0.weight_ih_l0"],
                               initial["recurrent.layers.0.weight_ih_l0"])  # fmt: skip


def test_a_simulation_without_state_dir_says_how_to_get_the_scores(tiny_data, tmp_path):
    # `flwr run` (found by running it): no state-dir, so no client kept its scores; the
    # run said nothing about why RUN/personal/test_scores.csv and the column were missing
    cfg = settings(tiny_data, tmp_path, personalisation="finetune", **{"state-dir": ""})
    clients = [{"partition-id": 0.0, "roc_auc": 0.7}, {"partition-id": 1.0, "roc_auc": 0.6}]
    block = write_personal(tmp_path, "finetune", clients, [], state_dir="", partitions=[0, 1])
    assert block == {"method": "finetune", "status": "metrics only"}
    assert not RunDir(tmp_path).personal_scores.exists()
    hint = scores_hint(cfg, [0, 1], block["status"])
    assert hint is not None and "state-dir='DIR'" in hint and "test_scores.csv" in hint


@pytest.mark.parametrize(
    ("state_dir", "partitions", "status"),
    [
        ("set", [0, 1], "metrics only"),  # set, but a client left no scores: not this cause
        ("", None, "metrics only"),  # SuperNodes on their own machines: scores stay there
        ("", [0, 1], "scored"),
        ("", [0, 1], "failed: node 3: boom"),
    ],
)
def test_no_state_dir_hint_where_it_is_not_the_cause(
    tiny_data, tmp_path, state_dir, partitions, status
):
    value = str(tmp_path / "state") if state_dir else ""
    cfg = settings(tiny_data, tmp_path, personalisation="fedper", **{"state-dir": value})
    assert scores_hint(cfg, partitions, status) is None
