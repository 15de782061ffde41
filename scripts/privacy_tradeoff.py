"""Privacy/accuracy trade-off sweep: the same as `fedmarket tradeoff`, as a script.

    python scripts/privacy_tradeoff.py --quick --out runs/tradeoff-quick
    python scripts/privacy_tradeoff.py --data data/prepared --out runs/tradeoff [--seeds 0,1,2]

Re-running with the same --out resumes: finished points are skipped, failed ones retried.
"""

from __future__ import annotations

import sys

from fedmarket.cli import app

if __name__ == "__main__":
    app(["tradeoff", *sys.argv[1:]], prog_name="privacy_tradeoff.py")
