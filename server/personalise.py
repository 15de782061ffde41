"""The run's last message under ``personalisation``: every retailer builds its own model.

After the last round the server sends each node the final global model in an evaluate
message whose config names the method (``clients.app.PERSONALISE_KEY``). Each client fine-
tunes it (``finetune``, charged to its privacy budget), puts its private head on it
(``fedper``) or takes its Ditto model (``ditto``), scores its own test customers and replies
with aggregate metrics only. A client whose budget does not cover the fine-tune declines,
like a round. Results: RUN/personal (``fedmarket.value.personal``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedmarket.config import RunConfig
from fedmarket.value.personal import write_personal
from strategies.recording import shorten

log = logging.getLogger("fedmarket")
PERSONALISE_KEY = "personalise"  # the client's side: clients.app


def personalise(
    grid: Grid,
    cfg: RunConfig,
    arrays: ArrayRecord,
    run_dir: Path,
    shared_config: dict[str, Any],
    partitions: list[int] | None = None,
) -> dict[str, Any]:
    """Send the personalisation message to every node; write RUN/personal; the block for
    federated.json. ``partitions``: the prepared partitions (the server reads the data:
    simulation), whose per-customer scores are gathered from the clients' state-dir where
    it is on this machine (simulation; a retailer's state-dir is on its own)."""
    config = ConfigRecord({PERSONALISE_KEY: cfg.personalisation, **shared_config})
    messages = [
        Message(
            content=RecordDict({"arrays": arrays, "config": config}),
            message_type=MessageType.EVALUATE,
            dst_node_id=node,
        )
        for node in grid.get_node_ids()
    ]
    log.info("fedmarket: personalisation %r on %d clients", cfg.personalisation, len(messages))
    replies = list(grid.send_and_receive(messages, timeout=cfg.round_timeout))
    per_client, failures = [], []
    for msg in replies:
        if msg.has_error():
            node = int(msg.metadata.src_node_id)
            failures.append(f"node {node}: {shorten(msg.error.reason)}")
            continue
        metrics = msg.content["metrics"]
        per_client.append({k: metrics[k] for k in metrics})
    if len(replies) < len(messages):
        failures.append(f"{len(messages) - len(replies)} client(s) did not reply in time")
    for failure in failures:
        log.warning("personalisation: %s", failure)
    block = write_personal(
        run_dir,
        cfg.personalisation,
        per_client,
        failures,
        state_dir=cfg.state_dir if partitions is not None else "",
        partitions=partitions or (),
    )
    if hint := scores_hint(cfg, partitions, block["status"]):
        log.info("%s", hint)
    return block


def scores_hint(cfg: RunConfig, partitions: list[int] | None, status: str) -> str | None:
    """Why RUN/personal has no test_scores.csv where the server reads the prepared data (a
    simulation, `flwr run` included) but the run has no ``state-dir``: each client kept its
    scores nowhere, so there is nothing to gather and the report has no personalised column.
    `fedmarket simulate` always sets one; under `flwr run` it is the user's to set."""
    if partitions is None or cfg.state_dir or status != "metrics only":
        return None
    return (
        "personalisation: only each client's aggregate metrics are in RUN/personal/"
        "metrics.json; the clients kept no per-customer scores because the run has no "
        "state-dir: add state-dir='DIR' to --run-config for RUN/personal/test_scores.csv "
        "and the report's personalised column"
    )
