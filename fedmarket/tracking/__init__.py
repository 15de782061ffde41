"""Experiment tracking (library floor): off unless a tracking URI is given; MLflow, from
the tracking extra, loads only then.

Commands check the URI before their heavy work (``tracking_target``), open the tracker
(``open_tracker``: a ``NullTracker`` when off) and log what they wrote once it is written
(``runs``). A tracking failure is a warning, never a lost result or a failed exit code.
"""

from fedmarket.tracking.runs import (
    log_baselines,
    log_centralised,
    log_run_dir,
    log_simulation,
    never_fails,
    run_dir_skip,
    run_tags,
)
from fedmarket.tracking.target import (
    DEFAULT_EXPERIMENT,
    INSTALL_HINT,
    TrackingTarget,
    tracking_target,
)
from fedmarket.tracking.trackers import (
    GuardedTracker,
    MlflowTracker,
    NullTracker,
    Tracker,
    flat_params,
    metric_name,
    metric_values,
    open_tracker,
    tracked_run,
)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "INSTALL_HINT",
    "GuardedTracker",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "TrackingTarget",
    "flat_params",
    "log_baselines",
    "log_centralised",
    "log_run_dir",
    "log_simulation",
    "metric_name",
    "metric_values",
    "never_fails",
    "open_tracker",
    "run_dir_skip",
    "run_tags",
    "tracked_run",
    "tracking_target",
]
