"""The ServerApp and ClientApp together, in-process: Flower's strategy loop without Ray."""

import json

import numpy as np
import pytest
import torch
from cryptography.fernet import Fernet
from flwr.app import Context, MessageType, RecordDict

from clients.app import make_client_app
from fedmarket.config import RunConfig
from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV
from fedmarket.errors import ConfigError, DataError
from fedmarket.federated.client_state import load_accountant, save_accountant
from fedmarket.privacy.accounting import AccountantState
from fedmarket.rundir import RunDir
from server.app import app as server_app
from server.app import make_server_app
from tests.conftest import copy_prepared, files_holding
from tests.flower_helpers import CLIENT_APP_RAISED, InProcessGrid, pretend_running_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(data_dir, run_dir, **overrides) -> RunConfig:
    # batch-size 256 > every partition: one Poisson step per epoch at q = 1 (fast accounting)
    return RunConfig.from_mapping(
        {
            "data-dir": str(data_dir),
            "out-dir": str(run_dir),
            "state-dir": str(run_dir / "client_state"),
            "num-server-rounds": 2,
            "batch-size": 256,
            **overrides,
        }
    )


def server_context(run_config: dict | None = None) -> Context:
    return Context(
        run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=dict(run_config or {})
    )


def train_replies(grid: InProcessGrid, server_round: int):
    """The valid train replies of one round (rounds are consecutive train sends)."""
    rounds = [[]]
    for reply in grid.replies:
        if reply.metadata.message_type != MessageType.TRAIN:
            if rounds[-1]:
                rounds.append([])
            continue
        rounds[-1].append(reply)
    return [r for r in rounds[server_round - 1] if not r.has_error()]


def test_flwr_run_path_writes_the_run_directory(tiny_data, tmp_path, monkeypatch):
    pretend_running_task(monkeypatch)
    cfg = settings(tiny_data, tmp_path)
    grid = InProcessGrid(make_client_app(), 3, cfg.to_flower())  # both read context.run_config
    server_app(grid, server_context(cfg.to_flower()))

    assert json.loads((tmp_path / "config.json").read_text()) == cfg.to_flower()
    rows = RunDir(tmp_path).read_rounds()
    assert [(r["round"], r["sent"], r["ok"], r["failed"]) for r in rows] == [
        (1.0, 3.0, 3.0, 0.0),
        (2.0, 3.0, 3.0, 0.0),
    ]
    # the round-2 model is FedAvg of the round-2 replies, weighted by num-examples
    replies = train_replies(grid, 2)
    n = np.array([r.content["metrics"]["num-examples"] for r in replies])
    _, saved = RunDir(tmp_path).latest_checkpoint()
    for key, tensor in saved.items():
        stacked = np.stack([r.content["arrays"][key].numpy() for r in replies]).astype(np.float64)
        expected = np.tensordot(n / n.sum(), stacked, axes=1)
        np.testing.assert_allclose(tensor.numpy(), expected, rtol=0, atol=1e-6)
    # round 2 started from the round-1 checkpoint, and every instruction carried the offset
    round_two = [m for m in grid.sent if m.metadata.message_type == MessageType.TRAIN][3:]
    first = torch.load(tmp_path / "checkpoints/round-0001.pt", weights_only=True)["state_dict"]
    for msg in round_two:
        sent = msg.content["arrays"].to_torch_state_dict()
        assert all(torch.equal(sent[k], first[k]) for k in first)
        assert msg.content["config"]["round-offset"] == 0
        assert msg.content["config"]["server-round"] == 2

    federated = json.loads((tmp_path / "federated.json").read_text())
    reported = {
        str(int(r.content["metrics"]["partition-id"])): r.content["metrics"]["epsilon"]
        for r in replies
    }
    assert federated["epsilon"]["per_client"] == reported
    assert federated["epsilon"]["max"] == max(reported.values()) <= cfg.target_epsilon
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["centralised"] is None and summary["federated"]["rounds"] == 2
    assert (tmp_path / "report.md").exists()


def test_failing_client_is_counted_and_the_run_finishes(tiny_data, tmp_path, monkeypatch):
    pretend_running_task(monkeypatch)
    data = copy_prepared(tiny_data, tmp_path / "data")
    labels = data / "partitions/2/train/y_purchase.npy"  # whole files (the server's checks
    np.save(labels, np.full_like(np.load(labels), 2.0))  # pass), labels no task accepts
    cfg = settings(data, tmp_path / "run")
    grid = InProcessGrid(make_client_app(cfg), 3)
    done = {}
    make_server_app(cfg, on_done=done.update)(grid, server_context())
    rows = RunDir(tmp_path / "run").read_rounds()
    assert [(r["sent"], r["ok"], r["failed"], r["eval_ok"], r["eval_failed"]) for r in rows] == [
        (3.0, 2.0, 1.0, 3.0, 0.0)
    ] * 2
    errors = [r for r in grid.replies if r.has_error()]
    assert len(errors) == 2 and {e.error.code for e in errors} == {CLIENT_APP_RAISED}
    assert all("DataError" in e.error.reason for e in errors)
    assert done["failures"] == {"failed": 2, "declined": 0, "timed_out": 0}
    assert sorted(done["epsilon"]["per_client"]) == ["0", "1"]
    assert RunDir(tmp_path / "run").latest_checkpoint()[0] == 2
    assert done["participation"] == {"rounds_aggregated": {"0": 2, "1": 2}, "never": [2]}


def test_the_server_checks_settings_and_data_before_writing(tiny_data, tmp_path, monkeypatch):
    """Under `flwr run` too: a setting the clients cannot meet, or damaged data, is refused
    before the run directory gets a file."""
    pretend_running_task(monkeypatch)
    cfg = settings(tiny_data, tmp_path / "run", **{"min-train-replies": 4})
    grid = InProcessGrid(make_client_app(cfg), 3)
    with pytest.raises(ConfigError, match="min-train-replies=4 but only 3 of 3"):
        make_server_app(cfg)(grid, server_context())
    data = copy_prepared(tiny_data, tmp_path / "data")
    (data / "partitions/1/test/y_count.npy").unlink()
    cfg = settings(data, tmp_path / "run")
    with pytest.raises(DataError, match=r"partitions/1/test/y_count\.npy: missing"):
        make_server_app(cfg)(InProcessGrid(make_client_app(cfg), 3), server_context())
    assert not (tmp_path / "run").exists()


def test_clients_over_budget_decline_and_no_round_is_aggregated(tiny_data, tmp_path, monkeypatch):
    pretend_running_task(monkeypatch)
    cfg = settings(tiny_data, tmp_path, **{"num-server-rounds": 1})
    spent = AccountantState("rdp", ((0.5, 1.0, 50),), 0.5)  # far beyond epsilon 8 already
    for pid in range(3):
        save_accountant(spent, cfg.state_dir, pid)
    grid = InProcessGrid(make_client_app(cfg), 3)
    done = {}
    make_server_app(cfg, on_done=done.update)(grid, server_context())
    [row] = RunDir(tmp_path).read_rounds()
    assert (row["sent"], row["ok"], row["declined"], row["failed"]) == (3.0, 0.0, 3.0, 0.0)
    # the round is committed, but nothing aggregated: no model saved, resume starts afresh
    assert RunDir(tmp_path).latest_checkpoint() == (1, None)
    assert not list((tmp_path / "checkpoints").glob("round-*.pt"))
    assert done["rounds"] == 0 and done["failures"]["declined"] == 3
    for pid in range(3):  # the refusal did not touch what each client had spent
        assert load_accountant(None, cfg.state_dir, pid) == spent


def test_resume_after_a_crash_matches_the_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    pretend_running_task(monkeypatch)
    whole = settings(tiny_data, tmp_path / "whole", **{"num-server-rounds": 3})
    done_whole = {}
    make_server_app(whole, on_done=done_whole.update)(
        InProcessGrid(make_client_app(whole), 3), server_context()
    )

    cfg = settings(tiny_data, tmp_path / "crashed", **{"num-server-rounds": 3})
    # sends: train 1, evaluate 1, train 2, evaluate 2, train 3 <- the server dies here
    crashing = InProcessGrid(make_client_app(cfg), 3, fail_on_send=5)
    with pytest.raises(RuntimeError, match="server crashed"):
        make_server_app(cfg)(crashing, server_context())
    run_dir = tmp_path / "crashed"
    assert len(RunDir(run_dir).read_rounds()) == 2 and not (run_dir / "federated.json").exists()
    offset, weights = RunDir(run_dir).latest_checkpoint()
    assert offset == 2

    done = {}  # a new simulation: fresh node contexts; the clients' files carry their epsilon
    resumed = make_server_app(
        cfg, round_offset=offset, initial_weights=weights, on_done=done.update
    )
    grid = InProcessGrid(make_client_app(cfg), 3)
    resumed(grid, server_context())
    trained = [m for m in grid.sent if m.metadata.message_type == MessageType.TRAIN]
    assert [
        (m.content["config"]["server-round"], m.content["config"]["round-offset"]) for m in trained
    ] == [(1, 2)] * 3
    assert [r["round"] for r in RunDir(run_dir).read_rounds()] == [1.0, 2.0, 3.0]
    assert done["rounds"] == 3
    for pid, eps in done_whole["epsilon"]["per_client"].items():
        assert done["epsilon"]["per_client"][pid] == pytest.approx(eps, rel=0, abs=1e-12)
    final, final_whole = (
        RunDir(run_dir).latest_checkpoint(),
        RunDir(tmp_path / "whole").latest_checkpoint(),
    )
    assert final[0] == final_whole[0] == 3
    for key, tensor in final_whole[1].items():
        torch.testing.assert_close(final[1][key], tensor, rtol=0, atol=1e-6)
    assert json.loads((run_dir / "config.json").read_text()) == cfg.to_flower()


class _SlowGrid:
    """Node ids that appear one per call, as SuperNodes registering."""

    def __init__(self, total: int) -> None:
        self.calls, self.total = 0, total

    def get_node_ids(self):
        self.calls += 1
        return list(range(min(self.calls, self.total)))


def test_server_waits_for_one_node_per_partition_and_says_how_to_fix_a_short_federation(
    monkeypatch, caplog
):
    from server import app as server_app

    pauses: list[float] = []
    monkeypatch.setattr(server_app.time, "sleep", pauses.append)
    grid = _SlowGrid(3)
    with caplog.at_level("WARNING", logger="fedmarket"):
        server_app._await_nodes(grid, 3, hint_after=0.0)
    assert grid.calls == 3
    assert pauses == [0.01, 0.02]  # short at first (a simulation's nodes are ms away)
    pauses.clear()
    server_app._await_nodes(_SlowGrid(9), 9, hint_after=1e9)
    assert pauses == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5]  # then every 0.5 s
    [record] = [r for r in caplog.records if "SuperNodes connected" in r.getMessage()]
    assert "1 of 3 SuperNodes" in record.getMessage()
    assert "--num-supernodes 3" in record.getMessage()
    caplog.clear()
    server_app._await_nodes(_SlowGrid(3), 1, hint_after=0.0)  # enough at once: no hint
    assert not caplog.records


# --- encrypted prepared data -------------------------------------------------------------------


def flwr_run(data_dir, run_dir) -> InProcessGrid:
    """`flwr run`: both apps read the run config from their context, and no key from it."""
    cfg = settings(data_dir, run_dir, dp="none", **{"num-server-rounds": 1})
    grid = InProcessGrid(make_client_app(), 3, cfg.to_flower())
    server_app(grid, server_context(cfg.to_flower()))
    return grid


def test_flwr_run_on_encrypted_data_with_the_key_in_the_environment(
    tiny_data, tiny_encrypted, tmp_path, monkeypatch
):
    pretend_running_task(monkeypatch)
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
    flwr_run(tiny_data, tmp_path / "plain")
    grid = flwr_run(tiny_encrypted.data, tmp_path / "encrypted")
    assert not any(reply.has_error() for reply in grid.replies)
    plain, encrypted = (RunDir(tmp_path / name) for name in ("plain", "encrypted"))
    [row_plain], [row_encrypted] = plain.read_rounds(), encrypted.read_rounds()
    tested = {k for k in row_plain if k.startswith(("test_", "fed_"))}
    assert "test_roc_auc" in tested  # the server evaluated on the pooled (decrypted) test set
    assert {k: row_encrypted[k] for k in tested} == {k: row_plain[k] for k in tested}
    _, weights_plain = plain.latest_checkpoint()
    _, weights_encrypted = encrypted.latest_checkpoint()
    assert all(torch.equal(weights_encrypted[k], weights_plain[k]) for k in weights_plain)
    assert not files_holding(tmp_path / "encrypted", tiny_encrypted.secret_forms())


@pytest.mark.parametrize("key", [None, "wrong"])
def test_flwr_run_without_the_right_key_stops_before_any_round_and_writes_nothing(
    tiny_encrypted, tmp_path, monkeypatch, key
):
    pretend_running_task(monkeypatch)
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    if key == "wrong":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
    message = "holds encrypted prepared data" if key is None else "does not decrypt"
    cfg = settings(tiny_encrypted.data, tmp_path / "run", dp="none")
    grid = InProcessGrid(make_client_app(), 3, cfg.to_flower())
    with pytest.raises(ConfigError, match=message):
        server_app(grid, server_context(cfg.to_flower()))
    assert grid.sent == [] and not (tmp_path / "run").exists()


def test_under_flwr_run_the_stream_shows_fedmarket_once_and_flower_warnings_only():
    import io
    import logging

    from flwr.common.logger import console_handler as flower_console

    from server.app import flwr_run_terminal

    stream = io.StringIO()
    previous = flower_console.setStream(stream)
    ours, flower = logging.getLogger("fedmarket"), logging.getLogger("flwr")
    try:
        with flwr_run_terminal():
            ours.info("fedmarket: run finished; results in runs/x")
            ours.debug("round 1: epsilon per client {0: 5.9}")
            flower.info("configure_train: Sampled 3 nodes (out of 3)")
            flower.warning("a node did not answer")
        ours.info("after the run")  # undone: fedmarket's logger has no Flower handler now
    finally:
        flower_console.setStream(previous)
    shown = stream.getvalue()
    assert shown.count("results in runs/x") == 1 and shown.count("did not answer") == 1
    for hidden in ("epsilon per client", "Sampled 3 nodes", "after the run"):
        assert hidden not in shown
    assert flower.propagate is False  # Opacus' root handler no longer prints each line again
