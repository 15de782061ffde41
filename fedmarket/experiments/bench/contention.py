"""Training idle and contended (issue #20: a contended run at most 1.5x its idle time in
every training path).

Each measurement is a fresh process that trains the model on pooled prepared data with
``fit``, its threads set by ``setting``: ``auto`` is fedmarket's choice (`fedmarket.threads`,
what every training path now uses), ``default`` torch's own, a number that many threads,
``+passive`` after one adds OMP_WAIT_POLICY=PASSIVE. "Contended" runs ``busy`` busy-loop
processes next to it. The wall time excludes the interpreter's start and the imports.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedmarket.experiments.bench.fresh import child_env

WORKER = """
import sys, time, torch
from pathlib import Path
setting, data, epochs, model, dp, partitions = sys.argv[1:7]
if setting == "auto":
    from fedmarket.threads import apply_threads
    apply_threads(None)
elif setting != "default":
    torch.set_num_threads(int(setting))
from fedmarket.data import store
from fedmarket.models import build_model
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit
data, dp = Path(data), dp == "dp"
parts = range(int(partitions)) if int(partitions) > 0 else None
train = store.load_pooled(data, "train", partitions=parts)
cfg = TrainConfig(epochs=int(epochs), batch_size=256, lr=3e-3, lr_schedule="cosine",
                  patience=None, val_fraction=0.0, seed=0)
privacy = None
if dp:
    from fedmarket.privacy import PrivacySettings
    privacy = PrivacySettings(noise_multiplier=1.0, max_grad_norm=1.0)
net = build_model(model, store.n_features(store.read_manifest(data)), task="purchase",
                  dp=dp, seed=0)
started = time.perf_counter()
fit(net, train, get_task("purchase"), cfg, privacy=privacy)
print(torch.get_num_threads(), time.perf_counter() - started)
"""


def measure(
    setting: str,
    data: Path,
    epochs: int,
    *,
    model: str = "cnn-lstm",
    dp: bool = False,
    partitions: int = 0,
    code: Path | None = None,
) -> tuple[int, float]:
    """(threads, seconds) of one training in a fresh process; ``partitions`` 0: all."""
    setting, passive, _ = setting.partition("+passive")
    env = child_env(code, **({"OMP_WAIT_POLICY": "PASSIVE"} if passive else {}))
    env.pop("OMP_NUM_THREADS")  # the setting decides, as for a user
    args = [setting, str(data), str(epochs), model, "dp" if dp else "fast", str(partitions)]
    out = subprocess.run(
        [sys.executable, "-c", WORKER, *args], check=True, capture_output=True, text=True, env=env
    ).stdout.split()
    return int(out[-2]), float(out[-1])


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def alternate(
    cases: list[str],
    reps: int,
    busy: int,
    run: Callable[[str], tuple[int, float]],
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, dict[str, Any]]:
    """Every case idle and next to ``busy`` loops, ``reps`` times, the load and the order of
    the cases alternating per repetition; per case its threads, the medians and the ratio."""
    walls: dict[tuple[str, str], list[float]] = {}
    threads: dict[str, int] = {}
    for rep in range(reps):
        for load in ("idle", "busy") if rep % 2 == 0 else ("busy", "idle"):
            loops = busy_loops(busy if load == "busy" else 0)
            try:
                for case in cases[rep % len(cases) :] + cases[: rep % len(cases)]:
                    threads[case], wall = run(case)
                    walls.setdefault((case, load), []).append(wall)
                    say(f"rep {rep} {load:4} {case:12} threads {threads[case]}: {wall:6.2f} s")
            finally:
                for proc in loops:
                    proc.kill()
                    proc.wait()
    out = {}
    for case in cases:
        idle = statistics.median(walls[(case, "idle")])
        contended = statistics.median(walls[(case, "busy")])
        out[case] = {
            "threads": threads[case],
            "idle_s": idle,
            "contended_s": contended,
            "contended_over_idle": contended / idle,
        }
    return out


def training_paths(
    data: Path, *, model: str, epochs: int, partitions: int, reps: int = 1, busy: int | None = None
) -> dict[str, Any]:
    """The bench's stage: fedmarket's thread choice on the fast and the DP-SGD path, idle
    and next to as many busy loops as there are usable cores."""
    busy = len(os.sched_getaffinity(0)) if busy is None else busy

    def run(path: str) -> tuple[int, float]:
        return measure("auto", data, epochs, model=model, dp=path == "dp", partitions=partitions)

    paths = alternate(["fast", "dp"], reps, busy, run)
    return {
        "busy_loops": busy,
        "epochs": epochs,
        "reps": reps,
        "paths": paths,
        "worst_contended_over_idle": max(p["contended_over_idle"] for p in paths.values()),
    }
