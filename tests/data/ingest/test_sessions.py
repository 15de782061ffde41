"""SessionAssigner: 30-minute inactivity sessions, the same whatever the chunking."""

from __future__ import annotations

import pandas as pd
import pytest

from fedmarket.data.ingest.sessions import SessionAssigner
from fedmarket.errors import ConfigError

T0 = pd.Timestamp("2019-10-01", tz="UTC")


def events(rows: list[tuple[str, int]]) -> pd.DataFrame:
    """(customer, minutes after T0) per row, as validated events carry them."""
    return pd.DataFrame(
        {
            "event_time": pd.Series(
                [T0 + pd.Timedelta(minutes=m) for _, m in rows], dtype="datetime64[ns, UTC]"
            ),
            "user_id": pd.Series([u for u, _ in rows], dtype="string"),
        }
    )


def test_gaps_longer_than_30_minutes_start_a_new_session() -> None:
    out = SessionAssigner().assign(events([("a", 0), ("b", 5), ("a", 30), ("a", 61), ("b", 200)]))
    assert out["user_session"].tolist() == ["a#1", "b#1", "a#1", "a#2", "b#2"]
    assert str(out["user_session"].dtype) == "string"


def test_rows_out_of_order_within_a_chunk_are_sorted_per_customer() -> None:
    out = SessionAssigner(gap_minutes=10).assign(events([("a", 100), ("a", 0), ("a", 5)]))
    assert out["user_session"].tolist() == ["a#2", "a#1", "a#1"]


def test_sessions_continue_across_chunks() -> None:
    assigner = SessionAssigner()
    assert assigner.assign(events([("a", 0)]))["user_session"].tolist() == ["a#1"]
    assert assigner.assign(events([("a", 20), ("b", 20)]))["user_session"].tolist() == [
        "a#1",
        "b#1",
    ]
    assert assigner.assign(events([("a", 51), ("b", 40)]))["user_session"].tolist() == [
        "a#2",
        "b#1",
    ]
    assert len(assigner.assign(events([]))) == 0


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_any_chunking_of_a_time_sorted_file_gives_the_same_sessions(size: int) -> None:
    rows = [
        ("a", 0),
        ("b", 1),
        ("a", 29),
        ("c", 30),
        ("a", 59),
        ("b", 90),
        ("a", 95),
        ("c", 100),
        ("a", 100),
        ("b", 121),
        ("b", 200),
    ]
    whole = SessionAssigner().assign(events(rows))["user_session"].tolist()
    assigner = SessionAssigner()
    parts = [
        assigner.assign(events(rows[i : i + size]))["user_session"].tolist()
        for i in range(0, len(rows), size)
    ]
    assert [s for part in parts for s in part] == whole
    # b: 1 -> 90 (89 min) -> 121 (31 min) -> 200: four sessions; a: 59 -> 95 is 36 min
    assert whole == ["a#1", "b#1", "a#1", "c#1", "a#1", "b#2", "a#2", "c#2", "a#2", "b#3", "b#4"]


def test_gap_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="positive"):
        SessionAssigner(gap_minutes=0)
