"""What to tell a user whose export lost every row, or whose window misses the data.

A real export that fails as a whole usually fails for one reason on every row (times without a
zone, a date format, event names nobody mapped). "No valid events" alone sent users hunting,
because the table of drops by reason is only printed for data that was prepared; these messages
carry that table, one offending row and the mapping setting that fixes it.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from fedmarket.data.ingest.validate import DropReport

# reason -> (the setting that fixes it in a TOML mapping, the same inline, what it means)
_SETTINGS: Final[dict[str, tuple[str, str, str]]] = {
    "missing_timezone": (
        'assume_tz = "UTC"',
        "assume_tz=UTC",
        "or the export's own IANA zone, e.g. Europe/Berlin",
    ),
    "unparseable_timestamp": (
        'timestamp_format = "%d/%m/%Y %H:%M" and assume_tz = "UTC"',
        "timestamp_format=%d/%m/%Y %H:%M,assume_tz=UTC",
        "strftime codes matching the column: %d/%m/%Y %H:%M reads 01/10/2019 14:30, %Y%m%d "
        'reads 20191001; "epoch_s" or "epoch_ms" read numbers; assume_tz is the zone of times '
        "written without one",
    ),
    "unknown_event_type": (
        '[event_names] with <their name> = "view" | "cart" | "remove_from_cart" | "purchase" '
        '| "ignore"',
        "event.<their name>=purchase",
        "one entry per event name in the export",
    ),
    "ignored_event_type": (
        "[event_names] mapping at least one name to view, cart, remove_from_cart or purchase",
        "event.<their name>=purchase",
        "the mapping ignores every event name found",
    ),
}
_MOST_REASONS: Final[int] = 3  # reasons shown in one message; the manifest has them all


def _fix(reason: str, mapping_given: bool) -> str | None:
    if reason not in _SETTINGS:
        return None
    toml, inline, meaning = _SETTINGS[reason]
    if mapping_given:
        return f"{reason}: add {toml} to the mapping ({meaning})"
    return f'{reason}: describe the export with --mapping "kind=rees46,{inline}" ({meaning})'


def all_dropped(where: str, report: DropReport, *, mapping_given: bool) -> str:
    """The error text when no row of ``where`` survived validation: counts by reason, the
    first offending row of each, and the setting that fixes the commonest reasons."""
    by_count = sorted(report.counts.items(), key=lambda item: -item[1])
    reasons = []
    for reason, count in by_count[:_MOST_REASONS]:
        example = report.examples.get(reason, [])
        reasons.append(f"{reason} {count:,}" + (f" (e.g. {example[0]})" if example else ""))
    more = len(by_count) - _MOST_REASONS
    if more > 0:
        reasons.append(f"{more} more reason(s)")
    text = (
        f"{where}: no valid events: all {report.rows_read:,} of {report.rows_read:,} rows were "
        f"dropped: {'; '.join(reasons)}."
    )
    fixes = [f for f in (_fix(r, mapping_given) for r, _ in by_count[:_MOST_REASONS]) if f]
    if fixes:
        text += " Fix: " + "; ".join(fixes) + "."
    return text


def span_text(first: pd.Timestamp | None, last: pd.Timestamp | None) -> str:
    """The data's first and last valid event, as the user would look them up in the export."""
    if first is None or last is None:
        return "no valid event"
    return f"valid events from {first.isoformat()} to {last.isoformat()}"
