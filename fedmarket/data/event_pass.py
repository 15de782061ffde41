"""The one pass over a retailer's events: validate, pseudonymise, fold into the features.

The default cut-off needs the latest *valid* event, which is only known once every row has
been validated. Validating everything twice (once for that number, once for the features) was
a quarter of `data prepare`, so the pass runs in the window of a cheap upper bound on it
(``ingest.peek``: Parquet statistics, or the event_time column alone), notes the exact latest
valid event on the way, and is repeated only when that gives another cut-off (when the latest
rows of the data are all invalid). The result is the one the exact cut-off gives from the start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fedmarket.data import categories, features
from fedmarket.data.ingest import advice, loaders, peek
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.protect import anonymise
from fedmarket.errors import ConfigError, DataError

if TYPE_CHECKING:  # prepare imports this module; the options are only read here
    from fedmarket.data.prepare import PrepareOptions

Advance = Callable[..., None]
log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class Scan:
    """One retailer's events folded into the feature accumulators, before the split."""

    builder: features.SequenceBuilder
    drops: DropReport
    n_events: int
    last: pd.Timestamp | None  # latest valid event, whatever the window
    first: pd.Timestamp | None = None  # earliest valid event, whatever the window
    n_in_window: int = 0  # valid events in [window start, cut-off)
    categories: categories.CategoryHistoryBuilder | None = None  # task next-categories


def scan_all(
    opts: PrepareOptions,
    exports: dict[str, list[Path]],
    pseudonymiser: anonymise.Pseudonymiser,
    advance: Advance,
) -> tuple[features.FeatureWindow, dict[str, Scan]]:
    """Every retailer's scan and the window they were made in (see the module docstring)."""
    window = _window(opts, _cutoff(opts, exports))

    def scan(w: features.FeatureWindow) -> dict[str, Scan]:
        return {
            r: scan_retailer(r, exports[r], w, pseudonymiser, opts, advance)
            for r in sorted(exports)
        }

    scans = scan(window)
    if opts.cutoff is None:
        exact = _window(opts, features.default_cutoff(_latest(scans, opts), opts.horizon_days))
        if exact != window:
            window, scans = exact, scan(exact)
    else:
        warn_short_horizon(window, [s.last for s in scans.values()])
    warn_own_event_names([s.drops for s in scans.values()])
    return window, scans


def warn_own_event_names(reports: list[DropReport]) -> None:
    """Warn once per site event name that equals one of fedmarket's own (view, cart,
    remove_from_cart, purchase) but that a mapping with its own names does not list: it is
    read as fedmarket's meaning, which may not be the site's (a ``cart`` page view would
    become an add-to-cart), and nothing else would show it."""
    total = DropReport()
    for report in reports:
        total.note_own_names(report.own_event_names)
    for name, count in sorted(total.own_event_names.items()):
        log.warning(
            "the export's event name %r (%s rows) is not listed in the mapping's [event_names], "
            "so it is read as fedmarket's own %r; if it means something else on your site, list "
            'it: %s = "view" or %s = "ignore" in [event_names] (inline: event.%s=ignore), or '
            '%s = "%s" to confirm it and silence this warning',
            name,
            f"{count:,}",
            name,
            name,
            name,
            name,
            name,
            name,
        )


def warn_short_horizon(window: features.FeatureWindow, lasts: list[pd.Timestamp | None]) -> None:
    """Warn when the labels' horizon runs past the last event: customers look as if they bought
    nothing in days the export does not cover (a test buy rate of 0% with no other sign)."""
    times = [t for t in lasts if t is not None]
    if not times:
        return
    last = max(times)
    covered = (last.normalize() + pd.Timedelta(days=1) - window.cutoff).days
    if covered >= window.horizon_days:
        return
    suggested = features.default_cutoff(last, window.horizon_days)
    log.warning(
        "labels cover only %d of the %d horizon days: cut-off %s plus %d days runs to %s, but "
        "the last valid event is at %s, so purchases after it are missing from the labels; "
        "pass --cutoff %s (or earlier), omit --cutoff, or a shorter --horizon-days",
        max(covered, 0),
        window.horizon_days,
        f"{window.cutoff:%Y-%m-%d}",
        window.horizon_days,
        f"{window.horizon_end:%Y-%m-%d}",
        last.isoformat(),
        f"{suggested:%Y-%m-%d}",
    )


def _cutoff(opts: PrepareOptions, exports: dict[str, list[Path]]) -> pd.Timestamp:
    if opts.cutoff is not None:
        try:
            cutoff = pd.Timestamp(opts.cutoff)
        except ValueError as exc:
            raise ConfigError(f"--cutoff {opts.cutoff!r} is not a date (use YYYY-MM-DD)") from exc
        return cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    drops = DropReport()
    last = latest_event(exports, opts.mapping, opts.chunksize, strict=opts.strict, drops=drops)
    if last is None:
        raise DataError(all_dropped(opts, drops))
    return features.default_cutoff(last, opts.horizon_days)


def _window(opts: PrepareOptions, cutoff: pd.Timestamp) -> features.FeatureWindow:
    return features.FeatureWindow(
        window_days=opts.window_days,
        step_days=opts.step_days,
        horizon_days=opts.horizon_days,
        cutoff=cutoff,
    )


def _latest(scans: dict[str, Scan], opts: PrepareOptions) -> pd.Timestamp:
    times = [s.last for s in scans.values() if s.last is not None]
    if not times:
        drops = DropReport()
        for scan in scans.values():
            drops.merge(scan.drops)
        raise DataError(all_dropped(opts, drops))
    return max(times)


def all_dropped(opts: PrepareOptions, drops: DropReport) -> str:
    """The error for exports none of whose rows is a valid event (see ``advice``)."""
    return advice.all_dropped(str(opts.raw), drops, mapping_given=opts.mapping is not None)


def latest_event(
    exports: dict[str, list[Path]],
    mapping: ExportMapping | None,
    chunksize: int,
    *,
    strict: bool = False,
    drops: DropReport | None = None,
) -> pd.Timestamp | None:
    """The latest event of ``exports`` (retailer -> files), as cheaply as it can be known.

    Without a mapping: an upper bound from Parquet statistics or the event_time column alone
    (``peek``), which counts rows the validator would drop; `data prepare` checks the cut-off
    it gives after its pass (module docstring), scoring takes it as "today". With a mapping
    (it may rename, combine or ignore rows), or where no file gives a bound: the exact latest
    valid event, by validating every row. None where no row is valid (``drops`` says why).
    """
    if mapping is None:
        found = [peek.latest_event_ns(p) for files in exports.values() for p in files]
        bound = max((ns for ns in found if ns is not None), default=None)
        if bound is not None:
            return pd.Timestamp(bound, unit="ns", tz="UTC")
    return _validated_latest(
        exports, mapping, chunksize, strict, drops if drops is not None else DropReport()
    )


def last_event_time(exports: dict[str, list[Path]], opts: PrepareOptions) -> pd.Timestamp:
    """The latest valid event, by validating every row: the exact value, and the slow way.

    ``prepare`` gets it from its one pass instead (``scan_all``); this is for callers that
    need only this number (a SuperNode's describe stage).
    """
    drops = DropReport()
    last = _validated_latest(exports, opts.mapping, opts.chunksize, opts.strict, drops)
    if last is None:
        raise DataError(all_dropped(opts, drops))
    return last


def _validated_latest(
    exports: dict[str, list[Path]],
    mapping: ExportMapping | None,
    chunksize: int,
    strict: bool,
    drops: DropReport,
) -> pd.Timestamp | None:
    last = None
    for retailer, files in exports.items():
        for chunk in _valid_chunks(retailer, files, drops, mapping, chunksize, strict):
            t = chunk["event_time"].max()
            last = t if last is None or t > last else last
    return last


def scan_retailer(
    retailer: str,
    files: list[Path],
    window: features.FeatureWindow,
    pseudonymiser: anonymise.Pseudonymiser,
    opts: PrepareOptions,
    advance: Advance,
) -> Scan:
    drops = DropReport()
    builder = features.SequenceBuilder(window, opts.count_unit)
    histories = categories.CategoryHistoryBuilder(window, opts.history_length)
    n_events, n_in_window, first, last = 0, 0, None, None
    for chunk in _valid_chunks(retailer, files, drops, opts.mapping, opts.chunksize, opts.strict):
        times = chunk["event_time"]
        lo, hi = times.min(), times.max()
        first = lo if first is None or lo < first else first
        last = hi if last is None or hi > last else last
        n_in_window += int(((times >= window.start) & (times < window.cutoff)).sum())
        released = anonymise.anonymise_events(chunk, pseudonymiser)
        builder.add(released)
        histories.add(released)
        n_events += len(chunk)
        advance(len(chunk))
    return Scan(builder, drops, n_events, last, first, n_in_window, histories)


def _valid_chunks(
    retailer: str,
    files: list[Path],
    drops: DropReport,
    mapping: ExportMapping | None,
    chunksize: int,
    strict: bool,
) -> Iterator[pd.DataFrame]:
    """A retailer's validated, non-empty event chunks, file by file; drops go to ``drops``."""
    for path in files:
        for chunk in loaders.iter_events(
            path,
            mapping=mapping,
            chunksize=chunksize,
            strict=strict,
            report=drops,
            retailer_id=retailer,
        ):
            if len(chunk):
                yield chunk


def check_scan(
    retailer: str, scan: Scan, window: features.FeatureWindow, opts: PrepareOptions
) -> None:
    """Refuse a retailer with no valid event, or none in the window, saying why and what to
    change: the data's span next to the window asked for, which a user cannot see otherwise."""
    if scan.n_events == 0:
        raise DataError(
            advice.all_dropped(
                f"{opts.raw} (retailer {retailer})",
                scan.drops,
                mapping_given=opts.mapping is not None,
            )
        )
    if scan.n_in_window == 0:
        suggested = features.default_cutoff(scan.last, window.horizon_days)
        raise DataError(
            f"retailer {retailer}: no customer has an event in the feature window "
            f"[{window.start.isoformat()}, {window.cutoff.isoformat()}) "
            f"(cut-off {window.cutoff:%Y-%m-%d}, --window-days {window.window_days}); the data "
            f"has {advice.span_text(scan.first, scan.last)}. Pass a --cutoff inside that span "
            f"(e.g. --cutoff {suggested:%Y-%m-%d}, or omit --cutoff for the end of the data "
            f"minus the horizon) or a longer --window-days"
        )
