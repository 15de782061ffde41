"""scripts/run_deployment.sh as a user runs it: a good run, and a run that must fail.

Loopback on this host, two retailers, one round, with SecAgg+ (``APP=scripts/secagg_app``), so
the script, the secure-aggregation app and TLS with SuperNode authentication are exercised
through real processes. About 3-4 minutes on 2 cores; run with ``pytest -m deployment``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployment.topology import alive

pytestmark = pytest.mark.deployment
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "run_deployment.sh"


def launch(out: Path, port: int, **env: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "PYTHON_BIN": str(Path(sys.executable).parent),
        "PORT": str(port),
        "CUSTOMERS": "200",
        "DAYS": "70",
        "ROUNDS": "1",
        "TIMEOUT": "420",
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "2", str(out)],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def processes_mentioning(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_secagg_run_writes_the_run_directory_and_stops_everything(tmp_path):
    out = tmp_path / "dep"
    done = launch(out, 39701, APP="scripts/secagg_app", RUN_CONFIG="model='lstm'")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "run" / "summary.json").read_text())
    assert summary["federated"]["secure_aggregation"].startswith("SecAgg+")
    assert summary["federated"]["rounds"] == 1 and summary["centralised"] is None
    assert (out / "run" / "report.md").is_file() and (out / "run" / "rounds.csv").is_file()
    assert "Secure aggregation completed" in (out / "flwr-run.log").read_text()
    assert sorted(p.name for p in (out / "raw").iterdir() if p.name.endswith(".fedmarket")) == [
        "retailer_00.fedmarket",
        "retailer_01.fedmarket",
    ]
    assert processes_mentioning(out) == []
    for key in (out / "keys").iterdir():
        assert key.stat().st_mode & 0o077 == 0


def test_a_failing_run_exits_non_zero_and_stops_everything(tmp_path):
    out = tmp_path / "bad"
    done = launch(out, 39711, APP="scripts/secagg_app", RUN_CONFIG="dp='central'")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "the deployment run failed" in done.stderr
    assert not (out / "run" / "summary.json").exists()
    assert processes_mentioning(out) == []


def test_bad_arguments_are_refused_before_anything_starts(tmp_path):
    for args in ([], ["0"], ["two"], ["2", "a", "b"]):
        done = subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, cwd=REPO
        )
        assert done.returncode == 2 and "run_deployment.sh N [OUT_DIR]" in done.stdout
