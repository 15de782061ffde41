"""fedmarket against pfl-research (Apple's simulator) on the same work.

Usage (pfl is the optional extra `compare`; keep it in its own environment)::

    python3.11 -m venv /work/venv-pfl && /work/venv-pfl/bin/pip install -e '.[compare]'
    OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_pfl.py --data /tmp/s7/prepared
        --pfl-python /work/venv-pfl/bin/python [--repeats 3] [--rounds 3]

The pfl side (``fedmarket/experiments/bench/pfl_run.py``): fedmarket's cnn-lstm as a pfl
``PyTorchModel``, one pfl user per retailer, all in every round, Adam locally with the same
epochs and batch size, ``FederatedAveraging`` with a central SGD step of 1 weighted by
customers; the global model evaluated on the pooled test customers every round, as
fedmarket's ServerApp does. fedmarket runs ``fedmarket simulate --no-centralised`` with
dp='none', no client evaluation and no local-only models. Alternated, each in a fresh
process; prints each run, the medians, fedmarket / pfl (issue #20: end to end no slower,
steady round faster) and the ROC-AUC of both; writes OUT/compare.json. Without pfl in
``--pfl-python`` it stops at once, naming the extra. A benchmark, not a test.
"""

from __future__ import annotations

from fedmarket.experiments.bench.compare import main

if __name__ == "__main__":
    main("pfl", doc=__doc__)
