"""Fake Flower replies for in-process strategy tests (no Ray, no SuperLink).

``Message(content, dst_node_id, message_type)`` needs a running task, so replies are built
with explicit ``Metadata`` as flwr's own helpers do.
"""

from __future__ import annotations

import time

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    Error,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)


def metadata(node_id: int, message_type: str = MessageType.TRAIN) -> Metadata:
    return Metadata(
        run_id=1,
        message_id="",
        src_node_id=node_id,
        dst_node_id=1,
        reply_to_message_id="ins",
        group_id="1",
        created_at=time.time(),
        ttl=60.0,
        message_type=message_type,
    )


def weights(values) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.asarray(values, dtype=np.float64))})


def train_reply(node_id: int, values, metrics: dict) -> Message:
    content = RecordDict({"arrays": weights(values), "metrics": MetricRecord(metrics)})
    return Message(content=content, metadata=metadata(node_id))


def eval_reply(node_id: int, metrics: dict) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics)})
    return Message(content=content, metadata=metadata(node_id, MessageType.EVALUATE))


def error_reply(node_id: int, code: int, reason: str = "boom") -> Message:
    return Message(error=Error(code=code, reason=reason), metadata=metadata(node_id))


class FakeGrid:
    """Just what Flower's node sampling reads: the connected node ids."""

    def __init__(self, node_ids):
        self.node_ids = list(node_ids)

    def get_node_ids(self):
        return list(self.node_ids)


def pretend_running_task(monkeypatch) -> None:
    """Let strategies build instruction Messages, which read the running task's identity."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)
