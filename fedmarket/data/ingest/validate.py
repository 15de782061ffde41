"""Check one chunk of retailer events against the event schema and count what is dropped.

Every later stage (anonymisation, features, training) trusts its input, so this is the one
place where a retailer's export is judged, and a retailer must be able to see exactly what was
thrown away and why:

* Missing required columns (``schema.REQUIRED_EVENT_COLUMNS``) make the whole file unusable:
  always a ``DataError`` naming the file, the missing columns and the columns found.
* A bad row is dropped and counted under exactly one reason, the first that applies in
  ``DROP_REASONS`` order; ``strict=True`` raises instead, naming the file, the data row (1-based,
  the header line is not counted, rows counted across chunks via ``row_offset``), the column and
  the value. ``ignored_event_type`` rows (the mapping asked to skip them) are counted, never an
  error.
* Missing optional columns are filled: product_id/category_id 0 ("unknown"), category_code,
  brand and user_session null. Empty product_id/category_id cells are 0 as well.
* Extra columns are ignored and listed once per file in ``DropReport.extra_columns``.

Timestamps (``event_time``): the REES46 text "2019-10-01 00:00:04 UTC", ISO 8601 with ``Z`` or
an offset (converted to UTC, so rows with different offsets are all fine), or a strftime
``timestamp_format`` / ``"epoch_s"`` / ``"epoch_ms"`` set in the mapping. Epoch numbers are
accepted only when the mapping says so, because seconds and milliseconds cannot be told apart
reliably. A time without a zone is ambiguous: ``missing_timezone`` unless ``assume_tz`` is given;
local times that do not exist or repeat at a DST change are ``ambiguous_local_time``.

Parsing uses pyarrow compute kernels: on this 2-core machine they parse the REES46 text about
twenty times faster than ``pd.to_datetime``; pandas handles the rarer ISO 8601 and custom formats.
For a few rows of plain Python values (the scoring service's requests) those kernels are fixed
cost: ``validate_small.validate_columns`` applies these rules in a loop, with this module's
reasons, messages and report (``record_drops``), and hands anything it cannot judge exactly here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedmarket.data.ingest.dedup import DuplicateFilter, row_hashes
from fedmarket.data.ingest.schema import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    REQUIRED_EVENT_COLUMNS,
    RETAILER_COLUMN,
)
from fedmarket.data.ingest.timestamps import TIME_REASONS, parse_event_time
from fedmarket.errors import ConfigError, DataError

# Stable reason keys, in precedence order (a row with several problems counts under the first).
DROP_REASONS: Final[dict[str, str]] = {
    "ignored_event_type": "event name the mapping lists as ignored (never an error, even strict)",
    "bad_quantity": "quantity missing, not a number or not positive (returns are not purchases)",
    "missing_user_id": "user_id is empty",
    "missing_timestamp": "event_time is empty",
    "unparseable_timestamp": "event_time is not a date-time in a supported format, or out of range",
    "missing_timezone": "event_time has no time zone and the mapping sets no assume_tz",
    "ambiguous_local_time": "local event_time does not exist or repeats in assume_tz (DST change)",
    "missing_event_type": "event_type is empty",
    "unknown_event_type": f"event_type is not one of {', '.join(EVENT_TYPES)} nor mapped to one",
    "nan_price": "price is empty, NaN or infinite",
    "unparseable_price": "price is not a number",
    "negative_price": "price is negative",
    "bad_product_id": "product_id is not an integer",
    "bad_category_id": "category_id is not an integer",
    "missing_retailer_id": "retailer_id is empty",
    "duplicate_row": "exact copy of an earlier row of the same file (compared after parsing)",
    "duplicate_customer": "customer table row repeats an earlier user_id",
}
# apply_mapping() never drops rows; problems it finds travel to validate_events() in these columns.
ISSUE_COLUMN: Final[str] = "_issue"
ISSUE_DETAIL_COLUMN: Final[str] = "_issue_detail"
DROP_CODES: Final[dict[str, int]] = {reason: i + 1 for i, reason in enumerate(DROP_REASONS)}
REASON_COLUMN: Final[dict[str, str]] = {
    "missing_user_id": "user_id",
    "missing_timestamp": "event_time",
    "unparseable_timestamp": "event_time",
    "missing_timezone": "event_time",
    "ambiguous_local_time": "event_time",
    "missing_event_type": "event_type",
    "unknown_event_type": "event_type",
    "nan_price": "price",
    "unparseable_price": "price",
    "negative_price": "price",
    "bad_product_id": "product_id",
    "bad_category_id": "category_id",
    "missing_retailer_id": RETAILER_COLUMN,
}
_TEXT = pa.large_string()
_THREADED_ROWS = 4096  # below this many rows the frame is converted on the calling thread
_TO_PANDAS = {pa.string(): pd.StringDtype("pyarrow"), _TEXT: pd.StringDtype("pyarrow")}


class RowError(DataError):
    """A bad row under ``strict=True``: the message for people, and where the row is for code
    (the scoring service names the event and field of a JSON request from it)."""

    def __init__(self, message: str, *, position: int, reason: str, column: str) -> None:
        super().__init__(message)
        self.position = position  # 0-based row of the frame given to validate_events
        self.reason = reason  # a DROP_REASONS key
        self.column = column  # the column at fault (the reason itself where none is)


@dataclass
class DropReport:
    """What was dropped, by reason, across chunks and files; ``to_dict()`` goes into the manifest.

    For events ``rows_read == rows_kept + total``. Examples are "FILE row N: column='value'" with N
    the 1-based data row (header not counted); at most ``max_examples`` per reason.
    """

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    duplicates_kept: int | None = None  # None: exact copies are dropped; else how many were kept
    # rows whose site event name is one of fedmarket's own but unlisted in the mapping
    own_event_names: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_kept: int = 0
    max_examples: int = 3

    def add(self, reason: str, count: int, example: str | None = None) -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}; known: {', '.join(DROP_REASONS)}")
        if count < 0:
            raise ValueError(f"drop count must be >= 0, got {count}")
        if count:
            self.counts[reason] = self.counts.get(reason, 0) + count
        if example is not None:
            kept = self.examples.setdefault(reason, [])
            if len(kept) < self.max_examples:
                kept.append(example)

    def note_own_names(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self.own_event_names[name] = self.own_event_names.get(name, 0) + count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: DropReport) -> None:
        """Fold another report in (e.g. one per retailer into a run total)."""
        for reason, count in other.counts.items():
            self.add(reason, count)
        for reason, examples in other.examples.items():
            for example in examples:
                self.add(reason, 0, example)
        for source, columns in other.extra_columns.items():
            self.extra_columns.setdefault(source, list(columns))
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        self.note_own_names(other.own_event_names)
        if other.duplicates_kept is not None:
            self.duplicates_kept = (self.duplicates_kept or 0) + other.duplicates_kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_dropped": self.total,
            "dropped": {r: self.counts[r] for r in DROP_REASONS if self.counts.get(r)},
            "examples": {r: list(self.examples[r]) for r in DROP_REASONS if r in self.examples},
            "extra_columns": {k: list(v) for k, v in self.extra_columns.items()},
            # what happened to exact copies: "dropped" (counted under duplicate_row) or "kept"
            "duplicate_rows": "dropped" if self.duplicates_kept is None else "kept",
            **({} if self.duplicates_kept is None else {"duplicates_kept": self.duplicates_kept}),
            # kept, read as fedmarket's own names: event_pass.warn_own_event_names
            **(
                {"unlisted_own_event_names": dict(self.own_event_names)}
                if self.own_event_names
                else {}
            ),
        }


def to_arrow(series: pd.Series) -> pa.Array:
    """One contiguous Arrow array for any pandas column (zero-copy for Arrow-backed ones)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.dtype.categories.dtype)
    try:
        arr = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # an object column mixing numbers and text
        arr = pa.array(series.astype("string"), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def as_text(arr: pa.Array) -> pa.Array:
    """Column as trimmed large_string with empty cells null; integral floats lose their ".0"."""
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), _TEXT)
    if pa.types.is_floating(t):
        values = arr.to_numpy(zero_copy_only=False)
        finite = values[np.isfinite(values)]
        if np.array_equal(finite, np.floor(finite)) and np.all(np.abs(finite) < 2**63):
            arr = pc.cast(arr, pa.int64(), safe=False)
    text = pc.cast(arr, _TEXT)
    if pa.types.is_integer(arr.type):  # digits only: nothing to trim, never empty
        return text
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, _TEXT), text)


def parse_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values, unparseable): NaN where empty, "nan" or not a number; the mask marks the last."""
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return values, np.zeros(len(arr), dtype=bool)
    text = as_text(arr)
    try:
        values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        return values, np.zeros(len(arr), dtype=bool)
    except pa.ArrowInvalid:  # some cell is not a number: find which, slower
        raw = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        nan_text = raw.str.fullmatch(r"[+-]?nan", case=False, na=False).to_numpy(dtype=bool)
        return values, np.isnan(values) & raw.notna().to_numpy() & ~nan_text


def _parse_ids(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids with 0 for empty cells, bad): exact for 19-digit REES46 category ids."""
    n = len(arr)
    if pa.types.is_integer(arr.type):
        try:
            return pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy(), np.zeros(n, dtype=bool)
        except pa.ArrowInvalid:  # uint64 beyond int64: fall through to the text path
            pass
    text = pc.fill_null(as_text(arr), "0")
    try:
        return pc.cast(text, pa.int64()).to_numpy(), np.zeros(n, dtype=bool)
    except pa.ArrowInvalid:
        pass
    ids = np.zeros(n, dtype=np.int64)
    digits = pc.match_substring_regex(text, r"^[+-]?\d+$").to_numpy(zero_copy_only=False)
    try:
        unsigned = pc.replace_substring_regex(text.filter(pa.array(digits)), r"^\+", "")
        ids[digits] = pc.cast(unsigned, pa.int64()).to_numpy()
        return ids, ~digits
    except pa.ArrowInvalid:  # some digits overflow int64: check them one by one
        bad = np.ones(n, dtype=bool)
        for i in np.flatnonzero(digits):
            value = int(text[i].as_py())
            if -(2**63) <= value < 2**63:
                ids[i], bad[i] = value, False
        return ids, bad


def _check_columns(df: pd.DataFrame, source: str, report: DropReport) -> None:
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in df.columns]
    if missing:
        found = [str(c) for c in df.columns]
        hint = ""
        if len(found) == 1 and any(sep in found[0] for sep in ";\t|"):
            hint = " The header looks like one column: set csv_delimiter in the mapping."
        elif len(found) == 1 and " " in found[0].strip():
            hint = (
                " The header looks like one column: for columns separated by spaces set "
                'csv_delimiter = "whitespace" in the mapping.'
            )
        raise DataError(
            f"{source}: missing required column(s) {', '.join(missing)}; found columns "
            f"{', '.join(found) or '(none)'}. Give the REES46 header ({', '.join(EVENT_COLUMNS)}) "
            f"or describe the export with a mapping (--mapping).{hint}"
        )
    known = {*EVENT_COLUMNS, RETAILER_COLUMN, ISSUE_COLUMN, ISSUE_DETAIL_COLUMN}
    extra = [str(c) for c in df.columns if c not in known]
    if extra and source not in report.extra_columns:
        report.extra_columns[source] = extra


def _describe(df: pd.DataFrame, pos: int, reason: str) -> str:
    if reason == "duplicate_row":
        return "repeats an earlier row"
    issue = df[ISSUE_COLUMN].iloc[pos] if ISSUE_COLUMN in df else None
    if issue is not None and not pd.isna(issue) and issue == reason:  # found by the mapping
        detail = df[ISSUE_DETAIL_COLUMN].iloc[pos] if ISSUE_DETAIL_COLUMN in df else None
        return reason if detail is None or pd.isna(detail) else str(detail)
    column = REASON_COLUMN.get(reason, reason)
    return describe_cell(column, df[column].iloc[pos] if column in df else None)


def describe_cell(column: str, value: object) -> str:
    """``column='value'`` as a drop example or a strict error shows the input's cell."""
    return f"{column}={None if value is None or pd.isna(value) else value!r}"


def _flag(codes: np.ndarray, mask: np.ndarray, reason: str) -> None:
    codes[(codes == 0) & mask] = DROP_CODES[reason]


def record_drops(
    codes: np.ndarray,
    describe: Callable[[int, str], str],
    source: str,
    row_offset: int,
    strict: bool,
    report: DropReport,
) -> None:
    """Raise on the first bad row under strict; otherwise count every reason with examples.

    ``codes`` holds ``DROP_CODES`` per row (0: kept); ``describe(row, reason)`` words the cell.
    """
    if strict:
        bad = np.flatnonzero((codes != 0) & (codes != DROP_CODES["ignored_event_type"]))
        if len(bad):
            pos = int(bad[0])
            reason = list(DROP_REASONS)[codes[pos] - 1]
            raise RowError(
                f"{source} data row {row_offset + pos + 1} (1-based, header not counted): "
                f"{reason} ({DROP_REASONS[reason]}): {describe(pos, reason)}. Fix the export, "
                f"or run without --strict to drop and count such rows.",
                position=pos,
                reason=reason,
                column=REASON_COLUMN.get(reason, reason),
            )
    for code in np.unique(codes[codes != 0]):
        reason = list(DROP_REASONS)[code - 1]
        positions = np.flatnonzero(codes == code)
        report.add(reason, len(positions))
        for pos in positions[: report.max_examples]:
            desc = describe(int(pos), reason)
            report.add(reason, 0, f"{source} row {row_offset + int(pos) + 1}: {desc}")


def _retailer_ids(
    df: pd.DataFrame, retailer_id: str | None, source: str, codes: np.ndarray
) -> pa.Array | None:
    """Column values (None when ``retailer_id`` overrides); a disagreeing column is an error."""
    if retailer_id is not None:
        if not isinstance(retailer_id, str) or not retailer_id.strip():
            raise ConfigError(
                f"{source}: retailer_id must be a non-empty string, got {retailer_id!r}"
            )
        if RETAILER_COLUMN in df:
            named = pc.unique(as_text(to_arrow(df[RETAILER_COLUMN])).drop_null()).to_pylist()
            if any(value != retailer_id for value in named):
                raise DataError(
                    f"{source}: column {RETAILER_COLUMN} says {', '.join(named[:5])} but the "
                    f"retailer was given as {retailer_id!r}; drop the column or the argument"
                )
        return None
    if RETAILER_COLUMN not in df:
        raise DataError(f"{source}: no {RETAILER_COLUMN} column and no retailer id given")
    values = as_text(to_arrow(df[RETAILER_COLUMN]))
    _flag(codes, pc.is_null(values).to_numpy(zero_copy_only=False), "missing_retailer_id")
    return values


def validate_events(
    df: pd.DataFrame,
    *,
    source: str,
    row_offset: int,
    strict: bool,
    report: DropReport,
    retailer_id: str | None,
    assume_tz: str | None = None,
    timestamp_format: str | None = None,
    duplicates: DuplicateFilter | None = None,
) -> pd.DataFrame:
    """Clean frame with exactly ``EVENT_COLUMNS`` (declared dtypes) plus ``retailer_id``.

    ``row_offset`` is the number of data rows of ``source`` before ``df``. ``duplicates`` carries
    the hashes of earlier chunks of the same file; without it only in-chunk copies are found.
    """
    _check_columns(df, source, report)
    n = len(df)
    codes = np.zeros(n, dtype=np.int8)
    if ISSUE_COLUMN in df:
        issues = as_text(to_arrow(df[ISSUE_COLUMN]))
        for reason in pc.unique(issues.drop_null()).to_pylist():
            if reason not in DROP_REASONS:
                raise ValueError(f"unknown issue {reason!r} in {ISSUE_COLUMN}")
            _flag(
                codes,
                pc.equal(issues, reason).fill_null(False).to_numpy(zero_copy_only=False),
                reason,
            )
    user = as_text(to_arrow(df["user_id"]))
    _flag(codes, pc.is_null(user).to_numpy(zero_copy_only=False), "missing_user_id")
    times, time_problems = parse_event_time(
        to_arrow(df["event_time"]),
        timestamp_format=timestamp_format,
        assume_tz=assume_tz,
        source=source,
    )
    for code, reason in enumerate(TIME_REASONS, start=1):
        _flag(codes, time_problems == code, reason)
    event = as_text(to_arrow(df["event_type"]))
    _flag(codes, pc.is_null(event).to_numpy(zero_copy_only=False), "missing_event_type")
    known = pc.is_in(event, value_set=pa.array(EVENT_TYPES, _TEXT)).to_numpy(zero_copy_only=False)
    _flag(codes, ~known, "unknown_event_type")
    price, unparseable = parse_float(to_arrow(df["price"]))
    _flag(codes, ~np.isfinite(price) & ~unparseable, "nan_price")
    _flag(codes, unparseable, "unparseable_price")
    _flag(codes, price < 0, "negative_price")
    ids = {}
    for column in ("product_id", "category_id"):
        if column in df:
            ids[column], bad = _parse_ids(to_arrow(df[column]))
            _flag(codes, bad, f"bad_{column}")
        else:
            ids[column] = np.zeros(n, dtype=np.int64)
    retailer = _retailer_ids(df, retailer_id, source, codes)
    record_drops(codes, partial(_describe, df), source, row_offset, strict, report)

    keep = codes == 0
    mask = pa.array(keep)
    optional = {
        c: as_text(to_arrow(df[c])).filter(mask) if c in df else pa.nulls(int(keep.sum()), _TEXT)
        for c in ("category_code", "brand", "user_session")
    }
    out = {
        "event_time": pa.array(times[keep], pa.timestamp("ns", tz="UTC")),
        "event_type": event.filter(mask),
        "product_id": pa.array(ids["product_id"][keep]),
        "category_id": pa.array(ids["category_id"][keep]),
        "category_code": optional["category_code"],
        "brand": optional["brand"],
        "price": pa.array(price[keep]),
        "user_id": user.filter(mask),
        "user_session": optional["user_session"],
        RETAILER_COLUMN: retailer.filter(mask)
        if retailer is not None
        else pa.repeat(pa.scalar(retailer_id, _TEXT), int(keep.sum())),
    }
    if duplicates is None:
        duplicates = DuplicateFilter()
    repeat = duplicates.mark(row_hashes(out))
    if duplicates.keep_repeats:
        report.duplicates_kept = (report.duplicates_kept or 0) + int(repeat.sum())
        repeat[:] = False
    if repeat.any():
        dup_codes = np.zeros(n, dtype=np.int8)
        dup_codes[np.flatnonzero(keep)[repeat]] = DROP_CODES["duplicate_row"]
        record_drops(dup_codes, partial(_describe, df), source, row_offset, strict, report)
        unique = pa.array(~repeat)
        out = {name: arr.filter(unique) for name, arr in out.items()}
    report.rows_read += n
    report.rows_kept += int(keep.sum() - repeat.sum())
    return to_frame(out)


def to_frame(columns: dict[str, pa.Array]) -> pd.DataFrame:
    """The validator's output frame from its Arrow columns (pyarrow-backed strings)."""
    # Arrow's thread pool costs more than it saves on the scoring service's few rows
    threads = len(next(iter(columns.values()))) > _THREADED_ROWS
    return pa.table(columns).to_pandas(types_mapper=_TO_PANDAS.get, use_threads=threads)
