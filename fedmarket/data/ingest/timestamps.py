"""Turn a retailer's event_time column into UTC nanoseconds, saying per row what was wrong.

Accepted, in the order tried:

* the REES46 text "2019-10-01 00:00:04 UTC" (pyarrow ``strptime``, the fast path: the public
  export has tens of millions of rows per month), checked strictly because ``strptime`` would
  quietly turn 2019-02-30 into 2019-03-02;
* ISO 8601 with ``Z``, ``UTC`` or a numeric offset ("2019-10-01T02:00:04+02:00"), converted to
  UTC, so rows with different offsets in one file are all correct;
* ISO 8601 without a zone: ambiguous, so ``missing_timezone`` unless ``assume_tz`` names an IANA
  zone; local times skipped or repeated by a DST change are ``ambiguous_local_time`` (we do not
  guess which of the two instants was meant);
* with ``timestamp_format``: a strftime pattern (with ``%z`` the text carries its offset,
  without it ``assume_tz`` applies), or ``"epoch_s"`` / ``"epoch_ms"`` for numbers. Numbers
  are only read as epochs when asked: seconds and milliseconds cannot be told apart safely.

Typed Parquet columns are used as they are: tz-aware timestamps are instants, naive ones follow
the ``assume_tz`` rule above. Times outside pandas' nanosecond range (1677-2262) are unparseable.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedmarket.errors import DataError

# Per-row problem codes returned by parse_event_time: 0 = fine, i + 1 = TIME_REASONS[i].
TIME_REASONS: Final[tuple[str, ...]] = (
    "missing_timestamp",
    "unparseable_timestamp",
    "missing_timezone",
    "ambiguous_local_time",
)
EPOCH_FORMATS: Final[dict[str, int]] = {"epoch_s": 10**9, "epoch_ms": 10**6}
REES46_FORMAT: Final[str] = "%Y-%m-%d %H:%M:%S UTC"
_REES46_STRICT = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d UTC$"
)
_HAS_ZONE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
_NAT = np.iinfo(np.int64).min
_MISSING, _UNPARSEABLE, _NO_ZONE, _AMBIGUOUS = 1, 2, 3, 4
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def parse_event_time(
    arr: pa.Array, *, timestamp_format: str | None, assume_tz: str | None, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """(int64 UTC nanoseconds, int8 problem code per row; see ``TIME_REASONS``)."""
    n = len(arr)
    kind = arr.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return _from_typed(arr, assume_tz)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if timestamp_format not in EPOCH_FORMATS:
            raise DataError(
                f"{source}: column event_time holds numbers ({kind}); if they are epoch seconds or "
                f'milliseconds set timestamp_format = "epoch_s" or "epoch_ms" in the mapping'
            )
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        ns, codes = _from_epoch(values, EPOCH_FORMATS[timestamp_format])
        codes[pc.is_null(arr).to_numpy(zero_copy_only=False)] = _MISSING
        return ns, codes
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.large_string()))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.large_string()), text)
    ns, codes = np.full(n, _NAT, dtype=np.int64), np.zeros(n, dtype=np.int8)
    missing = pc.is_null(text).to_numpy(zero_copy_only=False)
    codes[missing] = _MISSING
    if timestamp_format in EPOCH_FORMATS:
        raw = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
        ns, epoch_codes = _from_epoch(
            pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float),
            EPOCH_FORMATS[timestamp_format],
        )
        codes[~missing] = epoch_codes[~missing]
        return ns, codes
    rest = ~missing
    if timestamp_format is None:
        fast_ns, fast_ok = _rees46(text)
        ns[fast_ok] = fast_ns[fast_ok]
        rest &= ~fast_ok
    if rest.any():
        strings = text.filter(pa.array(rest)).to_numpy(zero_copy_only=False)
        ns[rest], codes[rest] = _with_pandas(strings, timestamp_format, assume_tz)
    return ns, codes


def _rees46(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    seconds = pc.strptime(text, format=REES46_FORMAT, unit="s", error_is_null=True)
    ok = pc.match_substring_regex(text, _REES46_STRICT)
    written_day = pc.cast(
        pc.utf8_slice_codeunits(pc.if_else(ok, text, "0000-00-00"), 8, 10), pa.int64()
    )
    ok = pc.and_(ok, pc.equal(pc.day(seconds), written_day)).fill_null(False)
    values = pc.fill_null(pc.cast(seconds, pa.int64()), 0).to_numpy(zero_copy_only=False)
    ns, in_range = _scale(values, _UNIT_NS["s"])
    return ns, ok.to_numpy(zero_copy_only=False) & in_range


def _scale(values: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer epoch values times ``factor``, with a mask of those that fit in int64 ns."""
    limit = np.iinfo(np.int64).max // factor
    in_range = np.abs(values) < limit
    return np.where(in_range, values, 0) * factor, in_range


def _from_epoch(values: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    codes = np.zeros(len(values), dtype=np.int8)
    codes[np.isnan(values)] = _UNPARSEABLE
    finite = np.isfinite(values)
    integral = finite & (values == np.floor(np.where(finite, values, 0))) & (np.abs(values) < 2**53)
    ns = np.full(len(values), _NAT, dtype=np.int64)
    # integral epochs are scaled exactly in int64; fractional ones through float (sub-us error)
    exact, fits = _scale(np.where(integral, values, 0).astype(np.int64), factor)
    ns[integral & fits] = exact[integral & fits]
    fractional = finite & ~integral & (np.abs(values) * factor < 2**63 - 1024)
    ns[fractional] = np.round(values[fractional] * factor).astype(np.int64)
    codes[(codes == 0) & (ns == _NAT)] = _UNPARSEABLE
    return ns, codes


def _from_typed(arr: pa.Array, assume_tz: str | None) -> tuple[np.ndarray, np.ndarray]:
    if pa.types.is_date(arr.type):
        arr = pc.cast(arr, pa.timestamp("s"))
    unit, zone = arr.type.unit, arr.type.tz
    values = pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy(zero_copy_only=False)
    ns, in_range = _scale(values, _UNIT_NS[unit])
    codes = np.where(in_range, 0, _UNPARSEABLE).astype(np.int8)
    missing = pc.is_null(arr).to_numpy(zero_copy_only=False)
    codes[missing] = _MISSING
    ns[codes != 0] = _NAT
    if zone is None:  # wall-clock times: same rule as naive text
        naive = pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")))
        local_ns, local_codes = _localise(naive, assume_tz)
        ns = np.where(codes == 0, local_ns, _NAT)
        codes = np.where(codes == 0, local_codes, codes).astype(np.int8)
    return ns, codes


def _with_pandas(
    strings: np.ndarray, timestamp_format: str | None, assume_tz: str | None
) -> tuple[np.ndarray, np.ndarray]:
    text = pd.Series(strings, dtype=object)
    if timestamp_format is None:
        text = text.str.replace(r"\s*UTC$", "+00:00", regex=True)
        aware = text.str.contains(_HAS_ZONE, regex=True, na=False).to_numpy(dtype=bool)
        fmt = "ISO8601"
    else:
        aware = np.full(len(text), "%z" in timestamp_format or "%Z" in timestamp_format)
        fmt = timestamp_format
    ns, codes = np.full(len(text), _NAT, dtype=np.int64), np.zeros(len(text), dtype=np.int8)
    if aware.any():
        parsed = pd.to_datetime(text[aware], format=fmt, utc=True, errors="coerce")
        ns[aware] = _to_ns(parsed)
    if (~aware).any():
        parsed = pd.to_datetime(text[~aware], format=fmt, errors="coerce")
        ns[~aware], codes[~aware] = _localise(parsed, assume_tz)
    codes[(codes == 0) & (ns == _NAT)] = _UNPARSEABLE
    return ns, codes


def _localise(naive: pd.Series, assume_tz: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Naive wall-clock times -> UTC ns under ``assume_tz``; codes for the ones that cannot be."""
    parsed = _to_ns(naive)
    codes = np.where(parsed == _NAT, _UNPARSEABLE, 0).astype(np.int8)
    if assume_tz is None:
        codes[codes == 0] = _NO_ZONE
        return np.full(len(naive), _NAT, dtype=np.int64), codes
    stamps = pd.DatetimeIndex(parsed.view("datetime64[ns]"))
    local = stamps.tz_localize(assume_tz, ambiguous="NaT", nonexistent="NaT")
    ns = _to_ns(pd.Series(local))
    codes[(codes == 0) & (ns == _NAT)] = _AMBIGUOUS
    return ns, codes


def _to_ns(stamps: pd.Series) -> np.ndarray:
    """Any-resolution datetimes (naive or aware) -> int64 ns (UTC when aware), NaT outside range."""
    index = pd.DatetimeIndex(stamps)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    index = index.where((index >= pd.Timestamp.min) & (index <= pd.Timestamp.max))
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
