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
import statistics
import subprocess
import sys

WORKER = """
import sys, time, torch
from pathlib import Path
setting = sys.argv[1]
if setting == "auto":
    from fedmarket.threads import apply_threads
    apply_threads(None)
elif setting != "default":
    torch.set_num_threads(int(setting))
from fedmarket.centralised import run_centralised
from fedmarket.data import store
from fedmarket.training import TrainConfig, fit
from fedmarket.models import build_model
from fedmarket.tasks import get_task
data = Path(sys.argv[2])
train = store.load_pooled(data, "train")
cfg = TrainConfig(epochs=int(sys.argv[3]), batch_size=256, lr=3e-3, lr_schedule="cosine",
                  patience=None, seed=0)
net = build_model("cnn-lstm", store.n_features(store.read_manifest(data)), task="purchase",
                  dp=False, seed=0)
started = time.perf_counter()
fit(net, train, get_task("purchase"), cfg)
print(torch.get_num_threads(), time.perf_counter() - started)
"""


def measure(setting: str, data: str, epochs: int) -> tuple[int, float]:
    """``setting+passive``: the same with OMP_WAIT_POLICY=PASSIVE (waiting threads sleep)."""
    setting, passive, _ = setting.partition("+passive")
    env = {**os.environ, **({"OMP_WAIT_POLICY": "PASSIVE"} if passive else {})}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, setting, data, str(epochs)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    return int(out[-2]), float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--settings", default="default,1,2,auto")
    args = parser.parse_args()
    settings = args.settings.split(",")
    print(f"{len(os.sched_getaffinity(0))} usable cores, loadavg at the start {os.getloadavg()}")
    walls: dict[tuple[str, str], list[float]] = {}
    threads: dict[str, int] = {}
    for rep in range(args.reps):
        loads = ("idle", "busy") if rep % 2 == 0 else ("busy", "idle")
        for load in loads:
            busy = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.busy if load == "busy" else 0)
            ]
            try:
                order = settings[rep % len(settings) :] + settings[: rep % len(settings)]
                for setting in order:
                    n, wall = measure(setting, args.data, args.epochs)
                    threads[setting] = n
                    walls.setdefault((setting, load), []).append(wall)
                    print(f"rep {rep} {load:4} {setting:7} threads {n}: {wall:6.2f} s", flush=True)
            finally:
                for proc in busy:
                    proc.kill()
                    proc.wait()
    print(f"\nloadavg at the end {os.getloadavg()}; median of {args.reps} (s)")
    for setting in settings:
        idle = statistics.median(walls[(setting, "idle")])
        busy = statistics.median(walls[(setting, "busy")])
        print(
            f"{setting:7} threads {threads[setting]}: idle {idle:6.2f}  "
            f"{args.busy} busy {busy:6.2f}  contended/idle {busy / idle:4.2f}x"
        )


if __name__ == "__main__":
    main()
