"""`data prepare` against the raw read of the same files (issue #20: <= 5x).

The floor is pandas reading every event file (all columns, the on-disk dtypes) and every
customer table, which any preparation must do once. Each prepare runs in a fresh process,
its import time not counted, so that another source tree (``code``) can be timed in the
same run; floor and prepare alternate and the medians are compared.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedmarket.experiments.bench.fresh import child_env

KEY = b"bench-prepare-key-not-a-secret!!"  # fixed: pseudonym cost does not depend on the key
CHILD = f"""
import sys, time
from pathlib import Path
import fedmarket
from fedmarket.data.prepare import PrepareOptions, prepare
print(fedmarket.__file__)
start = time.perf_counter()
prepare(PrepareOptions(raw=Path(sys.argv[1]), out=Path(sys.argv[2]), pseudonym_key={KEY!r}))
print(time.perf_counter() - start)
"""


def ensure_raw(root: Path, *, retailers: int, customers: int, days: int, seed: int) -> Path:
    """Synthetic retailer exports under ``root``, written once per shape."""
    from fedmarket.data.synth.generate import generate_retailers

    spec = {"retailers": retailers, "customers": customers, "days": days, "seed": seed}
    marker = root / "raw.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    if root.exists():
        shutil.rmtree(root)
    generate_retailers(root, n_retailers=retailers, n_customers=customers, days=days, seed=seed)
    marker.write_text(json.dumps(spec) + "\n")
    return root


def raw_read(raw: Path) -> float:
    """Seconds to read what prepare reads, with pandas' defaults."""
    import pandas as pd

    from fedmarket.data.ingest import loaders

    start = time.perf_counter()
    for files in loaders.find_exports(raw).values():
        for path in files:
            pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            for table in sorted(path.parent.glob("customers.*")):
                pd.read_csv(table, dtype=str)
    return time.perf_counter() - start


def timed_prepare(raw: Path, out: Path, code: Path | None = None) -> float:
    """Seconds of one prepare call in a child process importing fedmarket from ``code``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(raw), str(out)],
        env=child_env(code),
        cwd=out.parent,  # not a checkout: python -c puts the current directory first
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(out, ignore_errors=True)
    imported, seconds = done.stdout.strip().splitlines()[-2:]
    if code is not None and not Path(imported).is_relative_to(code):
        raise SystemExit(f"the child imported {imported}, not fedmarket from {code}")
    return float(seconds)


def prepare_against_read(
    raw: Path, out: Path, repeats: int, sources: dict[str, Path | None] | None = None
) -> dict[str, Any]:
    """Raw read and each source's prepare, alternated ``repeats`` times; medians and
    ratios. ``sources`` default: this code, named ``prepare``."""
    sources = sources or {"prepare": None}
    times: dict[str, list[float]] = {"raw read": [], **{name: [] for name in sources}}
    for _ in range(repeats):
        times["raw read"].append(raw_read(raw))
        for name, code in sources.items():
            times[name].append(timed_prepare(raw, out, code))
    floor = statistics.median(times["raw read"])
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "runs_s": times,
        "median_s": medians,
        "over_raw_read": {name: medians[name] / floor for name in sources},
    }


def print_table(result: dict[str, Any], say: Callable[[str], None] = print) -> None:
    floor = result["median_s"]["raw read"]
    for name, values in result["runs_s"].items():
        median = result["median_s"][name]
        runs = " ".join(f"{v:.2f}" for v in values)
        say(f"{name:9s} s: {runs}  median {median:.2f}  / raw read {median / floor:.1f}x")
