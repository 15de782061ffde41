"""The few-rows validator agrees with ``validate_events`` on every input it accepts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.ingest import validate_small
from fedmarket.data.ingest.validate import DropReport, RowError, validate_events
from fedmarket.data.ingest.validate_small import _Decline, _validate_small, validate_columns

KW: dict[str, Any] = {"source": "request", "row_offset": 7, "retailer_id": "shop"}


def _time(rng: np.random.Generator) -> str:
    ns = int(rng.integers(-(10**18), 2 * 10**18))
    t = pd.Timestamp(ns, unit="ns", tz="UTC")
    form = rng.integers(6)
    if form == 0:
        return f"{t:%Y-%m-%d %H:%M:%S} UTC"
    if form == 1:
        return t.floor("s").isoformat()  # +00:00
    if form == 2:
        return f"{t:%Y-%m-%dT%H:%M:%S}.{t.nanosecond + 1000 * t.microsecond:09d}Z"
    if form == 3:
        offset = pd.Timedelta(minutes=int(rng.choice([-720, -330, -60, 0, 45, 120, 840])))
        return t.tz_convert(pd.Timestamp(0, tz="UTC").tz_convert(_zone(offset)).tz).isoformat()
    if form == 4:
        return f"  {t:%Y-%m-%d %H:%M:%S.%f}Z\t"
    return f"{t:%Y-%m-%d %H:%M:%S}" + str(rng.choice(["+00:00", "-00:00", "Z", "+05:30"]))


def _zone(offset: pd.Timedelta) -> Any:
    from datetime import timedelta, timezone

    return timezone(timedelta(seconds=offset.total_seconds()))


def _event(rng: np.random.Generator, bad: str | None) -> dict[str, Any]:
    e: dict[str, Any] = {
        "event_time": _time(rng),
        "event_type": str(rng.choice(["view", "cart", "remove_from_cart", "purchase"])),
        "price": float(np.round(rng.uniform(0, 500), int(rng.integers(0, 4)))),
        "product_id": int(rng.integers(1, 10**6)) if rng.random() < 0.9 else None,
        "category_id": int(rng.integers(0, 2**63 - 1)) if rng.random() < 0.9 else None,
        "category_code": str(rng.choice(["a.b", " x.y ", "", "  "]))
        if rng.random() < 0.5
        else None,
        "brand": str(rng.choice(["acme", "Ωmega", "ß", "b r"])) if rng.random() < 0.5 else None,
        "user_session": f"s{rng.integers(3)}" if rng.random() < 0.8 else None,
        "user_id": str(rng.choice(["1", "2", " 3 "])),
    }
    if rng.random() < 0.2:
        e["price"] = int(rng.integers(0, 100))
    choices = {
        "user": {"user_id": str(rng.choice(["", " ", None]))},
        "no_user": {"user_id": None},
        "no_time": {"event_time": str(rng.choice(["", "   "]))},
        "none_time": {"event_time": None},
        "bad_time": {"event_time": str(rng.choice(["yesterday", "2019-02-30 00:00:00 UTC"]))},
        "naive_time": {"event_time": "2020-01-01 10:00:00"},
        "type": {"event_type": str(rng.choice(["click", "View", " purchase ", ""]))},
        "no_type": {"event_type": None},
        "nan": {"price": float(rng.choice([math.nan, math.inf, -math.inf]))},
        "no_price": {"price": None},
        "negative": {"price": float(rng.choice([-3.0, -0.0, -1e-9]))},
        "text_price": {"price": "12"},
        "bool_price": {"price": True},
        "text_id": {"product_id": "12"},
        "space_edge": {"brand": "\u00a0acme"},
    }
    if bad is not None:
        e.update(choices[bad])
    return e


def _columns(events: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> dict[str, list]:
    names = [n for n in events[0] if n not in drop]
    return {n: [e[n] for e in events] for n in names}


def _general(columns: dict[str, list], strict: bool) -> tuple[Any, DropReport]:
    report = DropReport()
    frame = pd.DataFrame(columns, dtype=object)
    try:
        return validate_events(frame, strict=strict, report=report, **KW), report
    except RowError as exc:
        return (str(exc), exc.position, exc.reason, exc.column), report


def _small(columns: dict[str, list], strict: bool) -> tuple[Any, DropReport]:
    report = DropReport()
    try:
        return _validate_small(columns, strict=strict, report=report, **KW), report
    except RowError as exc:
        return (str(exc), exc.position, exc.reason, exc.column), report


BAD = [
    None,
    "user",
    "no_user",
    "no_time",
    "none_time",
    "bad_time",
    "naive_time",
    "type",
    "no_type",
    "nan",
    "no_price",
    "negative",
    "text_price",
    "bool_price",
    "text_id",
    "space_edge",
]


@pytest.mark.parametrize("bad", BAD)
def test_same_rows_and_errors_as_the_general_validator(bad: str | None) -> None:
    rng = np.random.default_rng(BAD.index(bad))
    judged = 0
    for trial in range(12):
        n = int(rng.integers(1, 60))
        events = [_event(rng, bad if rng.random() < 0.3 else None) for _ in range(n)]
        if rng.random() < 0.3:  # exact copies, and -0.0 beside 0.0 (copies too)
            events += [dict(events[int(rng.integers(n))]) for _ in range(3)]
            events.append({**events[0], "price": -0.0})
            events.append({**events[0], "price": 0.0})
        drop = ("category_code", "brand") if trial % 4 == 3 else ()
        columns = _columns(events, drop)
        for strict in (False, True):
            try:
                fast, fast_report = _small(columns, strict)
            except _Decline:
                continue
            judged += 1
            slow, slow_report = _general(columns, strict)
            if isinstance(slow, pd.DataFrame):
                assert isinstance(fast, pd.DataFrame), fast
                pd.testing.assert_frame_equal(fast, slow)
                assert [str(t) for t in fast.dtypes] == [str(t) for t in slow.dtypes]
            else:
                assert fast == slow
            assert fast_report.to_dict() == slow_report.to_dict()
    declining = {"bad_time", "naive_time", "text_price", "bool_price", "text_id", "space_edge"}
    if bad not in declining:
        assert judged >= 6  # the fast path judged most lists itself


def test_one_strict_error_word_for_word() -> None:
    rng = np.random.default_rng(5)
    events = [_event(rng, None) for _ in range(5)]
    events[3]["event_type"] = "refund"
    with pytest.raises(RowError) as fast:
        _validate_small(_columns(events), strict=True, report=DropReport(), **KW)
    assert fast.value.position == 3 and fast.value.column == "event_type"
    assert str(fast.value) == (
        "request data row 11 (1-based, header not counted): unknown_event_type (event_type is "
        "not one of view, cart, remove_from_cart, purchase nor mapped to one): "
        "event_type='refund'. Fix the export, or run without --strict to drop and count such rows."
    )


def test_declined_inputs_and_large_ones_go_to_the_general_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(1)
    events = [_event(rng, None) for _ in range(4)]
    events[2]["event_time"] = "2020-01-01 10:00:00"  # no zone: the general path words it
    with pytest.raises(RowError, match="missing_timezone"):
        validate_columns(_columns(events), strict=True, report=DropReport(), **KW)
    monkeypatch.setattr(validate_small, "SMALL_ROWS", 3)
    events[2] = _event(rng, None)
    report = DropReport()
    out = validate_columns(_columns(events), strict=False, report=report, **KW)
    assert len(out) == 4 and report.rows_kept == 4


@pytest.mark.parametrize(
    "time",
    [
        "2020-03-01T00:00:00+18:59",
        "2020-03-01T00:00:00-18:59",
        "2020-03-01 00:00:00+00:59",
        "2020-03-01T00:00:00.5-07:30",
        "1678-01-01T00:00:00+18:00",  # 1677-12-31 in UTC, still within nanosecond range
        "2261-12-31T23:59:59.999999999-18:00",
        "2020-02-29 23:59:59 UTC",
        "2019-02-29 23:59:59 UTC",  # no such day: declined, the general path refuses it
        "2020-03-01 00:00:00z",  # lower-case z: declined, the general path refuses it
        "2020-03-01T00:00:00 UTC",  # declined: pandas reads it
    ],
)
def test_edge_times_as_the_general_validator(time: str) -> None:
    columns = {"event_time": [time], "event_type": ["view"], "price": [1.0], "user_id": ["1"]}
    slow, slow_report = _general(columns, strict=False)
    fast_report = DropReport()
    fast = validate_columns(columns, strict=False, report=fast_report, **KW)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast_report.to_dict() == slow_report.to_dict()
