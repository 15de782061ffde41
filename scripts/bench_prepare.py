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
import pstats
import tempfile
from pathlib import Path

from fedmarket.data.prepare import PrepareOptions, prepare
from fedmarket.experiments.bench.prepare_ratio import KEY, prepare_against_read, print_table


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
            options = PrepareOptions(raw=args.raw, out=out, pseudonym_key=KEY)
            profile = cProfile.Profile()
            profile.runcall(prepare, options)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
            return
        sources = {"prepare": here, **({"baseline": args.baseline} if args.baseline else {})}
        print_table(prepare_against_read(args.raw, out, args.repeats, sources))


if __name__ == "__main__":
    main()
