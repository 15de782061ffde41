"""CPU seconds each process of a run spends importing, this code and another alternated.

Usage::

    .venv/bin/python scripts/bench_imports.py --baseline /tmp/base [--repeats 3]

Every client actor imports the ClientApp before its first training and the driver imports
the ServerApp and the `simulate` command, so their import cost is paid by every process at
every start. Each module is imported in a fresh interpreter (cwd = the tree, so that tree's
code is the one imported) with this source tree and with ``--baseline`` (``git archive
<commit> fedmarket clients server strategies | tar -x -C DIR``), alternating which goes first.
CPU time (user + system of the child) rather than wall time, so that a shared, busy machine
changes the figures less; the load average is printed with each line. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("clients.app", "server.app", "fedmarket.cli.simulate")
HEAVY = ("opacus", "sklearn", "scipy", "matplotlib", "pandas", "sympy")
CODE = (
    "import sys, {module}; "
    "print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))))"
)


def import_cpu(code: Path, module: str) -> tuple[float, str]:
    """CPU seconds of one fresh interpreter importing ``module`` from ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(module=module, heavy=HEAVY)],
        env={**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"},
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trees = {"now": ROOT, "before": args.baseline.resolve()}
    cpu: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats):
        order = list(trees) if rep % 2 == 0 else list(reversed(trees))
        for name in order:
            for module in MODULES:
                seconds, heavy = import_cpu(trees[name], module)
                cpu.setdefault((name, module), []).append(seconds)
                load = os.getloadavg()[0]
                print(f"{name:6} {module:24} {seconds:6.2f} s CPU  load {load:4.1f}  [{heavy}]")
    print("\nmedian CPU s   before    now   now/before")
    for module in MODULES:
        b, n = (statistics.median(cpu[(t, module)]) for t in ("before", "now"))
        print(f"{module:24} {b:6.2f} {n:6.2f}   {n / b:5.2f}")


if __name__ == "__main__":
    main()
