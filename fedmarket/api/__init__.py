"""fedmarket from Python, for notebooks and scripts (floor 4, beside the CLI).

A notebook wants numbers it can compute with, a dict of run settings rather than TOML
quoted on a command line, and an exception rather than a process exit. So each `fedmarket`
command is also a function here, returning a typed result::

    import fedmarket
    raw = fedmarket.synth(out="demo/raw", retailers=3, customers=200, days=70)
    data = fedmarket.prepare(raw=raw, out="demo/prepared")
    run = fedmarket.simulate(data=data, run_config={"num-server-rounds": 1, "dp": "none"})
    run.gap["roc_auc"], run.epsilon, run.problems

Runs in a loop share one Ray runtime and its client actors inside ``with ray_session():``.

Two results on the same test customers are compared, paired, with ``compare``.

The pooled reference and the baselines are ``train_centralised`` and ``compare_baselines``:
``fedmarket.centralised`` and ``fedmarket.baselines`` are the library's modules of those
names, which a function of the same name would be shadowed by as soon as they load.
"""

from fedmarket.api.compare import Comparison, compare
from fedmarket.api.data import PreparedData, SyntheticData, prepare, synth
from fedmarket.api.results import BaselinesResult, CentralisedRun, RunResult, TradeoffResult
from fedmarket.api.runs import compare_baselines, simulate, tradeoff, train_centralised
from fedmarket.api.session import ray_session

__all__ = [
    "BaselinesResult",
    "CentralisedRun",
    "Comparison",
    "PreparedData",
    "RunResult",
    "SyntheticData",
    "TradeoffResult",
    "compare",
    "compare_baselines",
    "prepare",
    "ray_session",
    "simulate",
    "synth",
    "tradeoff",
    "train_centralised",
]
