"""iter_events over CSV, .gz, .bz2, .zip and Parquet; bad files; find_exports; read_customers."""

from __future__ import annotations

import bz2
import gzip
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedmarket.data.ingest.customers import read_customers
from fedmarket.data.ingest.dedup import DuplicateFilter
from fedmarket.data.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    default_retailer_id,
    find_exports,
    iter_events,
)
from fedmarket.data.ingest.mapping import parse_mapping_option
from fedmarket.data.ingest.schema import CUSTOMER_COLUMNS, EVENT_COLUMNS
from fedmarket.data.ingest.validate import DropReport
from fedmarket.errors import ConfigError, DataError

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)
ROWS = [  # the first rows of the public 2019-Oct.csv, plus one copy and one bad price
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,"
    "72d76fde-8bb3-4e00-8c23-a032dfed738c",
    "2019-10-01 00:00:00 UTC,view,3900821,2053013552326770905,appliances.environment.water_heater,"
    "aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc",
    "2019-10-01 00:00:01 UTC,view,17200506,2053013559792632471,furniture.living_room.sofa,,543.10,"
    "519107250,566511c2-e2e3-422b-b695-cf8e6e792ca8",
    "2019-10-01 00:00:01 UTC,view,1307067,2053013558920217191,computers.notebook,lenovo,251.74,"
    "550050854,7c90fc70-0e80-4590-96f3-13c02c18c713",
    "2019-10-01 00:00:04 UTC,view,1004237,2053013555631882655,electronics.smartphone,apple,"
    "-1081.98,"
    "535871217,c6bd7419-2748-4c56-95b4-8cec9ff8b80d",
    "2019-10-01 00:00:01 UTC,view,1307067,2053013558920217191,computers.notebook,lenovo,251.74,"
    "550050854,7c90fc70-0e80-4590-96f3-13c02c18c713",
    "2019-10-01 00:00:05 UTC,purchase,1480613,2053013561092866779,computers.desktop,pulser,908.62,"
    "512742880,0d0d91c2-c9c2-4e81-90a5-86594dec0db9",
]
TEXT = HEADER + "\n" + "\n".join(ROWS) + "\n"


def read_all(path: Path, report: DropReport | None = None, **kw) -> pd.DataFrame:
    chunks = list(iter_events(path, report=report if report is not None else DropReport(), **kw))
    return pd.concat(chunks, ignore_index=True)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "2019-Oct.csv"
    path.write_text(TEXT)
    return path


def test_rees46_csv_loads_as_is(csv_file: Path) -> None:
    report = DropReport()
    out = read_all(csv_file, report)
    assert list(out.columns) == [*EVENT_COLUMNS, "retailer_id"]
    assert out["user_id"].tolist() == [
        "541312140",
        "554748717",
        "519107250",
        "550050854",
        "512742880",
    ]
    assert out["category_id"].iloc[4] == 2053013561092866779
    assert out["retailer_id"].unique().tolist() == ["2019-Oct"]  # from the file name
    assert report.counts == {"negative_price": 1, "duplicate_row": 1}
    assert report.examples == {
        "negative_price": [f"{csv_file} row 5: price='-1081.98'"],
        "duplicate_row": [f"{csv_file} row 6: repeats an earlier row"],
    }
    assert (report.rows_read, report.rows_kept) == (7, 5)


def compress(src: Path, kind: str) -> Path:
    data = src.read_bytes()
    out = src.with_name(f"{src.stem}.csv.{kind}")
    if kind == "gz":
        out.write_bytes(gzip.compress(data))
    elif kind == "bz2":
        out.write_bytes(bz2.compress(data))
    else:
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr(src.name, data)
    return out


def test_csv_gz_bz2_zip_and_parquet_give_identical_frames(csv_file: Path) -> None:
    expected = read_all(csv_file)
    for kind in ("gz", "bz2", "zip"):
        pd.testing.assert_frame_equal(read_all(compress(csv_file, kind)), expected)
    typed = expected.drop(columns="retailer_id").astype({"event_time": "datetime64[us, UTC]"})
    parquet = csv_file.with_suffix(".parquet")
    typed.to_parquet(parquet, row_group_size=2)
    pd.testing.assert_frame_equal(read_all(parquet), expected)


def test_chunks_of_two_rows_give_the_same_result_and_catch_copies_across_chunks(
    csv_file: Path,
) -> None:
    report = DropReport()
    chunks = list(iter_events(csv_file, report=report, chunksize=2))
    assert [len(c) for c in chunks] == [2, 2, 1]  # rows 5-6 are both dropped: chunk skipped
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read_all(csv_file))
    assert report.counts == {"negative_price": 1, "duplicate_row": 1}


def test_strict_counts_rows_across_chunks(csv_file: Path) -> None:
    with pytest.raises(DataError, match=r"data row 5 \(1-based, header not counted\).*-1081.98"):
        read_all(csv_file, strict=True, chunksize=2)


def test_one_duplicate_filter_spans_several_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(HEADER + "\n" + ROWS[0] + "\n")
    b.write_text(HEADER + "\n" + ROWS[0] + "\n" + ROWS[1] + "\n")
    seen, report = DuplicateFilter(), DropReport()
    read_all(a, report, duplicates=seen, retailer_id="r")
    assert len(read_all(b, report, duplicates=seen, retailer_id="r")) == 1
    assert report.counts == {"duplicate_row": 1}


def test_retailer_id_defaults(tmp_path: Path) -> None:
    assert default_retailer_id(Path("raw/retailer_03/events.parquet")) == "retailer_03"
    assert default_retailer_id(Path("raw/2019-Oct.csv.gz")) == "2019-Oct"
    path = tmp_path / "retailer_07" / "events.csv"
    path.parent.mkdir()
    path.write_text(HEADER + ",retailer_id\n" + ROWS[0] + ",shop_9\n")
    assert read_all(path)["retailer_id"].tolist() == ["shop_9"]  # the column wins over the name
    path.write_text(TEXT)
    assert read_all(path)["retailer_id"].iloc[0] == "retailer_07"
    assert read_all(path, retailer_id="given")["retailer_id"].iloc[0] == "given"


def test_empty_and_header_only_files_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"e\.csv: the file is empty \(0 bytes\)"):
        iter_events(empty, report=DropReport())
    header = tmp_path / "h.csv"
    header.write_text(HEADER + "\n")
    with pytest.raises(DataError, match=r"h\.csv: no data rows"):
        read_all(header)
    gz = tmp_path / "g.csv.gz"
    gz.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match=r"g\.csv\.gz: the file is empty"):
        read_all(gz)
    table = pa.table({c: pa.array([], pa.string()) for c in EVENT_COLUMNS})
    pq.write_table(table, tmp_path / "p.parquet")
    with pytest.raises(DataError, match=r"p\.parquet: no data rows"):
        read_all(tmp_path / "p.parquet")


def test_non_utf8_bytes_name_the_file_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    lines = [HEADER, ROWS[0], ROWS[1].replace("aqua", "aq\xffua")]
    body = "\n".join(lines).encode("latin-1") + b"\n"
    path.write_bytes(body)
    offset = body.index(b"\xff")
    with pytest.raises(DataError) as err:
        read_all(path)
    msg = str(err.value)
    assert f"{path}: bytes that are not valid utf-8 at line 3 (data row 2" in msg
    assert f"byte offset {offset}" in msg and "encoding" in msg
    latin = parse_mapping_option("kind=rees46,encoding=latin-1")
    assert read_all(path, mapping=latin)["brand"].tolist() == ["shiseido", "aq\xffua"]


def test_malformed_rows_and_unknown_suffixes(tmp_path: Path, csv_file: Path) -> None:
    ragged = tmp_path / "r.csv"
    ragged.write_text(HEADER + "\n" + ROWS[0] + ",extra\n")
    with pytest.raises(DataError, match=r"malformed CSV.*csv_delimiter"):
        read_all(ragged)
    odd = tmp_path / "events.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError) as err:
        iter_events(odd, report=DropReport())
    assert all(s in str(err.value) for s in SUPPORTED_SUFFIXES)
    with pytest.raises(DataError, match="no such file"):
        iter_events(tmp_path / "gone.csv", report=DropReport())
    with pytest.raises(ConfigError, match="chunksize"):
        iter_events(csv_file, report=DropReport(), chunksize=0)
    with pytest.raises(DataError, match="not a readable Parquet file"):
        bad = tmp_path / "x.parquet"
        bad.write_text("not parquet")
        read_all(bad)


def test_a_transaction_export_with_its_own_delimiter_and_derived_sessions(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(
        "cust_id;ts;total;qty;sku;dept\n"
        "c1;01.10.2019 02:00;30.00;3;AB-12;shoes\n"
        "c1;01.10.2019 02:20;5;1;77;12\n"
        "c2;01.10.2019 02:25;7;1;77;12\n"
        "c1;01.10.2019 03:00;8;0;77;12\n"
        "c1;01.10.2019 03:10;8;2;77;12\n"
    )
    mapping = parse_mapping_option(
        "kind=transactions,customer=cust_id,timestamp=ts,amount=total,"
        "quantity=qty,product=sku,category=dept,csv_delimiter=semicolon,"
        "timestamp_format=%d.%m.%Y %H:%M,assume_tz=Europe/Berlin"
    )
    report = DropReport()
    whole = read_all(path, report, mapping=mapping)
    assert whole["user_session"].tolist() == ["c1#1", "c1#1", "c2#1", "c1#2"]
    assert whole["price"].tolist() == [10.0, 5.0, 7.0, 4.0]
    assert whole["event_time"].iloc[0] == pd.Timestamp("2019-10-01 00:00", tz="UTC")
    assert report.counts == {"bad_quantity": 1} and report.extra_columns == {}
    pd.testing.assert_frame_equal(read_all(path, mapping=mapping, chunksize=1), whole)


def synth_tree(raw: Path) -> None:
    for name, fmt in (("retailer_00", "parquet"), ("retailer_01", "csv")):
        (raw / name).mkdir(parents=True)
        (raw / name / f"events.{fmt}").write_text("x")
        (raw / name / "customers.csv").write_text("x")
    (raw / "synth.json").write_text("{}")


def test_find_exports_layouts(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    synth_tree(raw)
    assert find_exports(raw) == {
        "retailer_00": [raw / "retailer_00" / "events.parquet"],
        "retailer_01": [raw / "retailer_01" / "events.csv"],
    }
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("2019-Oct.csv.gz", "2019-Nov.csv", ".hidden.csv", "customers.csv", "notes.txt"):
        (flat / name).write_text("x")
    assert find_exports(flat) == {
        "2019-Nov": [flat / "2019-Nov.csv"],
        "2019-Oct": [flat / "2019-Oct.csv.gz"],
    }
    assert find_exports(flat / "2019-Nov.csv") == {"2019-Nov": [flat / "2019-Nov.csv"]}
    (raw / "retailer_01" / "events.parquet").write_text("x")
    with pytest.raises(DataError, match=r"both events\.csv and events\.parquet"):
        find_exports(raw)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no event files found"):
        find_exports(tmp_path / "none")
    with pytest.raises(DataError, match="no such file or directory"):
        find_exports(tmp_path / "missing")


def customers_csv(path: Path, rows: list[str], header: str = ",".join(CUSTOMER_COLUMNS)) -> None:
    path.write_text(header + ",loyalty_tier\n" + "\n".join(r + ",gold" for r in rows) + "\n")


def test_read_customers(tmp_path: Path) -> None:
    row = "u1,Ann Lee,ann@x.org,+4912345,Main St 1,1980-02-03,10115,f,Berlin"
    customers_csv(tmp_path / "customers.csv", [row, row.replace("u1", "u2")])
    table = read_customers(tmp_path)
    assert list(table.columns) == list(CUSTOMER_COLUMNS)  # loyalty_tier is not loaded
    assert table["user_id"].tolist() == ["u1", "u2"] and table["postcode"].iloc[0] == "10115"
    assert all(str(t) == "string" for t in table.dtypes)
    assert read_customers(tmp_path / "customers.csv").equals(table)
    (tmp_path / "empty_dir").mkdir()
    assert read_customers(tmp_path / "empty_dir") is None


def test_read_customers_bad_rows_and_columns(tmp_path: Path) -> None:
    row = "u1,Ann Lee,ann@x.org,+4912345,Main St 1,1980-02-03,10115,f,Berlin"
    path = tmp_path / "customers.csv"
    customers_csv(path, [row, row, row.replace("u1", "")])
    with pytest.raises(DataError, match=r"row 3 .*missing_user_id"):
        read_customers(path)
    report = DropReport()
    assert read_customers(path, report=report)["user_id"].tolist() == ["u1"]
    assert report.counts == {"missing_user_id": 1, "duplicate_customer": 1}
    assert report.examples == {  # the raw customer id never reaches the report (manifest)
        "missing_user_id": [f"{path} row 3: user_id is empty"],
        "duplicate_customer": [f"{path} row 2: user_id repeats an earlier row"],
    }
    customers_csv(path, ["u1,1980-02-03,10115,f"], header="user_id,birth_date,postcode,gender")
    with pytest.raises(DataError, match=r"missing customer column.*city"):
        read_customers(path)


# --- header-less logs and repeat purchases (CDNOW-style) ------------------------------------------

CDNOW = (  # customer, YYYYMMDD, CDs, dollars; lines 2 and 3 are two equal orders of one day
    " 00001 19970101  1   11.77\r\n"
    " 00002 19970112  1   12.00\r\n"
    " 00002 19970112  1   12.00\r\n"
    " 00003 19970102  2   20.76\r\n"
)
CDNOW_MAPPING = (
    "kind=transactions,columns=cust date qty amount,customer=cust,timestamp=date,"
    "amount=amount,quantity=qty,format=csv,csv_delimiter=whitespace,"
    "timestamp_format=%Y%m%d,assume_tz=UTC"
)


def read_cdnow(tmp_path: Path, extra: str = "") -> tuple[pd.DataFrame, DropReport]:
    path = tmp_path / "CDNOW_master.txt"
    path.write_text(CDNOW, newline="")
    report = DropReport()
    chunks = iter_events(path, mapping=parse_mapping_option(CDNOW_MAPPING + extra), report=report)
    return pd.concat(list(chunks), ignore_index=True), report


def test_columns_name_a_headerless_file_and_copies_are_dropped_by_default(
    tmp_path: Path,
) -> None:
    out, report = read_cdnow(tmp_path)
    assert out["user_id"].tolist() == ["00001", "00002", "00003"]  # line 1 is data
    assert out["price"].tolist() == [11.77, 12.0, 10.38]  # unit prices
    assert out["event_time"].iloc[0] == pd.Timestamp("1997-01-01", tz="UTC")
    assert report.counts == {"duplicate_row": 1}
    assert report.examples["duplicate_row"] == [
        f"{tmp_path / 'CDNOW_master.txt'} row 3: repeats an earlier row"
    ]
    assert (report.rows_read, report.rows_kept) == (4, 3)
    assert report.to_dict()["duplicate_rows"] == "dropped"
    assert "duplicates_kept" not in report.to_dict()


def test_keep_duplicates_keeps_identical_lines_as_repeat_purchases(tmp_path: Path) -> None:
    out, report = read_cdnow(tmp_path, ",keep_duplicates=true")
    assert out["user_id"].tolist() == ["00001", "00002", "00002", "00003"]
    assert report.counts == {} and (report.rows_read, report.rows_kept) == (4, 4)
    summary = report.to_dict()
    assert summary["duplicate_rows"] == "kept" and summary["duplicates_kept"] == 1
    merged = DropReport()
    merged.merge(report)
    merged.merge(report)
    assert merged.duplicates_kept == 2


def test_columns_that_do_not_fit_the_file_say_so(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text(CDNOW)
    mapping = parse_mapping_option(
        CDNOW_MAPPING.replace("columns=cust date", "columns=cust d2 date")
    )
    with pytest.raises(DataError, match="has the 5 columns the mapping's columns names"):
        list(iter_events(path, mapping=mapping, report=DropReport()))
