"""The trackers, and the guard that keeps a tracking failure from costing a run its result."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedmarket.tracking import (
    GuardedTracker,
    flat_params,
    metric_values,
    open_tracker,
    tracked_run,
)
from tests.tracking.helpers import history, runs, store


def test_params_are_flat_strings_and_metrics_finite_numbers_with_valid_names():
    params = flat_params({"a": {"b": 1, "c": "x" * 9000}, "d-e": None, "f(g)": [1, 2]})
    assert params["a.b"] == "1" and len(params["a.c"]) == 500
    assert params["d-e"] == "None" and params["f_g_"] == "[1, 2]"
    values = metric_values(
        {"x": 1, "y": None, "z": float("nan"), "t": "text", "ok": True, "n": {"k@1": 2.5}}
    )
    assert values == {"x": 1.0, "n.k_1": 2.5}


def test_a_run_reads_back_from_the_store(tmp_path: Path):
    target = store(tmp_path)
    tracker = open_tracker(target)
    (tmp_path / "files" / "sub").mkdir(parents=True)
    (tmp_path / "files" / "a.txt").write_text("a")
    (tmp_path / "files" / "sub" / "b.tmp").write_text("b")
    with tracked_run(tracker, "parent", {"p": 1}):
        with tracked_run(tracker, "child", {"q": {"r": 2}}, {"t": "v"}):
            tracker.log_metrics({"m": 1.0}, step=1)
            tracker.log_metrics({"m": 0.5}, step=2)
        tracker.log_artifacts(tmp_path / "files", "out", skip=lambda p: p.suffix == ".tmp")
    parent, child = runs(target)
    assert parent.data.params == {"p": "1"} and parent.info.status == "FINISHED"
    assert child.data.params == {"q.r": "2"} and child.data.tags["t"] == "v"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert history(target, child, "m") == ([1, 2], [1.0, 0.5])
    from tests.tracking.helpers import artifacts

    assert artifacts(target, parent) == {"out/a.txt"}


def test_a_run_whose_body_raises_ends_failed(tmp_path: Path):
    target = store(tmp_path)
    tracker = open_tracker(target)
    with pytest.raises(RuntimeError), tracked_run(tracker, "broken", {}):
        raise RuntimeError("the command failed")
    (run,) = runs(target)
    assert run.info.status == "FAILED"


class Raising:
    """A tracker whose store goes away after ``ok`` calls."""

    def __init__(self, ok: int) -> None:
        self.ok, self.calls, self.ended = ok, 0, []

    def _call(self) -> None:
        self.calls += 1
        if self.calls > self.ok:
            raise ConnectionError("tracking server unreachable")

    def start(self, name, params, tags=None):
        self._call()

    def log_metrics(self, metrics, step=None):
        self._call()

    def log_artifacts(self, directory, path=None, skip=None):
        self._call()

    def end(self, status="FINISHED"):
        self.ended.append(status)


def test_a_failing_tracker_warns_once_and_goes_quiet(caplog: pytest.LogCaptureFixture):
    inner = Raising(ok=2)
    tracker = GuardedTracker(lambda: inner, "http://tracking:5000")
    with caplog.at_level(logging.WARNING, logger="fedmarket"), tracked_run(tracker, "run", {}):
        tracker.log_metrics({"m": 1.0}, step=1)
        tracker.log_metrics({"m": 2.0}, step=2)  # fails: warned, then off
        tracker.log_metrics({"m": 3.0}, step=3)
        tracker.log_artifacts(Path("."))
    assert inner.calls == 3 and not tracker.active
    assert inner.ended == ["FAILED"]  # the open run is marked, where the store allows
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "http://tracking:5000" in warnings[0] and "unreachable" in warnings[0]
    assert "directory keeps every result" in warnings[0]


def test_an_unreachable_store_at_the_start_is_a_warning_and_no_tracking(
    caplog: pytest.LogCaptureFixture,
):
    def refuse():
        raise ConnectionError("connection refused")

    with caplog.at_level(logging.WARNING, logger="fedmarket"):
        tracker = GuardedTracker(refuse, "http://nowhere:5000")
        tracker.start("run", {"a": 1})
        tracker.log_metrics({"m": 1.0})
        tracker.end()
    assert not tracker.active
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
