"""fedmarket against a minimal Flower app in the style of Flower's quickstart, same work.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_quickstart.py --data /tmp/s7/prepared
        [--repeats 3] [--rounds 3] [--out /tmp/fedmarket-compare-quickstart]

The quickstart app (``fedmarket/experiments/bench/quickstart.py``) builds fedmarket's
cnn-lstm afresh and reads its partition for every message, trains with Adam in a plain loop
and aggregates with Flower's FedAvg, under ``flwr.simulation.run_simulation`` with one CPU
per client actor; fedmarket runs ``fedmarket simulate --no-centralised`` with dp='none', no
client evaluation and no local-only models. Both evaluate the global model on the pooled
test customers every round. Alternated, each in a fresh process; prints each run, the
medians, fedmarket / quickstart (issue #20's goal: end-to-end wall <= 0.8x) and the ROC-AUC
of both; writes OUT/compare.json. A benchmark, not a test.
"""

from __future__ import annotations

from fedmarket.experiments.bench.compare import main

if __name__ == "__main__":
    main("quickstart", doc=__doc__)
