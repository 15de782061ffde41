"""The real server: `fedmarket serve` in its own process on a free loopback port, over HTTP."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fedmarket.cli import app
from fedmarket.experiments.serve.runner import network_warning

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "t0ken-for-the-test-only"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    lines: list[str]  # everything it printed, once stopped

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {TOKEN}"}


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], queue.Queue]:
    code = "from fedmarket.cli import app; app()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def _announced_url(pending: queue.Queue, seen: list[str]) -> str:
    """The address the server prints once it serves; what it printed before, into ``seen``."""
    while True:
        line = pending.get(timeout=120)
        if line is None:
            pytest.fail("the server exited:\n" + "".join(seen))
        seen.append(line)
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)


@pytest.fixture(scope="module")
def server(scoring_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    token = tmp_path_factory.mktemp("secret") / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    args = ["serve", str(scoring_run), "--port", "0", "--token-file", str(token)]
    args += ["--max-events", "60", "--threshold", "0.5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    process, pending = _start(args, env)
    seen: list[str] = []
    url = _announced_url(pending, seen)
    handle = Server(url, process, seen)
    yield handle
    process.terminate()
    process.wait(timeout=30)
    while (line := pending.get(timeout=30)) is not None:
        seen.append(line)


def test_the_real_server_answers_over_http(server: Server, busy_customer: Any) -> None:
    who, events = busy_customer
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        body = {"customer_id": who, "events": events[:50]}
        answer = http.post("/v1/score", json=body, headers=server.auth())
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["customer_id"] == who and 0 <= got["propensity"] <= 1
        assert got["decision"]["threshold"] == 0.5
        assert http.get("/v1/model", headers=server.auth()).json()["model"]["round"] == 2
        batch = {"customers": [{"events": events[:20]}, {"events": events[20:40]}]}
        answer = http.post("/v1/score/batch", json=batch, headers=server.auth())
        assert [r["customer_id"] for r in answer.json()["results"]] == [None, None]


def test_the_real_server_refuses_what_it_must(server: Server, busy_customer: Any) -> None:
    _, events = busy_customer
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/v1/score", json={"events": events[:5]}).status_code == 401
        bad = [dict(e) for e in events[:5]]
        bad[2]["event_type"] = "wishlist"
        answer = http.post("/v1/score", json={"events": bad}, headers=server.auth())
        assert answer.status_code == 422
        assert answer.json()["error"].startswith("events[2].event_type: unknown_event_type")
        many = http.post("/v1/score", json={"events": events[:1] * 61}, headers=server.auth())
        assert many.status_code == 413 and "at most 60" in many.json()["error"]
        big = b'{"events": [' + b" " * (9 * 1024 * 1024) + b"]}"
        headers = {**server.auth(), "content-type": "application/json"}
        answer = http.post("/v1/score", content=big, headers=headers)
        assert answer.status_code == 413
        answer = http.post("/v1/score", content=b"{oops", headers=headers)
        assert answer.status_code == 422 and "not JSON" in answer.json()["error"]


def test_the_server_logs_no_customer_and_stops_cleanly(server: Server, busy_customer: Any) -> None:
    _, events = busy_customer
    with httpx.Client(base_url=server.url, timeout=30) as http:
        body = {"customer_id": "logged-never-0042", "events": events[:10]}
        assert http.post("/v1/score", json=body, headers=server.auth()).status_code == 200
    server.process.terminate()
    # uvicorn shuts down, then raises the signal it caught again (exit status -15)
    assert server.process.wait(timeout=30) in (0, -15)
    printed = "".join(server.lines)
    assert "logged-never-0042" not in printed and events[0]["event_time"] not in printed
    assert "decision: score >= 0.5 (--threshold)" in printed
    assert "Traceback" not in printed


def test_a_readable_token_file_and_two_rules_are_refused(scoring_run: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    runner = CliRunner()
    done = runner.invoke(app, ["serve", str(scoring_run), "--token-file", str(token)])
    assert done.exit_code == 2 and "chmod 600" in done.output
    token.write_text("  \n")
    token.chmod(0o600)
    done = runner.invoke(app, ["serve", str(scoring_run), "--token-file", str(token)])
    assert done.exit_code == 2 and "is empty" in done.output
    done = runner.invoke(app, ["serve", str(scoring_run), "--threshold", "0.2", "--top", "5"])
    assert done.exit_code == 2 and "not both" in done.output


def test_retailer_is_refused_for_a_propensity_run(scoring_run: Path) -> None:
    """--retailer only means something to a recommendation run; it was silently ignored."""
    done = CliRunner().invoke(app, ["serve", str(scoring_run), "--retailer", "retailer_00"])
    assert done.exit_code == 2, done.output
    assert "--retailer 'retailer_00'" in done.output and "Leave out --retailer" in done.output


def test_missing_serve_extra_names_the_install(
    scoring_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(sys.modules):
        if name.startswith("fedmarket.experiments.serve"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    done = CliRunner().invoke(app, ["serve", str(scoring_run)])
    assert done.exit_code == 2, done.output
    assert "pip install 'fedmarket[serve]'" in done.output


def test_only_loopback_binds_quietly() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert network_warning(host, False) is None
    warning = network_warning("0.0.0.0", False)
    assert warning is not None and "reachable from the network" in warning
    assert "--token-file" in warning
    assert "TLS" in (network_warning("10.0.0.5", True) or "")
