"""``validate_events`` for a few rows of plain Python values, without pandas or pyarrow compute.

The scoring service validates one customer's ~30 events per request. Through the general
validator that is ~15 Arrow kernels and a pandas frame built and read back: ~4 ms of fixed
cost for microseconds of rows. Here the same rules run as a loop over Python values, for the
inputs whose outcome is certain without the general machinery: text cells that are ``str`` or
None, numbers that are ``int``/``float``, times in the REES46 text or a strict ISO 8601 form
with a zone, no mapping, no retailer column. Anything else (a time pandas would have to parse,
a number as text, a time without a zone, an odd character at a cell's edge) makes the fast path
decline, and ``validate_columns`` hands the rows to ``validate_events`` unchanged: the general
validator stays the one definition of the rules, and this module must agree with it on every
input it accepts (tested on seeded random event lists, valid and bad).

The reasons, their order, the messages and the drop report come from ``validate`` itself
(``DROP_REASONS``, ``record_drops``, ``describe_cell``, ``to_frame``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from fedmarket.data.ingest.schema import EVENT_COLUMNS, EVENT_TYPES, RETAILER_COLUMN
from fedmarket.data.ingest.validate import (
    DROP_CODES,
    REASON_COLUMN,
    DropReport,
    describe_cell,
    record_drops,
    to_frame,
    validate_events,
)

SMALL_ROWS: Final[int] = 4096  # above this the general validator's kernels cost less
_TEXT = pa.large_string()
_EDGE_SPACE = " \t\n\v\f\r"  # what Arrow's utf8_trim_whitespace trims among ASCII characters
# REES46 or ISO 8601 with a zone; fields in range (a day past the month's end: numpy refuses)
_TIME = re.compile(
    r"(\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01]))([T ])"
    r"((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?)(Z| UTC|[+-](?:0\d|1[0-8]):[0-5]\d)",
    re.ASCII,
)
_MISSING = object()
_KNOWN = frozenset(EVENT_TYPES)
_INT64 = (-(2**63), 2**63 - 1)


class _Decline(Exception):
    """An input this path does not judge; the general validator will."""


def validate_columns(
    columns: Mapping[str, Sequence[object]],
    *,
    source: str,
    row_offset: int,
    strict: bool,
    report: DropReport,
    retailer_id: str,
) -> pd.DataFrame:
    """``validate_events`` of ``pd.DataFrame(columns, dtype=object)``, the same rows and errors;
    without pandas for up to ``SMALL_ROWS`` rows of the plain values a JSON request holds."""
    kw = {"source": source, "row_offset": row_offset, "strict": strict, "report": report}
    try:
        return _validate_small(columns, retailer_id=retailer_id, **kw)
    except _Decline:
        frame = pd.DataFrame(dict(columns), dtype=object)
        return validate_events(frame, retailer_id=retailer_id, **kw)


def _validate_small(
    columns: Mapping[str, Sequence[object]],
    *,
    source: str,
    row_offset: int,
    strict: bool,
    report: DropReport,
    retailer_id: str,
) -> pd.DataFrame:
    names = set(columns)
    if not names <= set(EVENT_COLUMNS) or not {"event_time", "event_type", "price", "user_id"} <= (
        names
    ):
        raise _Decline  # missing or extra columns: the general path words them
    if not isinstance(retailer_id, str) or not retailer_id.strip():
        raise _Decline
    n = len(columns["event_time"])
    if n > SMALL_ROWS or any(len(v) != n for v in columns.values()):
        raise _Decline
    users = _texts(columns["user_id"])
    events = _texts(columns["event_type"])
    times = _times(columns["event_time"])
    prices = [_price(v) for v in columns["price"]]
    ids = {
        c: [_id(v) for v in columns[c]] if c in columns else [0] * n
        for c in ("product_id", "category_id")
    }
    optional = {
        c: _texts(columns[c]) if c in columns else [None] * n
        for c in ("category_code", "brand", "user_session")
    }
    codes = np.zeros(n, dtype=np.int8)
    for i in range(n):  # the general path's precedence: the first reason of DROP_REASONS
        if users[i] is None:
            codes[i] = DROP_CODES["missing_user_id"]
        elif times[i] is None:
            codes[i] = DROP_CODES["missing_timestamp"]
        elif events[i] is None:
            codes[i] = DROP_CODES["missing_event_type"]
        elif events[i] not in _KNOWN:
            codes[i] = DROP_CODES["unknown_event_type"]
        elif not math.isfinite(prices[i]):
            codes[i] = DROP_CODES["nan_price"]
        elif prices[i] < 0:
            codes[i] = DROP_CODES["negative_price"]

    def describe(pos: int, reason: str) -> str:
        if reason == "duplicate_row":
            return "repeats an earlier row"
        column = REASON_COLUMN[reason]
        return describe_cell(column, columns[column][pos] if column in columns else None)

    record_drops(codes, describe, source, row_offset, strict, report)
    kept, seen, repeats = [], set(), np.zeros(n, dtype=np.int8)
    for i in np.flatnonzero(codes == 0).tolist():
        # the general path's columns, compared by value (its hash takes -0.0 for 0.0 too)
        row = (times[i], events[i], ids["product_id"][i], ids["category_id"][i], prices[i])
        row += (users[i],)
        row += tuple(optional[c][i] for c in ("category_code", "brand", "user_session"))
        if row in seen:
            repeats[i] = DROP_CODES["duplicate_row"]
        else:
            seen.add(row)
            kept.append(i)
    if repeats.any():
        record_drops(repeats, describe, source, row_offset, strict, report)
    report.rows_read += n
    report.rows_kept += len(kept)
    out = {
        "event_time": pa.array([times[i] for i in kept], pa.timestamp("ns", tz="UTC")),
        "event_type": pa.array([events[i] for i in kept], _TEXT),
        "product_id": pa.array([ids["product_id"][i] for i in kept], pa.int64()),
        "category_id": pa.array([ids["category_id"][i] for i in kept], pa.int64()),
        "category_code": pa.array([optional["category_code"][i] for i in kept], _TEXT),
        "brand": pa.array([optional["brand"][i] for i in kept], _TEXT),
        "price": pa.array([prices[i] for i in kept], pa.float64()),
        "user_id": pa.array([users[i] for i in kept], _TEXT),
        "user_session": pa.array([optional["user_session"][i] for i in kept], _TEXT),
        RETAILER_COLUMN: pa.repeat(pa.scalar(retailer_id, _TEXT), len(kept)),
    }
    return to_frame(out)


def _text(value: object) -> str | None:
    """``as_text`` of one cell: trimmed, empty is None."""
    if value is None:
        return None
    if type(value) is not str:
        raise _Decline  # numbers as ids or names: the general path's casts
    text = value.strip(_EDGE_SPACE)
    if not text:
        return None
    if not (" " < text[0] < "\x7f" and " " < text[-1] < "\x7f"):
        raise _Decline  # a non-ASCII or control edge: Arrow's own idea of white space
    return text


def _texts(values: Sequence[object]) -> list[str | None]:
    """``_text`` of a column; its repeated values (types, brands, sessions) judged once."""
    seen: dict[object, str | None] = {}
    out = []
    for value in values:
        text = seen.get(value, _MISSING) if type(value) is str else _MISSING
        if text is _MISSING:
            text = seen[value] = _text(value)
        out.append(text)
    return out


def _times(values: Sequence[object]) -> list[int | None]:
    """UTC nanoseconds of the REES46 text or ISO 8601 with a zone; None where empty."""
    texts = _texts(values)
    stamps, offsets, where = [], [], []
    for i, text in enumerate(texts):
        if text is None:
            continue
        found = _TIME.fullmatch(text)
        if found is None:
            raise _Decline  # no zone, another format or not a time: pandas decides
        day, sep, clock, zone = found.groups()
        if (zone == " UTC" and (sep == "T" or "." in clock)) or not "1678" <= day[:4] <= "2261":
            raise _Decline
        stamps.append(f"{day}T{clock}")
        offsets.append(
            0 if zone in ("Z", " UTC") else (int(zone[:3]) * 60 + int(zone[0] + zone[4:])) * 60
        )
        where.append(i)
    try:
        ns = np.array(stamps, dtype="datetime64[ns]").view(np.int64)
    except ValueError:  # a day the month does not have
        raise _Decline from None
    ns = ns - np.array(offsets, dtype=np.int64) * 10**9
    out: list[int | None] = [None] * len(texts)
    for i, value in zip(where, ns.tolist(), strict=True):
        out[i] = value
    return out


def _price(value: object) -> float:
    """The price as a float; NaN where missing (``nan_price``)."""
    if value is None:
        return math.nan
    if type(value) is float:
        return value
    if type(value) is int and abs(value) <= 2**53:
        return float(value)
    raise _Decline  # text, booleans, huge integers


def _id(value: object) -> int:
    if value is None:
        return 0
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:
        return value
    raise _Decline
