"""Exports named otherwise (``format = "csv"``) and whitespace-separated logs
(``csv_delimiter = "whitespace"``; fedmarket/data/ingest/whitespace.py)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd
import pytest

from fedmarket.data.ingest.loaders import find_exports, iter_events
from fedmarket.data.ingest.mapping import parse_mapping_option
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.ingest.whitespace import TabStream, to_tabs
from fedmarket.errors import ConfigError, DataError

# A sales log as an old till prints it: columns lined up with spaces and tabs, leading spaces,
# trailing spaces, CRLF line ends, a blank line.
LOG = (
    "  cust   when                    total  qty\r\n"
    "  c1     2019-10-01T02:00:00+02:00   30.00   3  \r\n"
    "  c2\t   2019-10-01T01:00:00Z     7.5\t  1\r\n"
    "\r\n"
    "  c1     2019-10-02T00:00:00Z      8.00   0\r\n"
)
TILL = "kind=transactions,customer=cust,timestamp=when,amount=total,quantity=qty,format=csv"


def read_all(path: Path, mapping_text: str, report: DropReport | None = None) -> pd.DataFrame:
    chunks = iter_events(
        path, mapping=parse_mapping_option(mapping_text), report=report or DropReport()
    )
    return pd.concat(list(chunks), ignore_index=True)


def test_to_tabs_collapses_runs_and_strips_line_edges() -> None:
    assert to_tabs(b"  a   b\t\t c  \r\n\t\r\nd e\n") == b"a\tb\tc\n\nd\te\n"


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 20])
def test_the_stream_gives_the_same_text_whatever_the_block_size(block: int) -> None:
    raw = LOG.encode() + b"  last line without newline  "
    out = TabStream(io.BytesIO(raw), block_bytes=block).read()
    assert out == to_tabs(raw + b"\n")


def test_a_txt_export_is_refused_with_the_way_to_read_it(tmp_path: Path) -> None:
    path = tmp_path / "till.txt"
    path.write_text("cust,when\n")
    with pytest.raises(DataError, match=r'till\.txt: unsupported file type.*format = "csv"'):
        iter_events(path, report=DropReport())


@pytest.mark.parametrize("name", ["till.txt", "till.log.gz", "TILL"])
def test_a_whitespace_log_of_any_name_reads_with_format_and_delimiter(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    data = LOG.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    report = DropReport()
    events = read_all(path, TILL + ",csv_delimiter=whitespace", report)
    assert events["user_id"].tolist() == ["c1", "c2"]
    assert events["price"].tolist() == [10.0, 7.5]
    assert events["event_time"].tolist() == [
        pd.Timestamp("2019-10-01 00:00", tz="UTC"),
        pd.Timestamp("2019-10-01 01:00", tz="UTC"),
    ]
    assert report.counts == {"bad_quantity": 1} and report.rows_read == 3


def test_format_csv_reads_a_comma_separated_txt(tmp_path: Path) -> None:
    path = tmp_path / "till.txt"
    path.write_text("cust,when,total\nc1,2019-10-01T00:00:00Z,4\n")
    assert read_all(path, "kind=transactions,customer=cust,timestamp=when,amount=total,"
                    "format=csv")["price"].tolist() == [4.0]  # fmt: skip


def test_a_directory_with_format_takes_every_export_but_mappings_and_notes(
    tmp_path: Path,
) -> None:
    shop = tmp_path / "raw" / "shop"
    shop.mkdir(parents=True)
    for name in ("2019-10.txt", "2019-11.dat", "till.toml", "synth.json", "README.md", ".hidden"):
        (shop / name).write_text("x")
    mapping = parse_mapping_option(TILL)
    assert find_exports(tmp_path / "raw", mapping) == {
        "shop": [shop / "2019-10.txt", shop / "2019-11.dat"]
    }
    with pytest.raises(DataError, match="no event files found"):
        find_exports(tmp_path / "raw")


def test_a_space_separated_header_without_the_delimiter_says_which_to_set(
    tmp_path: Path,
) -> None:
    path = tmp_path / "till.txt"
    path.write_bytes(LOG.encode())
    with pytest.raises(DataError, match='set csv_delimiter = "whitespace" in the mapping'):
        read_all(path, "kind=rees46,format=csv")


def test_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"format='xlsx' is unknown; use one of csv, parquet"):
        parse_mapping_option("kind=rees46,format=xlsx")
