"""A trade-off sweep's wall time against its rounds' training, this code and another side by side.

Usage::

    .venv/bin/python scripts/bench_sweep.py --data /tmp/su/prepared --baseline /tmp/su/base
        [--repeats 2] [--out /tmp/su/bench] [-- TRADEOFF OPTIONS]

Runs ``fedmarket tradeoff --data DATA --out ... --no-audit`` and its options (default: client
DP at epsilon 8 and no DP, seeds 0 and 1, 2 rounds: 4 federated runs) in a fresh process per
sweep, with this source tree and with ``--baseline``, a source tree of another fedmarket version
(``git archive <commit> fedmarket clients server strategies | tar -x -C DIR``), alternating
which goes first. For each sweep it prints the whole command's wall time, the rounds' time
(the server's wait for the replies, aggregation and evaluation, summed over every round of
every point) and the rounds' training: each round's client compute over the client actors
that trained it at once (the sum of ``fit`` times / min(clients, usable cores), as
``fedmarket bench`` counts it). The ratio wall / training is the issue's figure (goal: 1.3x for
a 12-point sweep); what is left is start-up, Ray and actors, imports and writing outputs. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from fedmarket.cli import app; app(sys.argv[1:])"  # the tree on PYTHONPATH
DEFAULT_SWEEP = [
    "--settings",
    "federated-client-dp",
    "--epsilons",
    "8",
    "--seeds",
    "0,1",
    "--rounds",
    "2",
]


def sweep(code: Path, data: Path, out: Path, options: list[str]) -> dict[str, float]:
    if out.exists():
        shutil.rmtree(out)
    args = ["tradeoff", "--data", str(data), "--out", str(out), "--no-audit", *options]
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{code}: tradeoff failed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    rounds_s = training_s = 0.0
    points = 0
    slots = len(os.sched_getaffinity(0))
    for record in sorted((out / "records").glob("*.json")):
        run_dir = Path(json.loads(record.read_text())["run_dir"])
        clients = len(json.loads((data / "manifest.json").read_text())["partitions"])
        with open(run_dir / "rounds.csv") as f:
            for row in csv.DictReader(f):
                rounds_s += sum(
                    float(row[k]) for k in ("train_wait_s", "aggregate_s", "server_eval_s")
                )
                training_s += float(row["client_train_s_sum"]) / min(clients, slots)
        points += 1
    return {"points": points, "wall_s": wall, "rounds_s": rounds_s, "training_s": training_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedmarket-bench-sweep"))
    parser.add_argument("options", nargs="*", help="tradeoff options (after --)")
    ns = parser.parse_args()
    options = ns.options or DEFAULT_SWEEP
    trees = [("this", ROOT), ("baseline", ns.baseline.resolve())]
    print(f"sweep: tradeoff {' '.join(options)} --no-audit on {ns.data}")
    print("rep  code      points  wall s  rounds s  training s  wall/training  load")
    for rep in range(ns.repeats):
        for name, code in trees if rep % 2 == 0 else trees[::-1]:
            got = sweep(code, ns.data.resolve(), ns.out / f"{name}-{rep}", options)
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            print(
                f"{rep:<4} {name:<9} {got['points']:>6} {got['wall_s']:>7.1f} "
                f"{got['rounds_s']:>9.1f} {got['training_s']:>11.1f} "
                f"{got['wall_s'] / got['training_s']:>14.1f}  {load}",
                flush=True,
            )


if __name__ == "__main__":
    main()
