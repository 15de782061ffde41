"""The privacy/accuracy trade-off: sweep epsilon for every way fedmarket can train under DP.

Three settings, each at every target epsilon and without DP, over several seeds:

- ``federated-client-dp``: Flower simulation, Opacus DP-SGD at every retailer (customer-level
  epsilon, cumulative over all rounds);
- ``federated-central-dp``: Flower simulation, server-side clipping and noise calibrated
  to the target (``fedmarket.privacy.calibration``; retailer-level epsilon);
- ``centralised-dp``: DP-SGD on the pooled data, the same model, epochs and batch size as
  the centralised reference of ``fedmarket simulate``.

Without DP both federated settings are the same run, so it is trained once per seed and
reported under both. Each run is a point with its own run directory
(``OUT/points/<key>/``) and a small JSON record (``OUT/records/<key>.json``). Records make
the sweep resumable: a point with an "ok" record is skipped, a point that raised gets an
"error" record (the sweep goes on) and is retried on the next run, and a point that was
interrupted has no record and is redone from scratch. ``tradeoff.csv``, ``tradeoff.md``,
``tradeoff.png`` and ``attack_auc.png`` are rebuilt from the records every time.
"""

from fedmarket.config import format_overrides
from fedmarket.experiments.tradeoff.points import (
    DEFAULT_EPSILONS,
    DEFAULT_SEEDS,
    QUICK_EPSILONS,
    RESERVED_KEYS,
    SETTINGS,
    TEST_KEYS,
    Point,
    PointRunner,
    SweepConfig,
    sweep_points,
    sweep_runs,
)
from fedmarket.experiments.tradeoff.report import CSV_COLUMNS, load_table, summarise, write_outputs
from fedmarket.experiments.tradeoff.runners import make_runner, resolve_sweep_data
from fedmarket.experiments.tradeoff.sweep import (
    SweepResult,
    read_record,
    run_point,
    run_sweep,
    write_record,
)
from fedmarket.experiments.tradeoff.tracking import track_sweep

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_EPSILONS",
    "DEFAULT_SEEDS",
    "QUICK_EPSILONS",
    "RESERVED_KEYS",
    "SETTINGS",
    "TEST_KEYS",
    "Point",
    "PointRunner",
    "SweepConfig",
    "SweepResult",
    "format_overrides",
    "load_table",
    "make_runner",
    "read_record",
    "resolve_sweep_data",
    "run_point",
    "run_sweep",
    "summarise",
    "sweep_points",
    "sweep_runs",
    "track_sweep",
    "write_outputs",
    "write_record",
]
