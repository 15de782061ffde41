"""Flower's end of a run inside a session, with its 1 s queue poll and with fedmarket's 20 ms.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/flower_shutdown.py
        --data PREPARED [--runs 6] [--out /tmp/fedmarket-shutdown]

Runs ``--runs`` one-round, no-DP simulations in one `ray_session` (Ray and the actors start
once), alternating ``QUEUE_POLL_S`` between Flower's 1.0 s and fedmarket's value. For each it
prints the time from the ServerApp's stop event (set when its last round is done) to Flower's
simulation runtime returning (``vce_api.run_api``): the wait every run of a sweep pays, and
the whole ``simulate`` call's wall time. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import threading
import time
from pathlib import Path

from flwr.server.superlink.fleet.vce import vce_api

from fedmarket.experiments import ray_session
from fedmarket.experiments.bench.fresh import load_average
from fedmarket.experiments.simulate import ClientResources, simulate

PROMPT = ray_session.QUEUE_POLL_S
ends: list[float] = []


def timed_run_api(original):
    """``run_api`` that records how long it takes to return once its stop event is set."""

    def run_api(*args, **kwargs):
        f_stop = args[5]
        stopped: list[float] = []
        watcher = threading.Thread(
            target=lambda: (f_stop.wait(), stopped.append(time.perf_counter())), daemon=True
        )
        watcher.start()
        try:
            return original(*args, **kwargs)
        finally:
            returned = time.perf_counter()
            watcher.join(timeout=5)
            ends.append(returned - stopped[0] if stopped else float("nan"))

    return run_api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedmarket-shutdown"))
    ns = parser.parse_args()
    vce_api.run_api = timed_run_api(vce_api.run_api)
    got: dict[float, list[tuple[float, float]]] = {1.0: [], PROMPT: []}
    print("run  poll s  end of run s  simulate wall s  load")
    with ray_session.ray_session():
        for i in range(ns.runs + 1):  # the first starts Ray and the actors: not counted
            poll = (1.0, PROMPT)[i % 2]
            ray_session.QUEUE_POLL_S = poll
            out = ns.out / f"run-{i}"
            shutil.rmtree(out, ignore_errors=True)
            started = time.perf_counter()
            simulate(
                data=ns.data,
                run_config="num-server-rounds=1 dp='none' fraction-evaluate=0.0",
                out=out,
                centralised=False,
                resources=ClientResources(num_cpus=1.0),
            )
            wall = time.perf_counter() - started
            print(f"{i:<4} {poll:>6.2f} {ends[-1]:>13.3f} {wall:>16.2f}  {load_average()}")
            if i > 0:
                got[poll].append((ends[-1], wall))
    for poll, runs in got.items():
        end = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(f"poll {poll:.2f} s: median end of run {end:.3f} s, simulate {wall:.2f} s")


if __name__ == "__main__":
    main()
