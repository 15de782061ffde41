"""A Grid that delivers messages to ClientApps in this process, one Context per node.

Each message is deep-copied before delivery, as serialisation would: Flower's SecAgg+
workflow sends one shared record to every node, and the client mod mutates it.
"""

from __future__ import annotations

import copy
import time
from types import SimpleNamespace
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid


class RoutingGrid(Grid):
    def __init__(
        self,
        client_app: ClientApp,
        contexts: dict[int, Context],
        *,
        offline: set[int] = frozenset(),
    ) -> None:
        self.client_app = client_app
        self.contexts = contexts
        self.offline = set(offline)  # connected (listed) but never answering
        self.replies: list[Message] = []
        self._run = SimpleNamespace(run_id=1)  # the legacy client manager reads run.run_id

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def push_messages(self, messages: Any) -> Any:
        raise NotImplementedError

    def pull_messages(self, message_ids: Any) -> Any:
        raise NotImplementedError

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        out = []
        for sent in messages:
            sent.metadata.__dict__["_message_id"] = f"m{time.perf_counter_ns()}"
            if sent.metadata.dst_node_id in self.offline:
                continue
            msg = copy.deepcopy(sent)
            reply = self.client_app(msg, self.contexts[msg.metadata.dst_node_id])
            self.replies.append(reply)
            out.append(reply)
        return out
