"""Centralised training idle and contended, per torch thread count, alternated in one run.

Usage::

    .venv/bin/python scripts/threads_contention.py --data PREPARED [--reps 3] [--epochs 3]
        [--busy 2] [--settings default,1,2,auto]

Each measurement is a fresh process training cnn-lstm (batch 256) on ``--data`` for
``--epochs`` epochs through `fedmarket.centralised.run_centralised`; its wall time excludes
the interpreter's start. ``default`` is torch's own choice (what fedmarket did before it
chose), ``auto`` is fedmarket's choice (`fedmarket.threads`), a number is that many threads;
``+passive`` after one runs it with OMP_WAIT_POLICY=PASSIVE (threads sleep, not spin, while
they wait).
"Contended" runs ``--busy`` busy-loop processes next to it; the settings and the load
alternate within each repetition, so a neighbour's load shifts every setting alike.
The ratio contended/idle per setting is what issue #20's goal states (at most 1.5x).
A benchmark, not a test: numbers depend on the machine and on its other users.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fedmarket.experiments.bench.contention import alternate, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--settings", default="default,1,2,auto")
    args = parser.parse_args()
    print(f"{len(os.sched_getaffinity(0))} usable cores, loadavg at the start {os.getloadavg()}")
    data = Path(args.data)
    got = alternate(
        args.settings.split(","),
        args.reps,
        args.busy,
        lambda setting: measure(setting, data, args.epochs),
        say=lambda line: print(line, flush=True),
    )
    print(f"\nloadavg at the end {os.getloadavg()}; median of {args.reps} (s)")
    for setting, r in got.items():
        print(
            f"{setting:7} threads {r['threads']}: idle {r['idle_s']:6.2f}  "
            f"{args.busy} busy {r['contended_s']:6.2f}  "
            f"contended/idle {r['contended_over_idle']:4.2f}x"
        )


if __name__ == "__main__":
    main()
