"""New customers' events turned into a run's model inputs, with the code `data prepare` runs.

Batch scoring (a retailer's whole export) and the service (one customer's recent events as
JSON) both come here, and both go through the same validator (``validate_events``), the same
feature builder (``SequenceBuilder``) in the run's window moved to the scoring date, and the
run's normalisation statistics: a customer gets the same score whichever way it is scored.

Features are built on the retailer's own customer ids. Pseudonymisation would not change a
feature (ids and sessions are only counted, and HMAC keeps distinct values distinct), and
scoring happens at the retailer, next to the raw ids the targeting list must name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fedmarket.data import event_pass, features
from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.data.ingest.validate import DropReport
from fedmarket.errors import ConfigError, DataError
from fedmarket.scoring.run_model import RunModel

Advance = Callable[[int], None]


@dataclass(frozen=True)
class ScoringInputs:
    """Row i of every array is customer ``customer[i]`` (the id as the events spell it)."""

    retailer: str
    customer: np.ndarray
    X: np.ndarray  # normalised, (customers, steps, features), float32
    y_purchase: np.ndarray  # labels in the horizon after ``window.cutoff`` (0 where unseen)
    y_count: np.ndarray
    window: features.FeatureWindow
    n_events: int
    last_event: pd.Timestamp | None
    drops: DropReport

    def __len__(self) -> int:
        return len(self.customer)

    @property
    def horizon_covered(self) -> bool:
        """Whether the events reach the end of the horizon, so the labels are outcomes."""
        return self.last_event is not None and self.last_event >= self.window.horizon_end - (
            pd.Timedelta(days=1)
        )


def check_event_features(run: RunModel) -> None:
    """Refuse a run whose inputs are not the event features alone (a joined attribute
    table): its extra columns are not in an event export."""
    extra = [n for n in run.feature_names if n not in features.FEATURE_NAMES]
    if extra or len(run.feature_names) != len(features.FEATURE_NAMES):
        raise ConfigError(
            f"{run.run_dir}: the run's model also reads {len(extra)} attribute column(s) "
            f"({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}) joined by "
            "`data prepare --attributes`; score it with --data PREPARED --partition I"
        )


def default_as_of(last_event: pd.Timestamp) -> pd.Timestamp:
    """Midnight after the last event: every event counts, as in "score them today"."""
    return last_event.tz_convert("UTC").normalize() + pd.Timedelta(days=1)


def featurise_frames(
    run: RunModel,
    frames: Iterable[pd.DataFrame],
    window: features.FeatureWindow,
    *,
    retailer: str,
    drops: DropReport | None = None,
    advance: Advance | None = None,
) -> ScoringInputs:
    """Validated event frames (``validate_events`` output) of one retailer -> model inputs."""
    check_event_features(run)
    builder = features.SequenceBuilder(window, run.count_unit)
    n_events = 0
    for frame in frames:
        if not len(frame):
            continue
        builder.add(frame)
        n_events += len(frame)
        if advance is not None:
            advance(len(frame))
    if n_events == 0 or builder.last_ns is None:
        raise DataError(f"retailer {retailer}: no valid event to score (see the dropped rows)")
    feats = builder.finish()
    last = pd.Timestamp(builder.last_ns, unit="ns", tz="UTC")
    return ScoringInputs(
        retailer=retailer,
        customer=feats.customer,
        X=run.norm.apply(feats.X),
        y_purchase=feats.y_purchase,
        y_count=feats.y_count,
        window=window,
        n_events=n_events,
        last_event=last,
        drops=drops if drops is not None else DropReport(),
    )


class NoEventInWindow(DataError):
    """Customer ``customer`` (its number among those featurised) has no event in ``window``."""

    def __init__(self, customer: int, window: features.FeatureWindow) -> None:
        super().__init__(
            f"no event in the model's window [{window.start:%Y-%m-%d}, "
            f"{window.cutoff:%Y-%m-%d}) ({window.window_days} days before as_of): "
            "the model scores customers active in it"
        )
        self.customer, self.window = customer, window


def featurise_as_of(
    run: RunModel, events: pd.DataFrame, customer: np.ndarray, as_of: np.ndarray, *, retailer: str
) -> np.ndarray:
    """Model inputs of customers ``0..len(as_of)-1``, each in the run's window moved to its
    own ``as_of`` (UTC nanoseconds): one ``featurise_frames`` per distinct date.

    ``events`` is validated (``validate_events``) with ``customer[i]`` the number of row i's
    customer. Raises ``NoEventInWindow`` for the first customer without an event in its window.
    """
    X = np.zeros((len(as_of), *run.input_shape), dtype=np.float32)
    for day in np.unique(as_of):
        members = np.flatnonzero(as_of == day)
        rows = events if len(members) == len(as_of) else events[np.isin(customer, members)]
        window = run.window_at(pd.Timestamp(int(day), unit="ns", tz="UTC"))
        try:
            inputs = featurise_frames(run, [rows], window, retailer=retailer)
            found = {str(c): k for k, c in enumerate(inputs.customer)}
        except DataError:  # none of them is active in the window
            found = {}
        for m in members:
            if str(m) not in found:
                raise NoEventInWindow(int(m), window)
        X[members] = inputs.X[[found[str(m)] for m in members]]
    return X


def featurise_export(
    run: RunModel,
    raw: Path,
    *,
    mapping: ExportMapping | None = None,
    as_of: object | None = None,
    chunksize: int = 500_000,
    strict: bool = False,
    advance: Advance | None = None,
) -> list[ScoringInputs]:
    """Every retailer's customers in ``raw`` (a file or directory, as `data prepare` reads),
    featurised as of ``as_of`` (default: the midnight after the last event)."""
    check_event_features(run)
    return [
        featurise_frames(run, frames, window, retailer=retailer, drops=drops, advance=advance)
        for retailer, window, frames, drops in retailer_frames(
            raw, run.window_at, mapping=mapping, as_of=as_of, chunksize=chunksize, strict=strict
        )
    ]


def retailer_frames(
    raw: Path,
    window_at: Callable[[pd.Timestamp], features.FeatureWindow],
    *,
    mapping: ExportMapping | None,
    as_of: object | None,
    chunksize: int,
    strict: bool,
) -> Iterator[tuple[str, features.FeatureWindow, Iterable[pd.DataFrame], DropReport]]:
    """Each retailer of ``raw`` in order: its model window as of ``as_of`` (default: the
    midnight after its last event), its validated event chunks (lazy) and their drop report.
    The one walk over an export that propensity and recommendation scoring share."""
    exports = loaders.find_exports(Path(raw), mapping)
    for retailer in sorted(exports):
        files = exports[retailer]
        if as_of is None:
            window = window_at(default_as_of(latest_event(retailer, files, mapping, chunksize)))
        else:
            window = window_at(parse_as_of(as_of))
        drops = DropReport()
        frames = (
            chunk
            for path in files
            for chunk in loaders.iter_events(
                path,
                mapping=mapping,
                chunksize=chunksize,
                strict=strict,
                report=drops,
                retailer_id=retailer,
            )
        )
        yield retailer, window, frames, drops


def parse_as_of(value: object) -> pd.Timestamp:
    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--as-of {value!r} is not a date (use YYYY-MM-DD)") from exc
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    if t != t.normalize():
        raise ConfigError(
            f"--as-of {value!r} is not a midnight; features cover whole UTC days, "
            f"use e.g. {t.normalize():%Y-%m-%d}"
        )
    return t


def latest_event(
    retailer: str, files: list[Path], mapping: ExportMapping | None, chunksize: int
) -> pd.Timestamp:
    """The latest event as `data prepare` takes it for its default cut-off (an upper bound
    when the export needs no mapping, else validated: ``event_pass.latest_event``)."""
    last = event_pass.latest_event({retailer: files}, mapping, chunksize)
    if last is None:
        raise DataError(f"retailer {retailer}: no valid event in {', '.join(map(str, files))}")
    return last
