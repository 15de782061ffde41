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
from pathlib import Path

from fedmarket.experiments.bench.fresh import load_average
from fedmarket.experiments.bench.sweep import FOUR_POINTS, measure_sweep

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedmarket-bench-sweep"))
    parser.add_argument("options", nargs="*", help="tradeoff options (after --)")
    ns = parser.parse_args()
    options = ns.options or list(FOUR_POINTS)
    trees = [("this", ROOT), ("baseline", ns.baseline.resolve())]
    print(f"sweep: tradeoff {' '.join(options)} --no-audit on {ns.data}")
    print("rep  code      points  wall s  rounds s  training s  wall/training  load")
    for rep in range(ns.repeats):
        for name, code in trees if rep % 2 == 0 else trees[::-1]:
            got = measure_sweep(ns.data.resolve(), ns.out / f"{name}-{rep}", options, code)
            print(
                f"{rep:<4} {name:<9} {got['points']:>6} {got['wall_s']:>7.1f} "
                f"{got['rounds_s']:>9.1f} {got['training_s']:>11.1f} "
                f"{got['wall_over_training']:>14.1f}  {load_average()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
