"""The agreement queries between the real ServerApp code and the real ClientApp, in process.

``server.consortium.agree`` talks through a routing Grid to ``clients.app``'s query handler,
each node with its own Context and only its own export, as on separate machines.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, RecordDict

from clients.app import make_client_app
from clients.deployment import local_partition
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.deploy.agreement import CONFIG_KEY, WindowPlan
from fedmarket.errors import DataError, FedmarketError
from server.consortium import agree, deployment_strategy
from tests.deployment.routing import RoutingGrid

pytestmark = pytest.mark.usefixtures("task_identity")
PLAN = WindowPlan(step_days=7)  # the window tests/conftest.py prepares tiny_data with


def node_context(node_id: int, node: dict) -> Context:
    return Context(run_id=1, node_id=node_id, node_config=node, state=RecordDict(), run_config={})


def raw_nodes(tiny_raw, tmp_path, count: int = 3) -> dict[int, Context]:
    key = tmp_path / "key"
    key.write_text(base64.b64encode(b"k" * 32).decode() + "\n")  # tiny_data's pseudonym key
    key.chmod(0o600)
    return {
        200 + i: node_context(
            200 + i,
            {
                "partition-id": i,
                "num-partitions": count,
                "key-file": str(key),
                "data-path": str(tiny_raw / f"retailer_{i:02d}"),
                "cache-dir": str(tmp_path / f"c{i}"),
            },
        )
        for i in range(count)
    }


def test_agreement_equals_what_data_prepare_computes_from_all_exports(
    tiny_raw, tiny_data, tmp_path
):
    contexts = raw_nodes(tiny_raw, tmp_path)
    grid = RoutingGrid(make_client_app(), contexts)
    consortium = agree(grid, timeout=5, plan=PLAN)
    manifest = store.read_manifest(tiny_data)
    agreement = consortium.agreement
    assert consortium.node_ids == (200, 201, 202)
    assert agreement.plan.cutoff == manifest["window"]["cutoff"]
    assert agreement.n_train_total == sum(p["train"]["n"] for p in manifest["partitions"])
    np.testing.assert_allclose(agreement.stats.mean, manifest["normalisation"]["mean"], rtol=1e-12)
    # What went to the server: aggregates only (numbers and lists of per-feature numbers).
    for reply in grid.replies:
        for record in reply.content.metric_records.values():
            assert set(record) <= {
                "last-event-s",
                "partition-id",
                "num-partitions",
                "n-train",
                "n-test",
                "moment-count",
                "moment-sum",
                "moment-sumsq",
            }
        assert not reply.content.array_records and not reply.content.config_records


def test_a_retailer_with_a_broken_export_is_left_out(tiny_raw, tmp_path):
    contexts = raw_nodes(tiny_raw, tmp_path)
    contexts[202].node_config["data-path"] = str(tmp_path / "nowhere")
    consortium = agree(RoutingGrid(make_client_app(), contexts), timeout=5, plan=PLAN)
    assert consortium.node_ids == (200, 201)
    assert consortium.agreement.partitions == (0, 1)


def test_a_silent_retailer_after_describing_fails_the_agreement(tiny_raw, tmp_path):
    contexts = raw_nodes(tiny_raw, tmp_path)
    grid = RoutingGrid(make_client_app(), contexts)
    real = grid.send_and_receive

    def moments_without_202(messages, *, timeout=None):
        messages = list(messages)
        if "plan" in messages[0].content["config"]:
            grid.offline = {202}
        return real(messages, timeout=timeout)

    grid.send_and_receive = moments_without_202
    with pytest.raises(DataError, match="node 202: no reply"):
        agree(grid, timeout=5, plan=PLAN)


def test_prepared_partitions_need_no_agreement_and_mixing_is_refused(tiny_raw, tiny_data, tmp_path):
    prepared = {
        300 + i: node_context(
            300 + i, {"partition-id": i, "num-partitions": 3, "data-dir": str(tiny_data)}
        )
        for i in range(3)
    }
    consortium = agree(RoutingGrid(make_client_app(), prepared), timeout=5)
    assert consortium == type(consortium)((300, 301, 302), None)
    mixed = {**raw_nodes(tiny_raw, tmp_path, 2), 302: prepared[302]}
    with pytest.raises(DataError, match="same kind"):
        agree(RoutingGrid(make_client_app(), mixed), timeout=5, plan=PLAN)


def test_no_supernode_at_all_is_an_error():
    with pytest.raises(DataError, match="no SuperNode connected"):
        agree(RoutingGrid(make_client_app(), {}), timeout=0.5)


def test_client_prepares_from_the_agreement_and_takes_the_shared_delta(tiny_raw, tmp_path):
    contexts = raw_nodes(tiny_raw, tmp_path)
    consortium = agree(RoutingGrid(make_client_app(), contexts), timeout=5, plan=PLAN)
    config = ConfigRecord({CONFIG_KEY: consortium.agreement.to_json(), "server-round": 1})
    cfg, data_dir = local_partition(config, contexts[201], RunConfig.from_mapping({}))
    assert cfg.delta == pytest.approx(1 / (10 * consortium.agreement.n_train_total))
    assert json.loads((data_dir / "manifest.json").read_text())["partitions"][0]["id"] == 1
    kept, _ = local_partition(config, contexts[201], RunConfig.from_mapping({"delta": 1e-6}))
    assert kept.delta == 1e-6
    with pytest.raises(FedmarketError, match="no preprocessing agreement"):
        local_partition(
            ConfigRecord({"server-round": 1}), contexts[201], RunConfig.from_mapping({})
        )


@pytest.mark.parametrize(
    ("overrides", "available"),
    [
        ({}, 1),  # a lost retailer must not stall the others
        ({"min-train-replies": 2}, 2),
        ({"strategy": "krum"}, 3),  # Krum needs 2f + 3 clients per round
        ({"dp": "central"}, 3),  # central noise is calibrated for all agreed clients
    ],
)
def test_deployment_strategy_waits_only_for_what_the_settings_need(overrides, available):
    strategy = deployment_strategy(RunConfig.from_mapping(overrides), 3, recorder=None)
    inner = strategy.inner
    inner = getattr(inner, "strategy", inner)  # unwrap Flower's central-DP wrapper
    assert inner.min_available_nodes == available
