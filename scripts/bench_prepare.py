"""`data prepare` against the raw read of the same files, as a ratio measured in one run.

Usage::

    .venv/bin/python scripts/bench_prepare.py --raw /tmp/pf/raw [--repeats 3]
        [--baseline /tmp/pf/base] [--profile]

The floor is pandas reading every event file (all columns, the on-disk dtypes) and every
customer table, which any preparation must do once. Each prepare runs in a fresh process
(``python -c``, its import time not counted) so that ``--baseline``, a source tree of another
fedmarket version (``git archive <commit> fedmarket | tar -x -C DIR``), can be timed in the
same run. Floor, prepare and baseline alternate and the medians of ``--repeats`` runs are
reported, because the development machine is shared and absolute seconds drift between runs;
the ratios are what to compare. ``--profile`` prints prepare's cProfile instead (top functions
by cumulative time). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from fedmarket.data.ingest import loaders
from fedmarket.data.prepare import PrepareOptions, prepare

_KEY = b"bench-prepare-key-not-a-secret!!"  # fixed: pseudonym cost does not depend on the key
_CHILD = f"""
import sys, time
from pathlib import Path
import fedmarket
from fedmarket.data.prepare import PrepareOptions, prepare
print(fedmarket.__file__)
start = time.perf_counter()
prepare(PrepareOptions(raw=Path(sys.argv[1]), out=Path(sys.argv[2]), pseudonym_key={_KEY!r}))
print(time.perf_counter() - start)
"""


def raw_read(raw: Path) -> float:
    """Seconds to read what prepare reads, with pandas' defaults."""
    start = time.perf_counter()
    for files in loaders.find_exports(raw).values():
        for path in files:
            pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            for table in sorted(path.parent.glob("customers.*")):
                pd.read_csv(table, dtype=str)
    return time.perf_counter() - start


def timed_prepare(raw: Path, out: Path, source: Path) -> float:
    """Seconds of one prepare call, in a child process that imports fedmarket from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(raw), str(out)],
        env=env,
        cwd=out.parent,  # not the checkout: python -c puts the current directory first
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(out, ignore_errors=True)
    imported, seconds = done.stdout.strip().splitlines()[-2:]
    if not Path(imported).is_relative_to(source):
        raise SystemExit(f"the child imported {imported}, not fedmarket from {source}")
    return float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another fedmarket source tree to time")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prepared"
        if args.profile:
            options = PrepareOptions(raw=args.raw, out=out, pseudonym_key=_KEY)
            profile = cProfile.Profile()
            profile.runcall(prepare, options)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
            return
        sources = {"prepare": here, **({"baseline": args.baseline} if args.baseline else {})}
        times: dict[str, list[float]] = {"raw read": [], **{name: [] for name in sources}}
        for _ in range(args.repeats):
            times["raw read"].append(raw_read(args.raw))
            for name, source in sources.items():
                times[name].append(timed_prepare(args.raw, out, source))
    floor = statistics.median(times["raw read"])
    for name, values in times.items():
        median = statistics.median(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:9s} s: {runs}  median {median:.2f}  / raw read {median / floor:.1f}x")


if __name__ == "__main__":
    main()
