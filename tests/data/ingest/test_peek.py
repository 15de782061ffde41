"""peek.latest_event_ns: an upper bound on the latest valid event, from statistics or one column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedmarket.data.ingest import peek

TIMES = ["2019-10-01 00:00:04 UTC", "2019-10-03 10:00:00 UTC", "2019-10-02 23:59:59 UTC"]
LATEST = pd.Timestamp("2019-10-03 10:00:00", tz="UTC").value


def events(times: pa.Array) -> pa.Table:
    n = len(times)
    return pa.table(
        {
            "event_time": times,
            "event_type": pa.array(["view"] * n),
            "price": pa.array([1.0] * n),
            "user_id": pa.array(range(n), pa.int64()),
        }
    )


def typed(times: list[str]) -> pa.Array:
    stamps = pd.to_datetime([t.removesuffix(" UTC") for t in times], utc=True)
    return pa.array(stamps, pa.timestamp("ns", tz="UTC"))


def test_parquet_statistics_give_the_latest_time(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(events(typed(TIMES)), path, row_group_size=2)
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: 1 / 0)  # no row is read
    assert peek.latest_event_ns(path) == LATEST


def test_without_statistics_the_column_is_read(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(events(typed(TIMES)), path, write_statistics=False)
    assert peek.latest_event_ns(path) == LATEST


def test_text_times_skip_what_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(events(pa.array([*TIMES, "9999-99-99 garbage", None])), path)
    assert peek.latest_event_ns(path) == LATEST


def test_csv_reads_only_the_time_column(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    lines = [
        "event_time,event_type,price,user_id",
        *(f"{t},view,1.0,{i}" for i, t in enumerate(TIMES)),
    ]
    path.write_text("\n".join([*lines, "2019-10-09T12:00:00,view,1.0,9"]) + "\n")
    assert peek.latest_event_ns(path) == LATEST  # the zone-less time is not valid: skipped


def test_no_bound_without_a_column_or_a_valid_time(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(events(typed(TIMES)).drop(["event_time"]), path)
    assert peek.latest_event_ns(path) is None
    pq.write_table(events(pa.array(["not a time"])), path)
    assert peek.latest_event_ns(path) is None
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    assert peek.latest_event_ns(broken) is None
