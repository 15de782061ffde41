"""Start-up: from `fedmarket simulate` to its first round's training (issue #20: <= 5 s on
an idle 2-core machine).

The command runs in a fresh process. Start-up is its wall time up to Flower's ``[ROUND 1/``
line in the run's log.txt, plus round 1's wait for replies less its training (the clients'
summed ``fit`` time over the actors that ran at once): imports, Ray and the client actors.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from fedmarket.experiments.bench.fresh import parallel_slots, read_rounds, run_command

SETTINGS = "num-server-rounds=2 dp='none'"


def measure_startup(data: Path, out: Path, code: Path | None = None) -> dict[str, Any]:
    """One ``simulate --no-centralised`` of two no-DP rounds on ``data``, written to ``out``
    (replaced); start-up, time to round 1, the whole wall and a steady round, seconds."""
    if out.exists():
        shutil.rmtree(out)
    args = ["simulate", "--data", str(data), "--out", str(out), "--no-centralised"]
    started = datetime.now().timestamp()
    wall = run_command([*args, "--run-config", SETTINGS], code)
    return startup_from_run(out, parallel_slots(data), started, wall)


def startup_from_run(run_dir: Path, slots: int, started: float, wall: float) -> dict[str, Any]:
    """The split of a finished run: ``started`` is the command's start (epoch seconds)."""
    round_one = next(
        line for line in (run_dir / "log.txt").read_text().splitlines() if "[ROUND 1/" in line
    )
    stamp = datetime.strptime(round_one[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    rows = read_rounds(run_dir)
    training = float(rows[0]["client_train_s_sum"]) / slots
    return {
        "startup_s": stamp - started + float(rows[0]["train_wait_s"]) - training,
        "to_round_s": stamp - started,
        "wall_s": wall,
        "round2_s": float(rows[1]["elapsed_s"]) - float(rows[0]["elapsed_s"]),
    }
