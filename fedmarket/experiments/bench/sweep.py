"""A trade-off sweep's wall time against its rounds' training (issue #20: a 12-point
sweep's wall <= 1.3x the sum of its rounds' training).

``fedmarket tradeoff --no-audit`` runs in a fresh process. Its rounds' time is the server's
wait for replies, aggregation and evaluation summed over every round of every point; its
training is each round's clients' ``fit`` time over the actors that trained at once (as
``fedmarket bench`` counts a round's client compute). What is left of the wall is start-up,
Ray and the actors, Flower's per-run set-up and shutdown, and writing the outputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from fedmarket.experiments.bench.fresh import parallel_slots, read_rounds, run_command

# the 12 points of BENCHMARKS.md: client DP at five epsilons and no DP, seeds 0 and 1
TWELVE_POINTS = (
    "--settings",
    "federated-client-dp",
    "--epsilons",
    "1,2,4,8,16",
    "--seeds",
    "0,1",
    "--rounds",
    "2",
)
FOUR_POINTS = ("--settings", "federated-client-dp", "--epsilons", "8", "--seeds", "0,1")
FOUR_POINTS += ("--rounds", "2")


def measure_sweep(
    data: Path, out: Path, options: tuple[str, ...] | list[str], code: Path | None = None
) -> dict[str, Any]:
    """One ``tradeoff --no-audit`` sweep on ``data`` into ``out`` (replaced)."""
    if out.exists():
        shutil.rmtree(out)
    args = ["tradeoff", "--data", str(data), "--out", str(out), "--no-audit", *options]
    wall = run_command(args, code)
    totals = sweep_rounds(out, parallel_slots(data))
    return {**totals, "wall_s": wall, "wall_over_training": wall / totals["training_s"]}


def sweep_rounds(out: Path, slots: int) -> dict[str, Any]:
    """Rounds' time and training summed over every point of a finished sweep in ``out``."""
    rounds_s = training_s = 0.0
    points = 0
    for record in sorted((out / "records").glob("*.json")):
        run_dir = Path(json.loads(record.read_text())["run_dir"])
        for row in read_rounds(run_dir):
            rounds_s += sum(float(row[k]) for k in ("train_wait_s", "aggregate_s", "server_eval_s"))
            training_s += float(row["client_train_s_sum"]) / slots
        points += 1
    return {"points": points, "rounds_s": rounds_s, "training_s": training_s}
