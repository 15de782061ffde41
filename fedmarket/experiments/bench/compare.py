"""fedmarket against other ways of doing the same federated work (issue #20).

Each framework runs the same job in a fresh process, as a user would start it: the
prepared retailers, fedmarket's cnn-lstm from the same seeded weights, ``rounds`` rounds
of FedAvg, every client training ``epochs`` epochs of Adam in batches of ``batch_size``, no
DP, the global model evaluated on the pooled test customers before training and after
every round; fedmarket without its centralised reference, local-only models and client
evaluation, which the others do not do. The runs alternate (a, b, b, a, ...) so a change
in the shared machine's load falls on both; medians of each figure are compared:

* ``wall_s``: the whole process, interpreter and imports included;
* ``to_round_s``: from the start to round 1 (after the initial evaluation): fedmarket has
  started Ray and its client actors by then, Flower's ``run_simulation`` starts them during
  round 1, so
* ``round1_done_s``: from the start to the end of round 1 (its evaluation included) is the
  fair time to the first result;
* ``round_s``: a steady round, the median of rounds 2.. (round 1 also starts the actors);
* ``tail_s``: from the end of the last round to the process's end (reports, shutdown).

The ROC-AUC of the final model shows that the same work was done.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fedmarket.config import format_overrides
from fedmarket.errors import ConfigError, FedmarketError
from fedmarket.experiments.bench.fresh import load_average, read_rounds, run_command

FIGURES = ("wall_s", "to_round_s", "round1_done_s", "round_s", "tail_s")
WORDS = (
    "end-to-end wall, s",
    "start to round 1 (Flower's [ROUND 1/ line), s",
    "start to the end of round 1, s",
    "steady round (median of 2..), s",
    "after the last round, s",
)
DEFAULTS: dict[str, Any] = {"rounds": 3, "epochs": 1, "batch_size": 64, "lr": 0.003, "seed": 0}
TREE = Path(__file__).resolve().parents[3]  # the source tree holding fedmarket/


def alternated(repeats: int, names: tuple[str, str]) -> list[tuple[int, str]]:
    """(repeat, name) in the order they run: a b, b a, a b, ..."""
    if repeats < 1:
        raise ConfigError(f"compare: --repeats must be >= 1, got {repeats}")
    a, b = names
    return [(i, name) for i in range(repeats) for name in ((a, b) if i % 2 == 0 else (b, a))]


def steady_round(ends: list[float]) -> float:
    """Median time of rounds 2.. from ``ends``, the times rounds 1, 2, ... ended (the first
    round, which also starts the client actors, is not steady)."""
    if len(ends) < 2:
        raise FedmarketError("compare: a steady round needs a run of at least two rounds")
    return statistics.median(b - a for a, b in itertools.pairwise(ends))


def stamped_split(rounds: list[dict[str, float]], started: float, wall: float) -> dict[str, Any]:
    """Figures of a run that stamped the end of the initial evaluation (round 0) and of each
    round (epoch seconds, ``timings.json``); ``started``: the process's start."""
    rows = sorted(rounds, key=lambda r: r["round"])
    ends = [float(r["at"]) for r in rows]
    return {
        "wall_s": wall,
        "to_round_s": ends[0] - started,
        "round1_done_s": ends[1] - started,
        "round_s": steady_round(ends[1:]),
        "tail_s": started + wall - ends[-1],
        "roc_auc": float(rows[-1]["roc_auc"]),
    }


def fedmarket_split(run_dir: Path, started: float, wall: float) -> dict[str, Any]:
    """Figures of a `fedmarket simulate` run directory: round 1's start and end from the log's
    ``[ROUND 1/`` and ``[ROUND 2/`` lines, the rounds' ends from ``rounds.csv``'s
    ``elapsed_s`` (taken after each evaluation)."""
    lines = (run_dir / "log.txt").read_text().splitlines()

    def stamp(mark: str) -> float:
        line = next(line for line in lines if mark in line)
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() - started

    rows = read_rounds(run_dir)
    ends = [float(r["elapsed_s"]) for r in rows]
    round1_done = stamp("[ROUND 2/")  # logged once round 1 is evaluated
    return {
        "wall_s": wall,
        "to_round_s": stamp("[ROUND 1/"),
        "round1_done_s": round1_done,
        "round_s": steady_round(ends),
        "tail_s": wall - (round1_done + ends[-1] - ends[0]),
        "roc_auc": float(rows[-1]["test_roc_auc"]),
    }


def summary(runs: list[dict[str, Any]], ours: str = "fedmarket") -> dict[str, Any]:
    """Medians of each framework's figures and fedmarket's over each other's."""
    names = list(dict.fromkeys(run["name"] for run in runs))
    medians = {
        name: {
            key: statistics.median(run[key] for run in runs if run["name"] == name)
            for key in (*FIGURES, "roc_auc")
        }
        for name in names
    }
    if ours not in medians:
        raise FedmarketError(f"compare: no {ours} run among {', '.join(names)}")
    ratios = {
        name: {key: medians[ours][key] / medians[name][key] for key in FIGURES}
        for name in names
        if name != ours
    }
    return {"medians": medians, "ratios": ratios}


def settings_of(**given: Any) -> dict[str, Any]:
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"compare: unknown setting(s) {', '.join(unknown)}")
    settings = {**DEFAULTS, **given}
    if settings["rounds"] < 2:
        raise ConfigError(
            f"compare: --rounds must be >= 2 (a steady round is round 2 on), got "
            f"{settings['rounds']}"
        )
    return settings


def run_fedmarket(data: Path, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    overrides = {
        "num-server-rounds": settings["rounds"],
        "local-epochs": settings["epochs"],
        "batch-size": settings["batch_size"],
        "learning-rate": settings["lr"],
        "seed": settings["seed"],
        "dp": "none",
        "fraction-evaluate": 0.0,
        "evaluate-every": 1,
        "local-only-models": False,
    }
    args = ["simulate", "--data", str(data), "--out", str(out), "--no-centralised"]
    started = time.time()
    wall = run_command([*args, "--run-config", format_overrides(overrides)])
    return fedmarket_split(out, started, wall)


def run_module(
    module: str, data: Path, out: Path, settings: dict[str, Any], python: str | None = None
) -> dict[str, Any]:
    """``python -m module`` (quickstart or pfl_run) in a fresh process; its figures."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    env = {**os.environ, "PYTHONPATH": str(TREE), "OMP_NUM_THREADS": "1"}
    started = time.time()
    done = subprocess.run(
        [python or sys.executable, "-m", module, "--data", str(data), "--out", str(out), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.time() - started
    if done.returncode != 0:
        raise FedmarketError(
            f"compare: {module} failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    rounds = json.loads((out / "timings.json").read_text())["rounds"]
    return stamped_split(rounds, started, wall)


RUNNERS = {
    "quickstart": "fedmarket.experiments.bench.quickstart",
    "pfl": "fedmarket.experiments.bench.pfl_run",
}


def compare(
    data: Path,
    out: Path,
    other: str,
    repeats: int,
    settings: dict[str, Any],
    python: str | None = None,
    echo: Any = None,
) -> dict[str, Any]:
    """fedmarket against ``other`` (quickstart, pfl), alternated ``repeats`` times;
    every run's figures, their medians and ratios, the load average before and after."""
    if other not in RUNNERS:
        raise ConfigError(f"compare: unknown framework {other!r}; use {', '.join(RUNNERS)}")
    load_before = load_average()
    runs = []
    for i, name in alternated(repeats, ("fedmarket", other)):
        where = out / f"{name}-{i}"
        if name == "fedmarket":
            got = run_fedmarket(data, where, settings)
        else:
            got = run_module(RUNNERS[name], data, where, settings, python)
        runs.append({"name": name, "repeat": i, **got, "load": load_average()})
        if echo is not None:
            echo(runs[-1])
    result = {"settings": settings, "load": [load_before, load_average()], "runs": runs}
    result.update(summary(runs))
    return result


def pfl_missing(python: str | None = None) -> str | None:
    """Why ``python`` (default: this one) cannot run the pfl side, or None when it can."""
    done = subprocess.run(
        [python or sys.executable, "-c", "import pfl, pfl.model.pytorch"],
        env={**os.environ, "PYTHONPATH": str(TREE)},
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        return None
    from fedmarket.experiments.bench.pfl_run import EXTRA_HINT

    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return f"{EXTRA_HINT} ({python or sys.executable}: {last})"


def table(result: dict[str, Any], other: str) -> str:
    """The medians side by side and fedmarket's over the other's, as BENCHMARKS.md shows."""
    med, ratio = result["medians"], result["ratios"][other]
    rows = [
        "| | fedmarket | " + other + " | fedmarket / " + other + " |",
        "|---|---|---|---|",
    ]
    for key, what in zip(FIGURES, WORDS, strict=True):
        rows.append(
            f"| {what} | {med['fedmarket'][key]:.2f} | {med[other][key]:.2f} | {ratio[key]:.2f}x |"
        )
    rows.append(
        f"| test ROC-AUC (pooled) | {med['fedmarket']['roc_auc']:.4f} | "
        f"{med[other]['roc_auc']:.4f} | |"
    )
    return "\n".join(rows)


def main(other: str, argv: list[str] | None = None, doc: str | None = None) -> dict[str, Any]:
    """The standing scripts' command line (scripts/compare_quickstart.py, compare_pfl.py)."""
    import argparse

    parser = argparse.ArgumentParser(description=(doc or __doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared data directory")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternated")
    parser.add_argument("--rounds", type=int, default=DEFAULTS["rounds"])
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--out", type=Path, default=Path(f"/tmp/fedmarket-compare-{other}"))
    if other == "pfl":
        parser.add_argument(
            "--pfl-python",
            default=None,
            help="interpreter that has pfl (the `compare` extra); default: this one",
        )
    ns = parser.parse_args(argv)
    python = getattr(ns, "pfl_python", None)
    if other == "pfl" and (why := pfl_missing(python)) is not None:
        raise SystemExit(f"error: {why}")
    settings = settings_of(
        rounds=ns.rounds, epochs=ns.epochs, batch_size=ns.batch_size, lr=ns.lr, seed=ns.seed
    )
    print("rep name        wall s  to round 1 s  round 1 done s  round s  ROC-AUC  load")

    def echo(run: dict[str, Any]) -> None:
        print(
            f"{run['repeat']:<3} {run['name']:<10} {run['wall_s']:>7.1f} "
            f"{run['to_round_s']:>13.1f} {run['round1_done_s']:>15.1f} "
            f"{run['round_s']:>8.2f} {run['roc_auc']:>8.4f}  "
            f"{run['load']}",
            flush=True,
        )

    result = compare(ns.data.resolve(), ns.out, other, ns.repeats, settings, python, echo)
    print(f"load average {result['load'][0]} at the start, {result['load'][1]} at the end")
    print(table(result, other))
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / "compare.json").write_text(json.dumps(result, indent=1))
    return result
