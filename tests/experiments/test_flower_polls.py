"""Flower's simulation hands a round's messages on when they arrive, not at its next 0.1 s poll."""

import threading
import time
from queue import Queue

import pytest
from flwr.superlink.grid import InMemoryGrid

from fedmarket.experiments import flower_polls


class FakeState:
    """Flower's LinkState as the two threads use it: instructions per node, stored replies."""

    def __init__(self) -> None:
        self.instructions: dict[int, list[str]] = {}
        self.stored: list[str] = []

    def get_message_ins(self, node_id: int, limit: int) -> list[str]:
        waiting = self.instructions.get(node_id, [])
        taken, self.instructions[node_id] = waiting[:limit], waiting[limit:]
        return taken

    def store_message_res(self, message: str) -> None:
        self.stored.append(message)


def _thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_instructions_reach_the_workers_queue_when_pushed_and_the_thread_stops_promptly():
    state, queue, stop = FakeState(), Queue(), threading.Event()
    thread = _thread(flower_polls.add_messages_to_queue, state, queue, {1: 0, 2: 1}, stop)
    time.sleep(0.15)  # idle past Flower's interval: nothing to move, nothing moved
    assert queue.empty()
    state.instructions = {1: ["a1", "a2"], 2: ["b1"]}  # two for node 1: both move, in order
    started = time.perf_counter()
    flower_polls.pushed.set()
    got = [queue.get(timeout=2.0) for _ in range(3)]
    assert time.perf_counter() - started < 0.5  # Flower: one per node per 0.1 s pass
    assert sorted(got) == ["a1", "a2", "b1"] and got.index("a1") < got.index("a2")
    stopped = time.perf_counter()
    stop.set()
    thread.join(timeout=2.0)
    assert not thread.is_alive() and time.perf_counter() - stopped < 0.5


def test_instructions_not_announced_are_still_taken_at_flowers_interval():
    state, queue, stop = FakeState(), Queue(), threading.Event()
    flower_polls.pushed.clear()
    thread = _thread(flower_polls.add_messages_to_queue, state, queue, {7: 0}, stop)
    state.instructions = {7: ["x"]}  # put there without ``pushed``
    assert queue.get(timeout=2.0) == "x"
    stop.set()
    thread.join(timeout=2.0)


def test_a_stored_reply_wakes_the_grid_and_the_reply_thread_stops_promptly():
    state, queue, stop = FakeState(), Queue(), threading.Event()
    flower_polls.replied.clear()
    thread = _thread(flower_polls.put_message_into_state, state, queue, stop)
    queue.put("reply")
    assert flower_polls.replied.wait(2.0) and state.stored == ["reply"]
    stopped = time.perf_counter()
    stop.set()
    thread.join(timeout=2.0)
    assert not thread.is_alive() and time.perf_counter() - stopped < 0.5


class _Reply:
    def __init__(self, to: str) -> None:
        self.metadata = type("Metadata", (), {"reply_to_message_id": to})()


def test_the_grid_returns_when_the_last_reply_is_stored_not_at_its_next_poll(monkeypatch):
    """The pull interval is set to 5 s: only the ``replied`` event can end the wait early."""
    monkeypatch.setattr(InMemoryGrid, "push_messages", lambda self, messages: ["m1", "m2"])
    grid = flower_polls.prompt_grid().__new__(flower_polls.prompt_grid())
    grid.pull_interval = 5.0
    ready: list[_Reply] = []
    grid.pull_messages = lambda ids: [ready.pop() for _ in list(ready)]  # type: ignore[method-assign]
    flower_polls.pushed.clear()

    def reply_later() -> None:
        for to in ("m1", "m2"):
            time.sleep(0.05)
            ready.append(_Reply(to))
            flower_polls.replied.set()

    _thread(reply_later)
    started = time.perf_counter()
    replies = grid.send_and_receive(["i1", "i2"])
    assert time.perf_counter() - started < 2.0
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["m1", "m2"]
    assert flower_polls.pushed.is_set()  # the instruction thread was woken


def test_the_grid_still_gives_up_at_its_timeout(monkeypatch):
    monkeypatch.setattr(InMemoryGrid, "push_messages", lambda self, messages: ["m1"])
    grid = flower_polls.prompt_grid().__new__(flower_polls.prompt_grid())
    grid.pull_interval = 0.01
    grid.pull_messages = lambda ids: []  # type: ignore[method-assign]
    started = time.perf_counter()
    assert grid.send_and_receive(["i1"], timeout=0.1) == []
    assert 0.1 <= time.perf_counter() - started < 1.0


@pytest.mark.parametrize("module_name", ["run_simulation", "vce_api"])
def test_patches_name_flowers_own_attributes(module_name):
    """Each replaced name exists in Flower (a Flower upgrade that renames one fails here)."""
    for module, name, value in flower_polls.patches():
        assert hasattr(module, name) and callable(value)
    assert any(module_name in module.__name__ for module, _, _ in flower_polls.patches())
