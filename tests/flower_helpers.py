"""Driving fedmarket's Flower apps in-process: hand-built messages and a grid without Ray.

``Message(content, dst_node_id, message_type)`` needs a running task's identity, so
instructions are built with explicit ``Metadata``; strategies build their own, which
``pretend_running_task`` allows. ``InProcessGrid`` delivers each instruction to the
ClientApp as Flower's simulation engine does: one persistent Context per node, and a
handler that raises becomes an error reply (code 2) instead of an exception.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    Metadata,
    RecordDict,
)
from flwr.clientapp import ClientApp

CLIENT_APP_RAISED = 2  # flwr's ErrorCode.CLIENT_APP_RAISED_EXCEPTION


def instruction(
    content: RecordDict,
    *,
    node_id: int = 5,
    message_type: str = MessageType.TRAIN,
    message_id: str = "m1",
) -> Message:
    md = Metadata(
        run_id=1,
        message_id=message_id,
        src_node_id=1,
        dst_node_id=node_id,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=600.0,
        message_type=message_type,
    )
    return Message(content=content, metadata=md)


def train_instruction(weights: dict, server_round: int, **config) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord(weights),
            "config": ConfigRecord({"server-round": server_round, **config}),
        }
    )
    return instruction(content)


def evaluate_instruction(weights: dict, server_round: int) -> Message:
    content = RecordDict(
        {"arrays": ArrayRecord(weights), "config": ConfigRecord({"server-round": server_round})}
    )
    return instruction(content, message_type=MessageType.EVALUATE)


def node_context(
    partition_id: int, run_config: dict | None = None, *, num_partitions: int = 3, node_id: int = 5
) -> Context:
    return Context(
        run_id=1,
        node_id=node_id,
        node_config={"partition-id": partition_id, "num-partitions": num_partitions},
        state=RecordDict(),
        run_config=dict(run_config or {}),
    )


def pretend_running_task(monkeypatch) -> None:
    """Let strategies build instruction Messages, which read the running task's identity."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


class InProcessGrid:
    """The two Grid methods a strategy uses, answering with ClientApp calls in this process.

    Node ``100 + p`` is partition ``p``. Replies come back sorted by node id, so repeated
    runs aggregate in the same order (Flower's own order varies). ``fail_on_send`` raises
    on that send (1-based) to mimic a server that dies mid-run. ``sent`` and ``replies``
    keep every message for inspection.
    """

    def __init__(
        self,
        client_app: ClientApp,
        num_nodes: int,
        run_config: dict | None = None,
        *,
        fail_on_send: int | None = None,
    ) -> None:
        self.app = client_app
        self.contexts = {
            100 + p: node_context(p, run_config, num_partitions=num_nodes, node_id=100 + p)
            for p in range(num_nodes)
        }
        self.fail_on_send = fail_on_send
        self.sent: list[Message] = []
        self.replies: list[Message] = []
        self.sends = 0

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        self.sends += 1
        if self.sends == self.fail_on_send:
            raise RuntimeError("server crashed (test)")
        replies = []
        for msg in sorted(messages, key=lambda m: m.metadata.dst_node_id):
            self.sent.append(msg)
            try:
                reply = self.app(msg, self.contexts[msg.metadata.dst_node_id])
            except Exception as exc:  # Flower reports a raising ClientApp as an error reply
                reply = Message(Error(code=CLIENT_APP_RAISED, reason=repr(exc)), reply_to=msg)
            replies.append(reply)
        self.replies.extend(replies)
        return replies
