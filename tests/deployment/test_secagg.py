"""SecAgg+ end to end in one process: the real workflow, the real client mod, three retailers.

A fake Grid hands each message to the SecAgg ClientApp of the addressed node (with that
node's own Context), so the four SecAgg+ stages, the preprocessing agreement and the
training run exactly as in deployment, without processes or sockets. The checks: the
server never receives a retailer's model in the clear, and the securely aggregated model
equals the num-examples-weighted mean of the models the retailers produced with DP-SGD
(clipping and noise applied before masking), up to SecAgg+'s quantisation step.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict

import clients.secagg_client as client_side
import server.secagg_workflow as server_side
from fedmarket.config import DEFAULTS
from fedmarket.data.protect.keys import create_key_file
from fedmarket.errors import ConfigError
from fedmarket.federated import client as client_mod
from fedmarket.rundir import RunDir
from tests.deployment.routing import RoutingGrid

pytestmark = pytest.mark.usefixtures("one_torch_thread", "task_identity")
REPO = Path(__file__).resolve().parents[2]


def run_config(out: Path, **overrides) -> dict:
    return {
        **DEFAULTS,
        **server_side.SECAGG_DEFAULTS,
        "num-server-rounds": 1,
        "model": "lstm",
        "round-timeout": 60.0,
        "out-dir": str(out),
        **overrides,
    }


@pytest.mark.parametrize("fraction_evaluate", [1.0, 0.0])
def test_secure_aggregate_is_the_weighted_mean_of_dp_models(
    tiny_raw, tmp_path, monkeypatch, fraction_evaluate
):
    produced: dict[int, tuple[float, dict]] = {}
    real_train = client_mod.RetailerClient.train

    def recording_train(self, *args, **kwargs):  # what each retailer hands to the SecAgg+ mod
        outcome = real_train(self, *args, **kwargs)
        produced[self.partition_id] = (outcome.metrics["num-examples"], outcome.state_dict)
        return outcome

    monkeypatch.setattr(client_mod.RetailerClient, "train", recording_train)
    cfg = run_config(tmp_path / "run", **{"fraction-evaluate": fraction_evaluate})
    contexts = {}
    for i in range(3):
        key = tmp_path / "keys" / f"r{i}.key"
        create_key_file(key, "hmac")
        node = {
            "partition-id": i,
            "num-partitions": 3,
            "key-file": str(key),
            "data-path": str(tiny_raw / f"retailer_{i:02d}"),
            "cache-dir": str(tmp_path / f"cache{i}"),
        }
        contexts[101 + i] = Context(
            run_id=1, node_id=101 + i, node_config=node, state=RecordDict(), run_config=cfg
        )
    grid = RoutingGrid(client_side.app, contexts)
    server_side.main(
        grid, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config=cfg)
    )

    # Nothing a retailer sent in a train stage carried a model in the clear.
    train_replies = [r for r in grid.replies if r.metadata.message_type == "train"]
    assert len(train_replies) == 3 * 4  # setup, share keys, masked vectors, unmask
    assert all(len(a) == 0 for r in train_replies for a in r.content.array_records.values())
    assert sorted(produced) == [0, 1, 2]
    weights = np.array([n for n, _ in produced.values()])
    blob = torch.load(tmp_path / "run" / "checkpoints" / "round-0001.pt", weights_only=True)
    for key, value in blob["state_dict"].items():
        stacked = np.stack([sd[key].numpy() for _, sd in produced.values()])
        expected = np.tensordot(weights / weights.sum(), stacked, axes=1)
        np.testing.assert_allclose(value.numpy(), expected, atol=2e-3, err_msg=key)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["federated"]["secure_aggregation"].startswith("SecAgg+")
    assert set(summary["federated"]["epsilon"]["per_client"]) == {"0", "1", "2"}
    assert summary["federated"]["epsilon"]["max"] <= 8.0 + 1e-9
    # every round committed, with or without the clients' evaluation
    assert [r["round"] for r in RunDir(tmp_path / "run").read_rounds()] == [1.0]
    assert RunDir(tmp_path / "run").read_marker()["round"] == 1


def test_central_dp_and_other_strategies_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot run with SecAgg"):
        server_side.SecAggSettings.split(run_config(tmp_path, dp="central"))
    with pytest.raises(ConfigError, match="not available"):
        server_side.SecAggSettings.split(run_config(tmp_path, strategy="krum"))
    with pytest.raises(ConfigError, match="personalisation='fedper' is not available"):
        server_side.SecAggSettings.split(run_config(tmp_path, personalisation="fedper"))
    with pytest.raises(ConfigError, match="fractions"):
        server_side.SecAggSettings.split(run_config(tmp_path, **{"secagg-num-shares": 1.5}))


def test_secagg_app_config_matches_the_main_app():
    app = tomllib.loads((REPO / "scripts" / "secagg_app" / "pyproject.toml").read_text())
    config = app["tool"]["flwr"]["app"]["config"]
    assert {k: v for k, v in config.items() if not k.startswith("secagg-")} == DEFAULTS
    assert {
        k: v for k, v in config.items() if k.startswith("secagg-")
    } == server_side.SECAGG_DEFAULTS
    assert set(client_side.SECAGG_KEYS) == set(server_side.SECAGG_DEFAULTS)
