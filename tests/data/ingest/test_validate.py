"""validate_events and DropReport: schema, per-reason counts, strict errors, duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fedmarket.data.ingest.dedup import DuplicateFilter
from fedmarket.data.ingest.schema import EVENT_COLUMNS, RETAILER_COLUMN
from fedmarket.data.ingest.validate import (
    DROP_REASONS,
    ISSUE_COLUMN,
    ISSUE_DETAIL_COLUMN,
    DropReport,
    as_text,
    validate_events,
)
from fedmarket.errors import ConfigError, DataError

GOOD = {
    "event_time": "2019-10-01 00:00:04 UTC",
    "event_type": "view",
    "product_id": "44600062",
    "category_id": "2103807459595387724",
    "category_code": "",
    "brand": "shiseido",
    "price": "35.79",
    "user_id": "541312140",
    "user_session": "72d76fde-8bb3-4e00-8c23-a032dfed738c",
}


def frame(*changes: dict[str, object]) -> pd.DataFrame:
    """One REES46 row per dict: GOOD with the given cells replaced (all text, like a CSV)."""
    return pd.DataFrame([{**GOOD, **c} for c in changes], dtype=object)


def run(df: pd.DataFrame, report: DropReport | None = None, **kw: object) -> pd.DataFrame:
    args = {"source": "ev.csv", "row_offset": 0, "strict": False, "retailer_id": "shop"}
    args.update(kw)
    return validate_events(df, report=report if report is not None else DropReport(), **args)


def test_clean_rees46_rows_get_the_schema_dtypes_and_exact_values() -> None:
    out = run(frame({}, {"event_type": "purchase", "brand": "", "user_id": " 7 ", "price": "0"}))
    assert list(out.columns) == [*EVENT_COLUMNS, RETAILER_COLUMN]
    assert {c: str(t) for c, t in out.dtypes.items()} == {
        **EVENT_COLUMNS,
        RETAILER_COLUMN: "string",
    }
    assert out["event_time"].iloc[0] == pd.Timestamp("2019-10-01 00:00:04", tz="UTC")
    assert out["category_id"].iloc[0] == 2103807459595387724  # 19 digits, no float rounding
    assert out["product_id"].tolist() == [44600062, 44600062]
    assert out["price"].tolist() == [35.79, 0.0]
    assert out["user_id"].tolist() == ["541312140", "7"]
    assert out["category_code"].isna().all()  # empty cells are missing, not ""
    assert out["brand"].iloc[0] == "shiseido" and pd.isna(out["brand"].iloc[1])
    assert out[RETAILER_COLUMN].tolist() == ["shop", "shop"]


def test_missing_required_columns_are_an_error_even_when_not_strict() -> None:
    df = frame({}).drop(columns=["price", "event_time"])
    with pytest.raises(DataError) as err:
        run(df)
    msg = str(err.value)
    assert "ev.csv" in msg and "event_time, price" in msg and "found columns event_type" in msg


def test_a_header_read_as_one_column_suggests_the_delimiter() -> None:
    with pytest.raises(DataError, match="csv_delimiter"):
        run(pd.DataFrame({"event_time;event_type;price;user_id": ["a;b;c;d"]}))


def test_each_bad_row_is_counted_once_under_its_first_reason() -> None:
    df = frame(
        {},  # row 11: kept
        {"user_id": ""},  # 12 missing_user_id
        {"event_time": ""},  # 13 missing_timestamp
        {"event_time": "yesterday"},  # 14 unparseable_timestamp
        {"event_time": "2019-10-01 00:00:04"},  # 15 missing_timezone
        {"event_type": None},  # 16 missing_event_type
        {"event_type": "click"},  # 17 unknown_event_type
        {"price": "NaN"},  # 18 nan_price
        {"price": "12,50"},  # 19 unparseable_price
        {"price": "-1"},  # 20 negative_price
        {"product_id": "A-1"},  # 21 bad_product_id
        {"category_id": "1.5"},  # 22 bad_category_id
        {"user_id": "", "price": "-1", "event_type": "click"},  # 23 first reason wins
        {"user_id": "9"},  # 24: kept
    )
    report = DropReport()
    out = run(df, report, row_offset=10)
    assert out["user_id"].tolist() == ["541312140", "9"]
    assert report.counts == {
        "missing_user_id": 2,
        "missing_timestamp": 1,
        "unparseable_timestamp": 1,
        "missing_timezone": 1,
        "missing_event_type": 1,
        "unknown_event_type": 1,
        "nan_price": 1,
        "unparseable_price": 1,
        "negative_price": 1,
        "bad_product_id": 1,
        "bad_category_id": 1,
    }
    assert (report.rows_read, report.rows_kept, report.total) == (14, 2, 12)
    assert report.examples["missing_user_id"] == [
        "ev.csv row 12: user_id=''",
        "ev.csv row 23: user_id=''",
    ]
    assert report.examples["negative_price"] == ["ev.csv row 20: price='-1'"]
    assert report.examples["unknown_event_type"] == ["ev.csv row 17: event_type='click'"]


def test_strict_names_file_row_column_and_value() -> None:
    df = frame({}, {}, {"price": "abc"}, {"price": "-3"})
    with pytest.raises(DataError) as err:
        run(df, strict=True, row_offset=100)
    msg = str(err.value)
    assert msg.startswith("ev.csv data row 103 (1-based, header not counted): unparseable_price")
    assert "price='abc'" in msg and "--strict" in msg


def test_prices_nan_empty_infinite_text_negative_and_zero() -> None:
    df = frame(
        *(
            {"price": p, "user_id": str(i)}
            for i, p in enumerate(["", "nan", "inf", "-Infinity", "abc", "-0.5", "0", "1e3"])
        )
    )
    report = DropReport()
    out = run(df, report)
    assert report.counts == {"nan_price": 4, "unparseable_price": 1, "negative_price": 1}
    assert out["price"].tolist() == [0.0, 1000.0]


def test_product_and_category_ids() -> None:
    df = frame(
        {"product_id": "", "category_id": None},  # empty -> 0, kept
        {"product_id": " +12 "},
        {"category_id": "99999999999999999999"},  # beyond int64
        {"product_id": "x1"},
    )
    report = DropReport()
    out = run(df, report)
    assert out["product_id"].tolist() == [0, 12]
    assert out["category_id"].tolist() == [0, 2103807459595387724]
    assert report.counts == {"bad_category_id": 1, "bad_product_id": 1}


def test_typed_columns_as_parquet_gives_them() -> None:
    df = pd.DataFrame(
        {
            "event_time": pd.to_datetime(["2019-10-01 02:00:04"]).tz_localize("Europe/Berlin"),
            "event_type": ["cart"],
            "price": [1.5],
            "user_id": np.array([541312140], dtype=np.int64),
            "product_id": [5],
        }
    )
    out = run(df)
    assert out["event_time"].iloc[0] == pd.Timestamp("2019-10-01 00:00:04", tz="UTC")
    assert out["user_id"].iloc[0] == "541312140" and out["product_id"].iloc[0] == 5
    assert out["category_id"].iloc[0] == 0 and pd.isna(out["user_session"].iloc[0])


def test_float_user_ids_lose_the_trailing_zero() -> None:
    df = frame({}).assign(user_id=[541312140.0])
    assert run(df)["user_id"].iloc[0] == "541312140"


def test_retailer_id_from_column_argument_or_error() -> None:
    df = frame({}, {}).assign(retailer_id=["r1", ""])
    report = DropReport()
    out = run(df, report, retailer_id=None)
    assert out[RETAILER_COLUMN].tolist() == ["r1"] and report.counts == {"missing_retailer_id": 1}
    assert (
        run(frame({}).assign(retailer_id="r1"), retailer_id="r1")[RETAILER_COLUMN].iloc[0] == "r1"
    )
    with pytest.raises(DataError, match="says r1 but the retailer was given as 'r2'"):
        run(frame({}).assign(retailer_id="r1"), retailer_id="r2")
    with pytest.raises(DataError, match="no retailer_id column"):
        run(frame({}), retailer_id=None)
    with pytest.raises(ConfigError, match="non-empty"):
        run(frame({}), retailer_id=" ")


def test_extra_columns_are_listed_once_per_file() -> None:
    report = DropReport()
    run(frame({}).assign(note="x", basket=1), report)
    run(frame({}).assign(other="y"), report)
    assert report.extra_columns == {"ev.csv": ["note", "basket"]}


def test_duplicates_within_and_across_chunks() -> None:
    a, b, c = {"user_id": "a"}, {"user_id": "b"}, {"user_id": "c"}
    report, seen = DropReport(), DuplicateFilter()
    first = run(frame(a, b, a), report, duplicates=seen)
    second = run(frame(b, c), report, duplicates=seen, row_offset=3)
    assert first["user_id"].tolist() == ["a", "b"] and second["user_id"].tolist() == ["c"]
    assert report.counts == {"duplicate_row": 2}
    assert report.examples["duplicate_row"] == [
        "ev.csv row 3: repeats an earlier row",
        "ev.csv row 4: repeats an earlier row",
    ]
    assert (report.rows_read, report.rows_kept) == (5, 3)


def test_rows_equal_after_parsing_are_duplicates_and_strict_refuses_them() -> None:
    df = frame({}, {"event_time": "2019-10-01T02:00:04+02:00", "price": "35.790"})
    report = DropReport()
    assert len(run(df, report)) == 1 and report.counts == {"duplicate_row": 1}
    with pytest.raises(DataError, match=r"data row 2 .*duplicate_row"):
        run(df, strict=True)


def test_ignored_rows_from_a_mapping_are_counted_but_never_an_error() -> None:
    df = frame({}, {"event_type": "login"}).assign(
        **{
            ISSUE_COLUMN: [None, "ignored_event_type"],
            ISSUE_DETAIL_COLUMN: [None, "action='login'"],
        }
    )
    report = DropReport()
    out = run(df, report, strict=True)
    assert len(out) == 1 and report.counts == {"ignored_event_type": 1}
    assert report.examples["ignored_event_type"] == ["ev.csv row 2: action='login'"]


def test_an_empty_chunk_keeps_the_schema() -> None:
    out = run(frame({}).iloc[:0])
    assert len(out) == 0 and {c: str(t) for c, t in out.dtypes.items()}["event_time"] == (
        "datetime64[ns, UTC]"
    )


def test_drop_report_add_merge_and_to_dict() -> None:
    one, two = DropReport(max_examples=2), DropReport()
    one.add("nan_price", 2, "f row 1")
    one.add("nan_price", 1, "f row 2")
    one.add("nan_price", 0, "f row 3")  # over the example cap
    two.add("duplicate_row", 4, "g row 9")
    two.add("nan_price", 1)
    two.rows_read, two.rows_kept, two.extra_columns["g"] = 10, 5, ["x"]
    one.merge(two)
    assert one.counts == {"nan_price": 4, "duplicate_row": 4} and one.total == 8
    assert one.to_dict() == {
        "rows_read": 10,
        "rows_kept": 5,
        "rows_dropped": 8,
        "dropped": {"nan_price": 4, "duplicate_row": 4},
        "examples": {"nan_price": ["f row 1", "f row 2"], "duplicate_row": ["g row 9"]},
        "extra_columns": {"g": ["x"]},
        "duplicate_rows": "dropped",
    }
    with pytest.raises(ValueError, match="unknown drop reason"):
        one.add("nonsense", 1)
    with pytest.raises(ValueError, match=">= 0"):
        one.add("nan_price", -1)
    assert all(k == k.lower() and " " not in k for k in DROP_REASONS)


@pytest.mark.parametrize(
    "values",
    [
        pa.array([520088904, None, -7, 0], pa.int64()),
        pa.array([3, 250], pa.uint8()),
        pa.array([1.0, None, 12.0]),  # integral floats go through the integer path
    ],
)
def test_as_text_of_numbers_equals_the_trimmed_text(values: pa.Array) -> None:
    # The integer shortcut skips trimming and the empty check; both are no-ops on digits.
    numbers = pc.cast(values, pa.int64()) if pa.types.is_floating(values.type) else values
    text = pc.utf8_trim_whitespace(pc.cast(numbers, pa.large_string()))
    expected = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.large_string()), text)
    assert as_text(values).equals(expected)


def test_small_and_large_frames_give_the_same_rows() -> None:
    """A frame under the threaded-conversion size gives exactly the rows the same events give
    inside a large frame (seeded random events, some bad, some repeated)."""
    rng = np.random.default_rng(15)
    n = 5000
    rows = [
        {
            "event_time": f"2019-10-{rng.integers(1, 29):02d} {rng.integers(0, 24):02d}:00:00 UTC",
            "event_type": rng.choice(["view", "cart", "purchase", "remove_from_cart", "bogus"]),
            "product_id": str(rng.integers(1, 40)),
            "price": rng.choice(["1.50", "20", "-3", "", "7.25"]),
            "user_id": str(rng.integers(1, 200)),
            "user_session": rng.choice(["s1", "s2", ""]),
        }
        for _ in range(n)
    ]
    large = run(frame(*rows))
    small = run(frame(*rows[:40]))
    assert 0 < len(small) < 40
    expected = large.iloc[: len(small)].reset_index(drop=True)
    pd.testing.assert_frame_equal(small, expected)
