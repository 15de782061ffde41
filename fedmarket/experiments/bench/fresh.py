"""Timed stages that run fedmarket as a user does: a command in a fresh process.

Start-up and a sweep's wall time include the interpreter, the imports and Ray's start, so
they are measured on the real command in a child process, not in the bench's own (where
torch, Flower and Ray are already loaded). ``code`` is the source tree the child imports
(``scripts/bench_*.py --baseline`` times another version side by side); None is this one.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fedmarket.errors import FedmarketError

CLI = "import sys; from fedmarket.cli import app; app(sys.argv[1:])"


def child_env(code: Path | None, **extra: str) -> dict[str, str]:
    """The child imports ``code`` (a source tree) or, by default, what this process imports;
    one torch thread each, as the benchmarks in BENCHMARKS.md ran."""
    path = str(code) if code is not None else os.pathsep.join(p for p in sys.path if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def run_command(args: list[str], code: Path | None = None) -> float:
    """``fedmarket ARGS`` in a fresh interpreter; its wall time. A failure is an error with
    the end of its output."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=child_env(code),
        cwd=code,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise FedmarketError(
            f"bench: `fedmarket {' '.join(args[:1])}` failed in a child process "
            f"(exit {done.returncode}):\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        )
    return wall


def parallel_slots(data: Path) -> int:
    """Clients that train at once with one CPU per actor: min(clients, usable cores)."""
    clients = len(json.loads((data / "manifest.json").read_text())["partitions"])
    return max(1, min(clients, len(os.sched_getaffinity(0))))


def read_rounds(run_dir: Path) -> list[dict[str, Any]]:
    with open(run_dir / "rounds.csv") as f:
        return list(csv.DictReader(f))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
