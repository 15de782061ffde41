"""Time from `fedmarket simulate` to its first round's training, this code and another alternated.

Usage::

    .venv/bin/python scripts/bench_startup.py --data /tmp/su/prepared --baseline /tmp/su/base
        [--repeats 3] [--out /tmp/fedmarket-bench-startup]

Each run is ``fedmarket simulate --data DATA --no-centralised --run-config "num-server-rounds=2
dp='none'"`` in a fresh process, with this source tree and with ``--baseline`` (``git archive
<commit> fedmarket clients server strategies | tar -x -C DIR``), alternating which goes first.
Start-up is the process's wall time up to Flower's ``[ROUND 1/`` line in RUN/log.txt, plus
round 1's wait for replies less its training (the sum of the clients' ``fit`` times over the
actors that ran them at once): what the run spent before training, imports, Ray and the
client actors included. Also printed: the whole command's wall time and round 2 (a steady
round). A benchmark, not a test; the machine's load is printed with each line.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from fedmarket.experiments.bench.fresh import load_average
from fedmarket.experiments.bench.startup import measure_startup

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedmarket-bench-startup"))
    ns = parser.parse_args()
    trees = [("this", ROOT), ("baseline", ns.baseline.resolve())]
    got: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    print("rep  code      start-up s  to [ROUND 1] s  wall s  round 2 s  load")
    for rep in range(ns.repeats):
        for name, code in trees if rep % 2 == 0 else trees[::-1]:
            r = measure_startup(ns.data.resolve(), ns.out / f"{name}-{rep}", code)
            got[name].append(r)
            print(
                f"{rep:<4} {name:<9} {r['startup_s']:>10.1f} {r['to_round_s']:>15.1f} "
                f"{r['wall_s']:>7.1f} {r['round2_s']:>10.2f}  {load_average()}",
                flush=True,
            )
    for name, runs in got.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"median {name}: start-up {med['startup_s']:.1f} s, wall {med['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
