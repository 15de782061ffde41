"""Flower's simulation hands messages on when they arrive, not at its next poll.

Flower 1.41's simulation moves a round's messages through polls with fixed sleeps: the
ServerApp's ``InMemoryGrid.send_and_receive`` looks for replies every 0.1 s
(``pull_interval``), and ``vce_api.add_messages_to_queue`` looks for new instructions every
0.1 s (``f_stop.wait(0.1)``). Each round therefore waits up to 0.1 s before its clients are
given their messages and up to 0.1 s after the last reply is stored: on a small round
(a sweep point's, the bench's 64-customer clients) that is most of what lies outside
training. Inside a ``ray_session`` (``flower_backend``) fedmarket gives Flower:

- ``PromptGrid``: an ``InMemoryGrid`` that sets ``pushed`` when it pushes instructions and,
  waiting for replies, wakes when one is stored (``replied``) instead of sleeping;
- ``add_messages_to_queue``, which wakes on ``pushed`` and hands over every instruction
  waiting, and ``put_message_into_state``, which sets ``replied`` after storing a reply.

Each wait still ends after Flower's own interval, so a message that came another way is
taken as late as before, never later; the run's stop is seen within ``QUEUE_POLL_S``. The
messages, their order per client and what the apps compute are Flower's; only the waits
change. One simulation runs at a time in a process (``flower_backend`` swaps module
attributes), so the two events are module-wide.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterable
from queue import Empty, Queue
from typing import Any

# Flower's own intervals, the longest any wait here lasts.
PULL_INTERVAL_S = 0.1
# How often an idle thread looks at the run's stop event (as ``ray_session.PromptQueue``).
STOP_POLL_S = 0.02

pushed = threading.Event()  # the ServerApp pushed instructions
replied = threading.Event()  # a client's reply was stored


def _grid_class() -> type:
    from flwr.superlink.grid import InMemoryGrid

    class PromptGrid(InMemoryGrid):  # type: ignore[misc,valid-type]
        """Flower's grid; pushing wakes the instruction thread, a stored reply wakes the
        wait for replies (Flower's loop, with ``replied.wait`` for its sleep)."""

        def push_messages(self, messages: Iterable[Any]) -> Iterable[str]:
            ids = super().push_messages(messages)
            pushed.set()
            return ids

        def send_and_receive(
            self, messages: Iterable[Any], *, timeout: float | None = None
        ) -> Iterable[Any]:
            msg_ids = set(self.push_messages(messages))
            del messages
            end_time = time.time() + (timeout if timeout is not None else 0.0)
            ret: list[Any] = []
            while timeout is None or time.time() < end_time:
                replied.clear()  # before pulling: a reply stored during the pull wakes us
                res_msgs = self.pull_messages(msg_ids)
                ret.extend(res_msgs)
                msg_ids.difference_update({m.metadata.reply_to_message_id for m in res_msgs})
                if not msg_ids:
                    break
                replied.wait(self.pull_interval)
            return ret

    return PromptGrid


_grid: type | None = None


def prompt_grid() -> type:
    """The ``PromptGrid`` class (made once: it subclasses Flower's, imported on first use)."""
    global _grid
    if _grid is None:
        _grid = _grid_class()
    return _grid


def add_messages_to_queue(
    state: Any, queue: Queue[Any], nodes_mapping: dict[int, Any], f_stop: threading.Event
) -> None:
    """Flower's instruction thread: every waiting instruction to the workers' queue, as
    soon as the grid has pushed it (Flower: one per client per 0.1 s poll)."""
    waited = 0.0
    while not f_stop.is_set():
        if pushed.wait(STOP_POLL_S) or waited >= PULL_INTERVAL_S:
            pushed.clear()  # before looking: a push during the look is seen next time
            waited = 0.0
            while _move_instructions(state, queue, nodes_mapping):
                pass
        else:
            waited += STOP_POLL_S


def _move_instructions(state: Any, queue: Queue[Any], nodes_mapping: dict[int, Any]) -> bool:
    """One of Flower's passes (at most one instruction per client); whether it moved any."""
    moved = False
    for node_id in nodes_mapping:
        for msg in state.get_message_ins(node_id=node_id, limit=1):
            queue.put(msg)
            moved = True
    return moved


def put_message_into_state(state: Any, queue: Queue[Any], f_stop: threading.Event) -> None:
    """Flower's reply thread: each reply into the state, then wake the grid's wait."""
    while not f_stop.is_set():
        try:
            reply = queue.get(timeout=STOP_POLL_S)
        except Empty:
            continue
        state.store_message_res(reply)
        replied.set()


def patches() -> list[tuple[Any, str, Any]]:
    """(module, attribute, fedmarket's value) for each of Flower's names replaced in a run."""
    from flwr.server.superlink.fleet.vce import vce_api

    # the module, not the function of the same name that ``flwr.simulation`` exports
    run_simulation = importlib.import_module("flwr.simulation.run_simulation")
    return [
        (run_simulation, "InMemoryGrid", prompt_grid()),
        (vce_api, "add_messages_to_queue", add_messages_to_queue),
        (vce_api, "put_message_into_state", put_message_into_state),
    ]
