"""CPU seconds a fresh `fedmarket simulate` spends before its first round trains, every process.

Usage::

    .venv/bin/python scripts/startup_cpu.py --data /tmp/s7/prepared --baseline /tmp/st/base
        [--repeats 3] [--out /tmp/fedmarket-startup-cpu]

On a shared machine wall seconds move with the other users' load; CPU seconds move much
less. Each run is ``simulate --no-centralised --run-config "num-server-rounds=2 dp='none'"``
in a fresh interpreter (this tree, then ``--baseline``, alternated), with a logging hook
that, at Flower's ``[ROUND 1/`` and ``[ROUND 2/`` lines and at each round's train results,
sums the CPU time of the driver and of every process under it (Ray's, the client actors;
read every 0.2 s, so a process that ended, such as a Ray worker never used, keeps its
last reading). Start-up CPU = the sum at round 1's train results less what round 2's
training phase took (from ``[ROUND 2/`` to its train results, every process: the same work
as round 1's, without the first-call costs). On an idle 2-core machine the start-up's wall
time is at least half of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HOOK = r"""
import json, logging, sys, threading, time
import psutil
started, me, marks, seen = time.time(), psutil.Process(), {}, {}
def cpu():  # every process seen so far, its last reading (one that ended keeps it)
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times(); seen[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return sum(seen.values())
def poll():
    while True:
        cpu(); time.sleep(0.2)
threading.Thread(target=poll, daemon=True).start()
class Hook(logging.Handler):
    def emit(self, record):
        text = record.getMessage()
        for key, name in (
            ("[ROUND 1/", "round1"),
            ("round 1 train:", "trained1"),
            ("[ROUND 2/", "round2"),
            ("round 2 train:", "trained2"),
        ):
            if key in text and name not in marks:
                marks[name] = (time.time() - started, cpu())
logging.getLogger("flwr").addHandler(Hook())
from fedmarket.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("MARKS " + json.dumps(marks))
"""


def run(code: Path, data: Path, out: Path) -> dict[str, float]:
    args = ["simulate", "--data", str(data), "--out", str(out), "--no-centralised"]
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", HOOK, *args, "--run-config", "num-server-rounds=2 dp='none'"],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("MARKS "))
    marks = json.loads(line[6:])
    steady = marks["trained2"][1] - marks["round2"][1]  # a round's training, every process
    return {
        "to_round_s": marks["round1"][0],
        "cpu_to_round_s": marks["round1"][1],
        "startup_cpu_s": marks["trained1"][1] - steady,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedmarket-startup-cpu"))
    ns = parser.parse_args()
    trees = [("this", ROOT), ("baseline", ns.baseline.resolve())]
    got: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    print("rep  code      start-up CPU s  CPU to [ROUND 1] s  to [ROUND 1] s  load")
    for rep in range(ns.repeats):
        for name, code in trees if rep % 2 == 0 else trees[::-1]:
            out = ns.out / f"{name}-{rep}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            r = run(code, ns.data.resolve(), out)
            got[name].append(r)
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            print(
                f"{rep:<4} {name:<9} {r['startup_cpu_s']:>14.1f} {r['cpu_to_round_s']:>19.1f} "
                f"{r['to_round_s']:>15.1f}  {load}",
                flush=True,
            )
    for name, runs in got.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"median {name}: start-up CPU {med['startup_cpu_s']:.1f} s, "
            f"to [ROUND 1] {med['to_round_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
