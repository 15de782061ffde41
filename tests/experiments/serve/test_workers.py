"""`fedmarket serve --workers N` and the frozen heap: several processes on one socket."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from fedmarket.cli import app
from fedmarket.experiments.serve import runner
from fedmarket.experiments.serve.runner import ServeOptions, run_service, settle_heap
from tests.experiments.serve.test_runner import ROOT, _announced_url, _start


def _spawned(pid: int) -> list[psutil.Process]:
    """The worker processes under ``pid`` (started by multiprocessing's spawn)."""
    children = psutil.Process(pid).children(recursive=True)
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def test_two_workers_answer_alike_and_stop_together(scoring_run: Path, busy_customer: Any) -> None:
    who, events = busy_customer
    args = ["serve", str(scoring_run), "--port", "0", "--threshold", "0.5", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    process, pending = _start(args, env)
    seen: list[str] = []
    try:
        url = _announced_url(pending, seen)
        assert "starting 2 worker processes" in "".join(seen)
        body = {"customer_id": who, "events": events[:30]}
        with httpx.Client(base_url=url, timeout=120) as http:
            # new connections: the kernel spreads them over the workers
            answers = [http.post("/v1/score", json=body, headers={"connection": "close"})]
            answers += [http.post("/v1/score", json=body) for _ in range(5)]
        assert all(a.status_code == 200 for a in answers), answers[0].text
        scores = {a.json()["propensity"] for a in answers}
        assert len(scores) == 1 and answers[0].json()["decision"]["threshold"] == 0.5
        workers = _spawned(process.pid)
        assert len(workers) == 2
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert "Traceback" not in "".join(seen)


def test_workers_below_one_are_refused(scoring_run: Path) -> None:
    done = CliRunner().invoke(app, ["serve", str(scoring_run), "--workers", "0"])
    assert done.exit_code == 2 and "--workers 0" in done.output


def test_the_heap_is_frozen_before_serving(
    scoring_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full collection over the imports and the model would stall a request ~0.3 s."""
    frozen_at_serve: list[int] = []
    monkeypatch.setattr(
        runner, "serve_app", lambda app, sockets: frozen_at_serve.append(gc.get_freeze_count())
    )
    try:
        gc.unfreeze()
        run_service(ServeOptions(scoring_run, port=0, threshold=0.5), lambda _line: None)
        assert frozen_at_serve and frozen_at_serve[0] > 1000
    finally:
        gc.unfreeze()


def test_settle_heap_leaves_nothing_for_a_full_collection() -> None:
    try:
        gc.unfreeze()
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.collect() == 0  # nothing unreachable is left behind, nothing frozen is looked at
    finally:
        gc.unfreeze()
