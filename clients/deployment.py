"""The ClientApp's deployment side: a SuperNode that holds a raw export, not prepared data.

Started with ``--node-config 'data-path="/data/retailer_00" partition-id=0
num-partitions=3'``, the client answers the server's two agreement queries (describe,
moments; see ``fedmarket.deploy.agreement``) from its own export, and before each train or
evaluate message prepares its partition locally with the agreed cut-off and statistics.
Replies carry only aggregates; the export, the pseudonym key and the featurised customers
never leave this machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict

from fedmarket.config import RunConfig
from fedmarket.errors import FedmarketError
from fedmarket.names import NODE_DATA_PATH

# ``fedmarket.deploy`` (pandas: a second of an actor's start on a small machine) is imported by
# the deployment's functions only, not by every simulation actor that asks ``has_raw_export``.

# Error code of a query the client could not answer (bad export, unknown stage).
QUERY_FAILED_CODE = 1002


def has_raw_export(context: Context) -> bool:
    return NODE_DATA_PATH in context.node_config


def answer_query(msg: Message, context: Context) -> Message:
    """The describe or moments reply, or an Error reply saying what is wrong locally."""
    from fedmarket.deploy import agreement as ag
    from fedmarket.deploy.local_data import LocalRetailer

    config = msg.content.config_records.get("config", ConfigRecord())
    stage = str(config.get(ag.STAGE_KEY, ""))
    node = context.node_config
    if stage == ag.DESCRIBE and not has_raw_export(context):  # prepared partition: no agreement
        metrics = {"prepared": 1, "partition-id": int(node.get("partition-id", 0))}
        if "num-partitions" in node:
            metrics["num-partitions"] = int(node["num-partitions"])
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
    try:
        retailer = LocalRetailer.from_node_config(context.node_config)
        if stage == ag.DESCRIBE:
            num = node.get("num-partitions")
            metrics = ag.describe_metrics(
                retailer.last_event_time(),
                retailer.partition_id,
                int(num) if num is not None else None,
            )
        elif stage == ag.MOMENTS:
            plan = ag.WindowPlan.from_dict(json.loads(str(config[ag.PLAN_KEY])))
            metrics = retailer.summary(plan).to_metrics()
        else:
            raise FedmarketError(f"unknown agreement stage {stage!r}")
    except FedmarketError as exc:
        return Message(Error(code=QUERY_FAILED_CODE, reason=f"{stage}: {exc}"), reply_to=msg)
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def local_partition(
    config: Mapping[str, Any], context: Context, cfg: RunConfig
) -> tuple[RunConfig, Path]:
    """This retailer's prepared directory for the agreed statistics, and the run's settings.

    ``config`` is the train or evaluate message's config (it carries the agreement).
    ``delta = 0`` in the run config means 1/(10 × all retailers' training customers); the
    total comes from the agreement, so every retailer uses the same delta.
    """
    from fedmarket.deploy import agreement as ag
    from fedmarket.deploy.local_data import LocalRetailer

    if ag.CONFIG_KEY not in config:
        raise FedmarketError(
            "the server sent no preprocessing agreement; is the ServerApp the "
            "same fedmarket version as this SuperNode?"
        )
    agreement = ag.Agreement.from_json(str(config[ag.CONFIG_KEY]))
    retailer = LocalRetailer.from_node_config(context.node_config)
    if cfg.delta == 0:
        cfg = cfg.replace(delta=agreement.delta(0.0))
    return cfg, retailer.prepared(agreement)
