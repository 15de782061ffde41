"""The message for an export that lost every row (fedmarket/data/ingest/advice.py)."""

from __future__ import annotations

import pandas as pd

from fedmarket.data.ingest.advice import all_dropped, span_text
from fedmarket.data.ingest.validate import DropReport


def report(counts: dict[str, int]) -> DropReport:
    drops = DropReport()
    for n, (reason, count) in enumerate(counts.items(), start=1):
        drops.add(reason, count, f"x.csv row {n}: example of {reason}")
    drops.rows_read = sum(counts.values())
    return drops


def test_the_commonest_three_reasons_come_first_and_the_rest_are_counted() -> None:
    counts = {"nan_price": 2, "missing_timezone": 50, "unknown_event_type": 7, "missing_user_id": 1}
    text = all_dropped("raw", report(counts), mapping_given=True)
    assert text.startswith(
        "raw: no valid events: all 60 of 60 rows were dropped: missing_timezone 50 (e.g. x.csv "
        "row 2: example of missing_timezone); unknown_event_type 7 (e.g. x.csv row 3: example of "
        "unknown_event_type); nan_price 2 (e.g. x.csv row 1: example of nan_price); 1 more "
        "reason(s). Fix: missing_timezone: add assume_tz"
    )
    assert "; unknown_event_type: add [event_names]" in text


def test_a_reason_without_a_setting_has_no_fix() -> None:
    text = all_dropped("raw", report({"negative_price": 3}), mapping_given=False)
    assert text.endswith("negative_price 3 (e.g. x.csv row 1: example of negative_price).")


def test_span_text() -> None:
    first, last = pd.Timestamp("2019-10-01", tz="UTC"), pd.Timestamp("2019-10-30 09:00", tz="UTC")
    assert span_text(first, last) == (
        "valid events from 2019-10-01T00:00:00+00:00 to 2019-10-30T09:00:00+00:00"
    )
    assert span_text(None, None) == "no valid event"
