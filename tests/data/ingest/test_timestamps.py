"""parse_event_time: every accepted form to exact UTC instants, and the right problem per row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fedmarket.data.ingest.timestamps import TIME_REASONS, parse_event_time
from fedmarket.errors import DataError

OK = 0
MISSING, UNPARSEABLE, NO_ZONE, AMBIGUOUS = 1, 2, 3, 4  # 1 + index in TIME_REASONS


def ns(text: str) -> int:
    return pd.Timestamp(text).value  # the reference: pandas' own nanoseconds since the epoch


def parse(values, fmt: str | None = None, tz: str | None = None) -> tuple[list[int], list[int]]:
    arr = values if isinstance(values, pa.Array) else pa.array(values)
    out, codes = parse_event_time(arr, timestamp_format=fmt, assume_tz=tz, source="f.csv")
    return [int(v) if c == OK else None for v, c in zip(out, codes, strict=True)], codes.tolist()


def test_reason_codes_are_the_documented_order() -> None:
    assert TIME_REASONS == (
        "missing_timestamp",
        "unparseable_timestamp",
        "missing_timezone",
        "ambiguous_local_time",
    )


def test_rees46_text() -> None:
    values, codes = parse(["2019-10-01 00:00:04 UTC", " 2019-11-30 23:59:59 UTC ", None, "", "  "])
    assert values[:2] == [ns("2019-10-01T00:00:04Z"), ns("2019-11-30T23:59:59Z")]
    assert codes == [OK, OK, MISSING, MISSING, MISSING]


def test_impossible_rees46_dates_are_unparseable_not_normalised() -> None:
    _, codes = parse(
        [
            "2019-02-30 00:00:00 UTC",  # strptime alone would give 2019-03-02
            "2019-10-01 24:00:00 UTC",
            "2019-10-01 00:00:60 UTC",
            "2019-13-01 00:00:00 UTC",
            "2019-10-01 00:00:04 UTCX",
            "yesterday",
        ]
    )
    assert codes == [UNPARSEABLE] * 6


def test_iso_offsets_are_converted_to_utc_even_when_mixed() -> None:
    values, codes = parse(
        [
            "2019-10-01T02:00:04+02:00",
            "2019-09-30T19:00:04-05:00",
            "2019-10-01T05:30:04+0530",
            "2019-10-01T00:00:04Z",
            "2019-10-01 00:00:04.250 UTC",
            "2019-10-01T01:00:04.5+01",
        ]
    )
    assert codes == [OK] * 6
    same = ns("2019-10-01T00:00:04Z")
    assert values == [same, same, same, same, same + 250_000_000, same + 500_000_000]


def test_naive_times_need_assume_tz() -> None:
    text = ["2019-10-01 02:00:04", "2019-10-01", "2019-10-01T02:00:04+02:00"]
    values, codes = parse(text)
    assert codes == [NO_ZONE, NO_ZONE, OK]
    values, codes = parse(text, tz="Europe/Berlin")
    assert codes == [OK, OK, OK]
    assert values == [ns("2019-10-01T00:00:04Z"), ns("2019-09-30T22:00:00Z"), values[0]]


def test_local_times_skipped_or_repeated_by_dst_are_ambiguous() -> None:
    _, codes = parse(
        ["2019-03-31 02:30:00", "2019-10-27 02:30:00", "2019-10-27 04:30:00"], tz="Europe/Berlin"
    )
    assert codes == [AMBIGUOUS, AMBIGUOUS, OK]


def test_custom_formats_with_and_without_offset() -> None:
    values, codes = parse(
        ["01.10.2019 02:00", "31.02.2019 00:00"], fmt="%d.%m.%Y %H:%M", tz="Europe/Berlin"
    )
    assert values[0] == ns("2019-10-01T00:00:00Z") and codes == [OK, UNPARSEABLE]
    values, codes = parse(["01/10/2019 02:00 +0200"], fmt="%d/%m/%Y %H:%M %z")
    assert values == [ns("2019-10-01T00:00:00Z")] and codes == [OK]
    _, codes = parse(["01/10/2019 02:00"], fmt="%d/%m/%Y %H:%M")
    assert codes == [NO_ZONE]


def test_epochs_only_when_asked() -> None:
    values, codes = parse(["1569888004", "1569888004.5", "x", ""], fmt="epoch_s")
    assert values[:2] == [ns("2019-10-01T00:00:04Z"), ns("2019-10-01T00:00:04.5Z")]
    assert codes == [OK, OK, UNPARSEABLE, MISSING]
    values, codes = parse(pa.array([1569888004123, None], pa.int64()), fmt="epoch_ms")
    assert values[0] == ns("2019-10-01T00:00:04.123Z") and codes == [OK, MISSING]
    with pytest.raises(DataError, match=r"f\.csv: column event_time holds numbers.*epoch_s"):
        parse(pa.array([1569888004]))
    _, codes = parse(["1569888004"])  # digits are not guessed to be an epoch
    assert codes == [UNPARSEABLE]


def test_typed_timestamps_from_parquet() -> None:
    aware = pa.array(pd.to_datetime(["2019-10-01 02:00:04"]).tz_localize("Europe/Berlin"))
    values, codes = parse(aware)
    assert values == [ns("2019-10-01T00:00:04Z")] and codes == [OK]
    naive = pa.array(np.array(["2019-10-01T02:00:04", "NaT"], dtype="datetime64[ms]"))
    assert parse(naive)[1] == [NO_ZONE, MISSING]
    values, codes = parse(naive, tz="Europe/Berlin")
    assert values[0] == ns("2019-10-01T00:00:04Z") and codes == [OK, MISSING]


def test_times_outside_the_nanosecond_range_are_unparseable() -> None:
    _, codes = parse(["2300-01-01 00:00:00 UTC", "2300-01-01T00:00:00Z", "1500-01-01T00:00:00Z"])
    assert codes == [UNPARSEABLE] * 3
    big = pa.array(np.array(["2500-01-01"], dtype="datetime64[s]"), pa.timestamp("s", tz="UTC"))
    assert parse(big)[1] == [UNPARSEABLE]
