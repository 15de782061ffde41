"""ExportMapping from TOML and CLI strings, and apply_mapping for the three export shapes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fedmarket.data.ingest.mapping import (
    ExportMapping,
    apply_mapping,
    load_mapping,
    mapping_option,
    parse_mapping_option,
)
from fedmarket.data.ingest.validate import ISSUE_COLUMN, DropReport, validate_events
from fedmarket.errors import ConfigError, DataError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "mappings"


def validated(df: pd.DataFrame, mapping: ExportMapping, report: DropReport, **kw) -> pd.DataFrame:
    mapped = apply_mapping(df, mapping, source="shop.csv")
    return validate_events(
        mapped,
        source="shop.csv",
        row_offset=0,
        strict=kw.get("strict", False),
        report=report,
        retailer_id="shop",
        assume_tz=mapping.assume_tz,
        timestamp_format=mapping.timestamp_format,
    )


def test_cli_string_for_transactions() -> None:
    m = parse_mapping_option(
        "kind=transactions, customer=cust_id,timestamp=ts,amount=total,quantity=qty"
    )
    assert (m.kind, m.customer, m.timestamp, m.amount, m.quantity) == (
        "transactions",
        "cust_id",
        "ts",
        "total",
        "qty",
    )
    assert m.event is None and dict(m.event_names) == {} and m.csv_delimiter == ","


def test_cli_string_for_clickstream_with_event_names() -> None:
    m = parse_mapping_option(
        "kind=clickstream,customer=uid,timestamp=t,event=action,"
        "event.click=view,event.basket=cart,event.order=purchase,"
        "event.login=ignore,csv_delimiter=semicolon,session_gap_minutes=45"
    )
    assert dict(m.event_names) == {
        "click": "view",
        "basket": "cart",
        "order": "purchase",
        "login": "ignore",
    }
    assert (m.csv_delimiter, m.session_gap_minutes) == (";", 45)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kind=transactions,customer=c,timestamp=t,amount=a,colour=red", "unknown key 'colour'"),
        ("customer=c,timestamp=t", "missing key 'kind'"),
        ("kind=transactions,customer=c,timestamp=t", "needs key 'amount'"),
        ("kind=clickstream,customer=c,timestamp=t", "needs key 'event'"),
        ("kind=clickstream,customer=c,timestamp=t,event=e,event.click=look", "event.click='look'"),
        ("kind=auction,customer=c", "kind='auction' is unknown"),
        ("kind=transactions,customer=c,timestamp=t,amount=a,event=e", "key 'event' is not used"),
        ("kind=clickstream,customer=c,timestamp=t,event=e,quantity=q", "'quantity' only applies"),
        ("kind=rees46,assume_tz=Mars/Olympus", "assume_tz='Mars/Olympus'"),
        ("kind=rees46,csv_delimiter=;;", "csv_delimiter=';;'"),
        ("kind=rees46,timestamp_format=yyyy-mm-dd", "timestamp_format='yyyy-mm-dd'"),
        ("kind=rees46,encoding=klingon", "encoding='klingon'"),
        ("kind=rees46,session_gap_minutes=soon", "session_gap_minutes must be an integer"),
        ("kind=rees46,session_gap_minutes=0", "positive integer"),
        ("kind=rees46,kind=rees46", "given twice"),
        ("kind=rees46,customer", "'customer' is not key=value"),
    ],
)
def test_bad_cli_strings_name_the_key_and_the_option(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_mapping_option(text)
    assert needle in str(err.value) and str(err.value).startswith("--mapping ")


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        'kind = "clickstream"\ncustomer = "uid"\ntimestamp = "t"\nevent = "a"\n'
        'assume_tz = "UTC"\nsession_gap_minutes = 20\n[event_names]\nclick = "view"\n'
    )
    m = load_mapping(path)
    assert (m.kind, m.event, m.assume_tz, m.session_gap_minutes) == ("clickstream", "a", "UTC", 20)
    assert dict(m.event_names) == {"click": "view"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('kind = "rees46"\nshop = "x"\n', "unknown key 'shop'"),
        ('kind = "rees46"\ncustomer = 3\n', "key 'customer' must be str"),
        ('kind = "rees46"\nsession_gap_minutes = "30"\n', "must be int"),
        (
            'kind = "clickstream"\ncustomer = "u"\ntimestamp = "t"\nevent = "e"\n'
            '[event_names]\nclick = "buy"\n',
            "event.click='buy'",
        ),
        ("kind = = 1\n", "not valid TOML"),
    ],
)
def test_bad_toml_files_name_the_file_and_key(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    assert str(err.value).startswith(str(path)) and needle in str(err.value)
    with pytest.raises(ConfigError, match="cannot read mapping file"):
        load_mapping(tmp_path / "missing.toml")


def test_documented_examples_load() -> None:
    assert load_mapping(DOCS / "transactions.toml").kind == "transactions"
    click = load_mapping(DOCS / "clickstream.toml")
    assert click.kind == "clickstream" and click.event_names["login"] == "ignore"
    cdnow = load_mapping(DOCS / "cdnow.toml")
    assert cdnow.columns == ("customer", "date", "cds", "dollars") and cdnow.keep_duplicates


def test_transactions_become_one_purchase_per_row_at_unit_price() -> None:
    df = pd.DataFrame(
        {
            "cust_id": ["c1", "c1", "c2", "c3", "c4", "c5", "c6"],
            "ts": ["01.10.2019 02:00"] * 7,
            "total": ["30.00", "5", "12", "abc", "-4", "", "8"],
            "qty": ["3", "", "0", "1", "2", "1", "-1"],
            "sku": ["AB-12", "77", "AB-12", "x", "y", "z", "w"],
            "dept": ["shoes", "12", "shoes", "s", "s", "s", "s"],
        }
    )
    m = load_mapping(DOCS / "transactions.toml")
    report = DropReport()
    out = validated(df, m, report)
    assert out["user_id"].tolist() == ["c1"] and out["event_type"].tolist() == ["purchase"]
    assert out["price"].tolist() == [10.0]
    assert out["event_time"].tolist() == [pd.Timestamp("2019-10-01 00:00", tz="UTC")]
    assert report.counts == {
        "bad_quantity": 3,
        "unparseable_price": 1,
        "nan_price": 1,
        "negative_price": 1,
    }
    assert report.examples["bad_quantity"] == [
        "shop.csv row 2: qty=''",
        "shop.csv row 3: qty='0'",
        "shop.csv row 7: qty='-1'",
    ]
    assert report.examples["unparseable_price"] == ["shop.csv row 4: total='abc'"]
    assert out["category_code"].tolist() == ["shoes"] and out["category_id"].iloc[0] > 0


def test_text_ids_hash_stably_and_integer_ids_are_kept() -> None:
    m = parse_mapping_option("kind=transactions,customer=c,timestamp=t,amount=a,product=p")
    df = pd.DataFrame(
        {
            "c": ["x", "y", "z"],
            "t": ["2019-10-01T00:00:00Z"] * 3,
            "a": ["1"] * 3,
            "p": ["AB-12", "AB-12", "000123"],
        }
    )
    out = validated(df, m, DropReport())
    ids = out["product_id"].tolist()
    assert ids[0] == ids[1] and ids[2] == 123 and 0 < ids[0] < 2**63
    again = validated(df.iloc[[1]], m, DropReport())
    assert again["product_id"].iloc[0] == ids[0]  # stable across chunks and runs


def test_clickstream_maps_event_names_and_counts_ignored_and_unknown() -> None:
    m = load_mapping(DOCS / "clickstream.toml")
    df = pd.DataFrame(
        {
            "uid": ["u1", "u1", "u1", "u1", "u1", "u2", "u2"],
            "t": [f"2019-10-01T0{i}:00:00+02:00" for i in range(7)],
            "action": ["click", "basket", "login", "order", "wishlist", "view", "unbasket"],
            "item": ["1", "1", None, "1", "2", "3", "3"],
            "item_price": ["9.5", "9.5", None, "9.5", "1", "2", "2"],
        }
    )
    report = DropReport()
    out = validated(df, m, report, strict=False)
    assert out["event_type"].tolist() == ["view", "cart", "purchase", "view", "remove_from_cart"]
    assert out["event_time"].iloc[0] == pd.Timestamp("2019-09-30 22:00", tz="UTC")
    assert report.counts == {"ignored_event_type": 1, "unknown_event_type": 1}
    assert report.examples["ignored_event_type"] == ["shop.csv row 3: action='login'"]
    assert report.examples["unknown_event_type"] == ["shop.csv row 5: event_type='wishlist'"]
    with pytest.raises(DataError, match=r"row 5 .*unknown_event_type.*'wishlist'"):
        validated(df, m, DropReport(), strict=True)


def test_unmapped_events_ignore_drops_unlisted_names_as_ignored() -> None:
    """A site with 19 event names used to list every unwanted one as ``ignore``."""
    m = parse_mapping_option(
        "kind=clickstream,customer=uid,timestamp=t,event=action,event.order=purchase,"
        "unmapped_events=ignore"
    )
    df = pd.DataFrame(
        {
            "uid": ["u1"] * 5,
            "t": [f"2019-10-01T0{i}:00:00Z" for i in range(5)],
            "action": ["view", "login", "order", "wishlist", None],
        }
    )
    report = DropReport()
    out = validated(df, m, report, strict=False)
    assert out["event_type"].tolist() == ["view", "purchase"]
    assert report.counts["ignored_event_type"] == 2  # login, wishlist
    assert "unknown_event_type" not in report.counts  # nothing unlisted is an error now
    assert sum(report.counts.values()) == 3  # the empty name is still a bad row


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind=clickstream,customer=u,timestamp=t,event=e,unmapped_events=skip", "is unknown"),
        ("kind=transactions,customer=u,timestamp=t,amount=a,unmapped_events=ignore", "not used"),
    ],
)
def test_unmapped_events_bad_values_say_what_to_use(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mapping_option(text)


def test_clickstream_without_prices_gets_price_zero() -> None:
    m = parse_mapping_option("kind=clickstream,customer=u,timestamp=t,event=e")
    df = pd.DataFrame({"u": ["a"], "t": ["2019-10-01T00:00:00Z"], "e": ["view"], "note": ["x"]})
    mapped = apply_mapping(df, m)
    assert mapped["price"].tolist() == [0.0] and mapped["note"].tolist() == ["x"]
    assert ISSUE_COLUMN not in mapped


def test_rees46_kind_renames_columns_and_drops_clashing_unmapped_ones() -> None:
    m = parse_mapping_option("kind=rees46,customer=visitor,amount=cost")
    df = pd.DataFrame(
        {
            "event_time": ["2019-10-01 00:00:00 UTC"],
            "event_type": ["view"],
            "cost": ["3"],
            "visitor": ["v"],
            "price": ["999"],
        }
    )
    out = validated(df, m, DropReport())
    assert out["price"].tolist() == [3.0] and out["user_id"].tolist() == ["v"]


def test_a_mapped_column_missing_from_the_file_is_an_error() -> None:
    m = parse_mapping_option("kind=transactions,customer=c,timestamp=t,amount=a,quantity=q")
    with pytest.raises(DataError, match=r"shop\.csv: the mapping says quantity='q'.*found c, t, a"):
        apply_mapping(pd.DataFrame({"c": [], "t": [], "a": []}), m, source="shop.csv")


def test_the_mapping_option_is_a_file_or_inline_text():
    inline = "kind=transactions,customer=cust_id,timestamp=ts,amount=total"
    assert mapping_option(None) is None
    assert mapping_option(inline) == parse_mapping_option(inline)
    path = DOCS / "transactions.toml"
    assert mapping_option(str(path)) == mapping_option(path) == load_mapping(path)


def test_columns_and_keep_duplicates_from_toml_and_text(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        'kind = "transactions"\ncolumns = ["c", "t", "a"]\ncustomer = "c"\ntimestamp = "t"\n'
        'amount = "a"\nkeep_duplicates = true\n'
    )
    mapping = load_mapping(path)
    assert mapping.columns == ("c", "t", "a") and mapping.keep_duplicates is True
    text = parse_mapping_option("kind=transactions,columns=c t a,customer=c,timestamp=t,amount=a")
    assert text.columns == ("c", "t", "a") and text.keep_duplicates is False


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kind=clickstream,customer=c,timestamp=t,event=e,keep_duplicates=true", "only applies"),
        ("kind=transactions,customer=c,timestamp=t,amount=a,keep_duplicates=yes", "true or false"),
        ("kind=transactions,customer=c,timestamp=t,amount=a,columns=c t c", "c more than once"),
        ("kind=transactions,customer=c,timestamp=t,amount=a,columns= ", "non-empty column names"),
        (
            "kind=transactions,customer=c,timestamp=t,amount=a,columns=c t a,format=parquet",
            "not Parquet",
        ),
    ],
)
def test_bad_columns_and_keep_duplicates(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_mapping_option(text)
