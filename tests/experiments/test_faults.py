"""Fault injection through the real CLI: kill -9 at points of a round, resume, compare.

Each test starts `fedmarket simulate` in its own process group, waits for a point of the run
(seen in the run directory), kills the whole group with SIGKILL (server, Ray, client actors)
and resumes. The invariant: whatever instant the kill lands on, the resumed run directory
equals an uninterrupted run's, bit for bit on CPU, in every column but the timings.

Ctrl-C and SIGTERM stop at the end of the round in flight instead: the command exits with
130 or 143, leaves no Ray process behind, and the run resumes to the same result.

Run alone: `pytest -m faults` (a few minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from fedmarket.federated.client_state import load_accountant, update_digest
from fedmarket.rundir import RunDir

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ROUNDS = 3
RUN_CONFIG = f"num-server-rounds={ROUNDS} local-epochs=1 batch-size=64"
TIMING = {"elapsed_s", "train_wait_s", "aggregate_s", "server_eval_s"}
TIMING |= {"client_train_s_sum", "client_train_s_max", "client_gpu_peak_mb"}
DEADLINE_S = 240


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from fedmarket.cli import app; app()", *args]


def _simulate(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = ["simulate", "--data", str(data), "--no-centralised", *extra]
    if "--resume" not in extra:
        args += ["--out", str(out), "--run-config", RUN_CONFIG]
    return subprocess.Popen(
        _cli(*args),
        start_new_session=True,  # its own process group: the kill takes Ray and actors too
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=DEADLINE_S)
    return proc.returncode, output


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group and every Ray process it started."""
    children = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    proc.wait(timeout=30)
    psutil.wait_procs(children, timeout=30)


def _wait_until(proc: subprocess.Popen, ready: Callable[[], bool]) -> None:
    started = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill point:\n{proc.stdout.read()}")
        if time.monotonic() - started > DEADLINE_S:
            _kill_group(proc)
            pytest.fail("the kill point was never reached")
        time.sleep(0.05)


def _committed(out: Path) -> int:
    try:
        return int(json.loads((out / "checkpoints" / "latest.json").read_text())["round"])
    except (OSError, ValueError, KeyError):
        return 0


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "rounds.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def _result(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    fed = summary["federated"]
    state = out / "client_state"
    return {
        "rows": _rows(out),
        "test": fed["test"],
        "epsilon": fed["epsilon"],
        "rounds": fed["rounds"],
        "participation": fed["participation"],
        "spent": {pid: load_accountant(None, str(state), pid) for pid in range(3)},
        "model": update_digest(RunDir(out).latest_checkpoint()[1]),
        "scores": RunDir(out).test_scores.read_text(),  # the gains figure's federated curve
    }


@pytest.fixture(scope="module")
def uninterrupted(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("faults") / "whole"
    code, output = _finish(_simulate(tiny_data, out))
    assert code == 0, output
    return _result(out)


def _point_client_trained(out: Path) -> Callable[[], bool]:
    """Round 1 in flight: a client has trained (its journal is written), nothing committed."""
    return lambda: (out / "client_state" / "client-0" / "accountant.json").exists()


def _point_just_committed(out: Path) -> Callable[[], bool]:
    """Right after round 1's commit marker."""
    return lambda: _committed(out) >= 1


def _point_rows_ahead_of_marker(out: Path) -> Callable[[], bool]:
    """Round 2's rows are being written: the marker still says round 1 (or has just moved)."""

    def ready() -> bool:
        try:
            return len((out / "rounds.csv").read_text().splitlines()) >= 3
        except OSError:
            return False

    return ready


def _point_inside_round_2(out: Path) -> Callable[[], bool]:
    """Some instant inside round 2 (training or the global evaluation)."""
    seen: dict[str, float] = {}

    def ready() -> bool:
        if _committed(out) >= 1:
            seen.setdefault("at", time.monotonic())
        return "at" in seen and time.monotonic() - seen["at"] > 1.0

    return ready


@pytest.mark.parametrize(
    "point",
    [
        _point_client_trained,
        _point_just_committed,
        _point_rows_ahead_of_marker,
        _point_inside_round_2,
    ],
    ids=["client-trained", "just-committed", "rows-ahead-of-marker", "inside-round-2"],
)
def test_kill_then_resume_equals_an_uninterrupted_run(tiny_data, tmp_path, uninterrupted, point):
    out = tmp_path / "run"
    proc = _simulate(tiny_data, out)
    _wait_until(proc, point(out))
    _kill_group(proc)
    assert not (out / "summary.json").exists()
    code, output = _finish(_simulate(tiny_data, out, "--resume", str(out)))
    assert code == 0, output
    resumed = _result(out)
    assert resumed == uninterrupted  # rows, metrics, epsilons, accountants, participation


def test_a_copied_run_directory_resumes_in_place(tiny_data, tmp_path, uninterrupted):
    original = tmp_path / "original"
    proc = _simulate(tiny_data, original)
    _wait_until(proc, _point_just_committed(original))
    _kill_group(proc)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    code, output = _finish(_simulate(tiny_data, copy, "--resume", str(copy)))
    assert code == 0, output
    assert _result(copy) == uninterrupted
    assert {p: p.read_bytes() for p in original.rglob("*") if p.is_file()} == before
    config = json.loads((copy / "config.json").read_text())
    assert Path(config["out-dir"]) == copy.resolve()
    assert Path(config["state-dir"]) == (copy / "client_state").resolve()


def _client_actors() -> list[psutil.Process]:
    actors = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("ray::ClientAppActor"):
            actors.append(proc)
    return actors


def test_a_killed_client_actor_is_replaced_and_every_client_trains(tiny_data, tmp_path):
    out = tmp_path / "run"
    proc = _simulate(tiny_data, out)
    _wait_until(proc, lambda: bool(_client_actors()))
    _client_actors()[0].kill()  # an actor dies mid-run (OOM killer, a crash)
    code, output = _finish(proc)
    assert code == 0, output
    fed = json.loads((out / "summary.json").read_text())["federated"]
    assert fed["participation"]["never"] == []
    rows = _rows(out)
    assert [int(r["ok"]) for r in rows[1:]] == [3] * (ROUNDS - 1)  # all back after round 1
    assert set(fed["epsilon"]["per_client"]) == {"0", "1", "2"}


def _left_running(processes: list[psutil.Process]) -> list[str]:
    """Those of ``processes`` still running after a grace period (zombies have ended)."""
    _, alive = psutil.wait_procs(processes, timeout=30)
    left = []
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(process.cmdline())[:80])
    return left


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143)],  # as a shell reports them: 128 + signal
    ids=["ctrl-c", "sigterm"],
)
def test_a_stop_signal_ends_at_the_round_end_with_no_ray_left_and_resumes(
    tiny_data, tmp_path, uninterrupted, signum, code
):
    out = tmp_path / "run"
    proc = _simulate(tiny_data, out)
    _wait_until(proc, _point_just_committed(out))
    # what the run started: Ray's GCS, raylet, agents, and the client actors
    ray = psutil.Process(proc.pid).children(recursive=True)
    assert any(" ".join(p.cmdline()).startswith("ray::ClientAppActor") for p in ray)
    os.kill(proc.pid, signum)  # Ctrl-C, or a supervisor's SIGTERM, to the command only
    stopped, output = _finish(proc)
    assert stopped == code, output
    assert "stopped after round" in output and "--resume" in output
    assert "Traceback" not in output
    assert _left_running(ray) == []
    assert 1 <= _committed(out) < ROUNDS and not (out / "summary.json").exists()
    resumed, output = _finish(_simulate(tiny_data, out, "--resume", str(out)))
    assert resumed == 0, output
    assert _result(out) == uninterrupted
