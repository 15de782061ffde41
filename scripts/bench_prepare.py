"""`data prepare` against the raw read of the same files, as a ratio measured in one run.

Usage::

    .venv/bin/python scripts/bench_prepare.py --raw /tmp/pf/raw [--repeats 3] [--profile]

The floor is pandas reading every event file (all columns, the on-disk dtypes) plus the
customer tables, which any preparation must do once. Floor and prepare alternate, and the
medians of ``--repeats`` runs are reported, because the development machine is shared and
absolute seconds drift between runs; the ratio is what to compare. ``--profile`` prints
prepare's cProfile instead (top functions by cumulative time). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from fedmarket.data.ingest import loaders
from fedmarket.data.prepare import PrepareOptions, prepare

_KEY = b"bench-prepare-key-not-a-secret!!"  # fixed: pseudonym cost does not depend on the key


def raw_read(raw: Path) -> int:
    """Read what prepare reads, with pandas' defaults; returns the event rows."""
    rows = 0
    for files in loaders.find_exports(raw).values():
        for path in files:
            rows += len(pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path))
            customers = sorted(path.parent.glob("customers.*"))
            for table in customers:
                pd.read_csv(table, dtype=str)
    return rows


def run_prepare(raw: Path, out: Path) -> None:
    prepare(PrepareOptions(raw=raw, out=out, pseudonym_key=_KEY, overwrite=True))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prepared"
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(run_prepare, args.raw, out)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
            return
        floor, full = [], []
        for _ in range(args.repeats):
            floor.append(timed(raw_read, args.raw))
            full.append(timed(run_prepare, args.raw, out))
            shutil.rmtree(out, ignore_errors=True)
    f, p = statistics.median(floor), statistics.median(full)
    print(f"raw read  s: {' '.join(f'{x:.2f}' for x in floor)}  median {f:.2f}")
    print(f"prepare   s: {' '.join(f'{x:.2f}' for x in full)}  median {p:.2f}")
    print(f"prepare / raw read: {p / f:.1f}x")


if __name__ == "__main__":
    main()
