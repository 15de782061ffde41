"""The trackers that send a run to MLflow: off (``NullTracker``) unless a URI is given,
MLflow through ``MlflowClient`` (no global ``mlflow.set_tracking_uri``, which would also set
$MLFLOW_TRACKING_URI for every later process), and a guard that turns any failure into one
warning, because a run's own directory is its record and tracking is a copy.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from fedmarket.tracking.target import TrackingTarget

log = logging.getLogger("fedmarket")

# Older MLflow servers allowed 500 characters (6000 since 2.x); keys at most 250.
MAX_PARAM_VALUE = 500
MAX_KEY = 250
MAX_TAG_VALUE = 5000
_NOT_IN_A_NAME = re.compile(r"[^\w\-. /:]")

SkipFile = Callable[[Path], bool]  # a file's path relative to the logged directory


class Tracker(Protocol):
    """What a command tells a tracker: a run (nested if one is open), its metrics, its files."""

    def start(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
    ) -> None: ...

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...

    def log_artifacts(
        self, directory: Path, path: str | None = None, skip: SkipFile | None = None
    ) -> None: ...

    def end(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracking off: every call does nothing, so commands call a tracker unconditionally."""

    active = False

    def start(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
    ) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        pass

    def log_artifacts(
        self, directory: Path, path: str | None = None, skip: SkipFile | None = None
    ) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


def open_tracker(target: TrackingTarget | None) -> Tracker:
    """A tracker for ``target`` (None: ``NullTracker``); the store or server is reached now,
    so an unreachable one is a warning before the run, and the run goes on untracked."""
    if target is None:
        return NullTracker()
    return GuardedTracker(lambda: MlflowTracker(target), target.uri)


class MlflowTracker:
    """Runs in one MLflow experiment; a run started while another is open is its child."""

    def __init__(self, target: TrackingTarget) -> None:
        from mlflow import MlflowClient

        for name in ("alembic", "mlflow.store.db.utils"):  # creating a store's tables
            logging.getLogger(name).setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # MLflow's SQLAlchemy store sets up its tables with a loader SQLAlchemy 2.1
            # deprecates: MLflow's notice to act on, not the user's; it printed on every run
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
            self.client = MlflowClient(tracking_uri=target.uri)
            found = self.client.get_experiment_by_name(target.experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(
                target.experiment, artifact_location=target.artifacts
            )
        else:
            self.experiment_id = found.experiment_id
        self.open: list[str] = []
        self.started: list[str] = []  # every run, in order (the first is the command's)

    @property
    def run_id(self) -> str:
        return self.open[-1]

    def start(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
    ) -> None:
        from mlflow.entities import Param, RunTag

        all_tags = {"mlflow.runName": name, **(tags or {})}
        if self.open:
            all_tags["mlflow.parentRunId"] = self.open[-1]
        run = self.client.create_run(self.experiment_id, run_name=name)
        self.open.append(run.info.run_id)
        self.started.append(run.info.run_id)
        tag_list = [RunTag(k, _tag_value(v)) for k, v in all_tags.items()]
        param_list = [Param(k, v) for k, v in flat_params(params).items()]
        for i in range(0, max(len(tag_list), len(param_list)), 100):  # MLflow's batch limit
            self.client.log_batch(
                self.run_id, params=param_list[i : i + 100], tags=tag_list[i : i + 100]
            )

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step or 0) for k, v in metric_values(metrics).items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_artifacts(
        self, directory: Path, path: str | None = None, skip: SkipFile | None = None
    ) -> None:
        for file in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            relative = file.relative_to(directory)
            if skip is not None and skip(relative):
                continue
            parent = relative.parent.as_posix()
            where = "/".join(p for p in (path, parent if parent != "." else None) if p)
            self.client.log_artifact(self.run_id, str(file), where or None)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.open.pop(), status)


class GuardedTracker:
    """A tracker whose failures are a warning, once; tracking is then off for the command.

    The MLflow store can be unreachable, full or refuse a value: none of that may cost a run
    its result or its exit code. Runs left open are marked FAILED where still possible.
    """

    def __init__(self, make: Callable[[], Tracker], where: str) -> None:
        self.where = where
        self.inner: Tracker | None = None
        self.depth, self.failed = 0, False
        self._guard("connecting", lambda: setattr(self, "inner", make()))

    @property
    def active(self) -> bool:
        return self.inner is not None

    @property
    def run_id(self) -> str | None:
        """The command's run (the first started), while tracking is on."""
        started = getattr(self.inner, "started", None)
        return started[0] if started else None

    def _guard(self, what: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:
            self.abandon(what, exc)

    def abandon(self, what: str, exc: BaseException) -> None:
        """Warn that tracking failed while doing ``what``, end the runs still open as FAILED
        (where the store still answers) and track nothing more."""
        if not self.failed:
            self.failed = True
            log.warning(
                "MLflow tracking at %s failed while %s (%s: %s); the run goes on and its "
                "directory keeps every result; nothing more is tracked by this command",
                self.where,
                what,
                type(exc).__name__,
                exc,
            )
        inner, self.inner = self.inner, None
        for _ in range(self.depth if inner is not None else 0):
            try:
                inner.end("FAILED")  # type: ignore[union-attr]
            except Exception:
                break

    def start(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
    ) -> None:
        if self.inner is not None:
            self.depth += 1
            self._guard(f"starting run {name!r}", lambda: self.inner.start(name, params, tags))  # type: ignore[union-attr]

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self.inner is not None:
            self._guard("logging metrics", lambda: self.inner.log_metrics(metrics, step))  # type: ignore[union-attr]

    def log_artifacts(
        self, directory: Path, path: str | None = None, skip: SkipFile | None = None
    ) -> None:
        if self.inner is not None:
            self._guard(
                f"logging the files of {directory}",
                lambda: self.inner.log_artifacts(directory, path, skip),  # type: ignore[union-attr]
            )

    def end(self, status: str = "FINISHED") -> None:
        if self.inner is not None and self.depth > 0:
            self.depth -= 1
            self._guard("ending a run", lambda: self.inner.end(status))  # type: ignore[union-attr]


@contextmanager
def tracked_run(
    tracker: Tracker, name: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
) -> Iterator[Tracker]:
    """A run that ends FINISHED, or FAILED (KILLED when stopped) if its body raises."""
    tracker.start(name, params, tags)
    try:
        yield tracker
    except KeyboardInterrupt:
        tracker.end("KILLED")
        raise
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end("FINISHED")


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as ``a.b`` keys with string values, within MLflow's limits."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        else:
            out[metric_name(name)] = str(value)[:MAX_PARAM_VALUE]
    return out


def metric_name(key: str) -> str:
    """``key`` with the characters MLflow refuses in a name replaced by ``_``."""
    return _NOT_IN_A_NAME.sub("_", str(key)).strip("/")[:MAX_KEY] or "_"


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``metrics`` (nested dicts as ``a.b``); None, NaN, text and
    tables are left out: a missing value is clearer than a NaN in MLflow's charts."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in metric_values(value).items()})
        elif (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        ):
            out[metric_name(str(key))] = float(value)
    return {metric_name(k): v for k, v in out.items()}


def _tag_value(value: Any) -> str:
    return str(value)[:MAX_TAG_VALUE]
