"""Customer-table mappings (fedmarket/data/ingest/table.py): keys, TOML and inline forms,
refusals; and the column checks that read a table (identifiers, levels, labels, ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.ingest import table as table_io
from fedmarket.data.ingest.mapping import load_mapping, mapping_option, parse_mapping_option
from fedmarket.data.ingest.table import TableMapping
from fedmarket.errors import ConfigError, DataError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "mappings"


def test_inline_table_mapping_lists_use_semicolons() -> None:
    m = parse_mapping_option(
        "kind=table,customer=ID,label=Response,numeric=Income; Recency,categorical=Education,"
        "csv_delimiter=tab,max_levels=12"
    )
    assert isinstance(m, TableMapping)
    assert (m.customer, m.label) == ("ID", "Response")
    assert m.numeric == ("Income", "Recency")
    assert m.categorical == ("Education",)
    assert m.max_levels == 12
    assert m.reader.csv_delimiter == "\t"  # reading options checked as for event exports


def test_toml_table_mapping(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'kind = "table"\ncustomer = "ID"\nlabel = "Response"\nattributes = "all"\n'
        'exclude = ["Dt_Customer", "Email"]\nretailer = "store"\n'
    )
    m = load_mapping(path)
    assert isinstance(m, TableMapping)
    assert (m.attributes, m.exclude, m.retailer) == ("all", ("Dt_Customer", "Email"), "store")
    assert mapping_option(str(path)) == m


def test_the_documented_example_loads() -> None:
    m = load_mapping(DOCS / "table.toml")
    assert isinstance(m, TableMapping)
    assert m.customer and m.label


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind=table,label=y,numeric=a", r"needs key 'customer'"),
        ("kind=table,customer=id,label=y", r"no attributes: list columns"),
        ("kind=table,customer=id,label=y,attributes=some", r"attributes='some'.*'all'"),
        ("kind=table,customer=id,label=y,numeric=a,categorical=a", r"'a' is in numeric and"),
        ("kind=table,customer=id,label=y,numeric=y", r"label column 'y' cannot also be in numeric"),
        ("kind=table,customer=id,label=id,numeric=a", r"must be different columns"),
        ("kind=table,customer=id,label=y,numeric=a,event=e", r"unknown key 'event' for kind=table"),
        ("kind=table,customer=id,label=y,numeric=a,max_levels=1", r"max_levels"),
        ("kind=table,customer=id,label=y,numeric=a,max_levels=x", r"max_levels must be an int"),
        ("kind=table,customer=id,label=y,numeric=a,encoding=nope", r"encoding='nope' is unknown"),
    ],
)
def test_bad_table_mappings_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mapping_option(text)


def test_unknown_kind_mentions_table() -> None:
    with pytest.raises(ConfigError, match="or table"):
        parse_mapping_option("kind=tables,customer=id")


def _rows(**columns: list) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame[table_io.WHERE_KEY] = [f"t.csv data row {i + 1}" for i in range(len(frame))]
    return frame


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["1", "yes", "0"], r"row 2: label column 'y' value 'yes' is not a number.*no -> 0"),
        (["1", None, "0"], r"row 2: label column 'y' is empty.*fill it"),
        (["1", "NA", "0"], r"row 2: .* is empty"),
        (["1", "-1", "0"], r"row 2: .*'-1' is negative"),
        (["1", "2.5", "0"], r"row 2: .*'2.5' is not a whole number.*0/1 \(bought or not\)"),
    ],
)
def test_bad_labels_are_refused_with_the_row_and_the_fix(values: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        table_io.labels(pd.Series(values), "y", _rows(y=values))


def test_labels_binary_count_and_boolean() -> None:
    rows = _rows(y=["0", "1", " 3 "])
    assert table_io.labels(rows["y"], "y", rows).tolist() == [0.0, 1.0, 3.0]
    flags = pd.Series([True, False])
    assert table_io.labels(flags, "y", _rows(y=[True, False])).tolist() == [1.0, 0.0]


def test_numbers_treat_na_words_as_missing_and_refuse_text() -> None:
    rows = _rows(a=["1.5", "", "NA", "n/a", "-2"])
    got = table_io.numbers(rows["a"], "a", rows)
    assert np.array_equal(got, [1.5, np.nan, np.nan, np.nan, -2.0], equal_nan=True)
    bad = _rows(a=["1", "lots"])
    with pytest.raises(DataError, match=r"row 2: numeric column 'a' holds 'lots'.*categorical"):
        table_io.numbers(bad["a"], "a", bad)


def test_customer_ids_missing_or_repeated_are_refused() -> None:
    rows = _rows(id=["a", "b", "a"])
    with pytest.raises(DataError, match=r"row 1 and .* row 3: customer id repeats"):
        table_io.customer_ids(rows["id"], "id", rows)
    rows = _rows(id=["a", ""])
    with pytest.raises(DataError, match=r"row 2: customer id is empty"):
        table_io.customer_ids(rows["id"], "id", rows)
    rows = _rows(id=[1.0, 2.0])
    with pytest.raises(DataError, match="holds decimals"):
        table_io.customer_ids(rows["id"], "id", rows)
    rows = _rows(id=[7, 12])
    assert table_io.customer_ids(rows["id"], "id", rows).tolist() == ["7", "12"]


def _mapping(**keys) -> TableMapping:
    return TableMapping(customer="id", label="y", **keys)


def test_type_inference_and_exclusion() -> None:
    rows = _rows(
        id=["1", "2", "3"],
        y=["0", "1", "0"],
        age=["31", "", "40"],
        city=["Bonn", "Köln", "Bonn"],
        code=["7", "8", "x"],
        joined=["2020-01-01", "2020-02-01", "2020-03-01"],
    )
    plan = table_io.plan_columns(
        {"r": rows}, _mapping(attributes="all", exclude=("joined",), categorical=("code",))
    )
    assert plan.numeric == ("age",)
    assert plan.categorical == ("code", "city")
    assert plan.inferred == {"age": "numeric", "city": "categorical"}
    assert plan.excluded == ("joined",)


@pytest.mark.parametrize("column", ["Email", "first_name", "Phone No", "street_address", "Surname"])
def test_identifier_named_columns_are_refused_unless_excluded(column: str) -> None:
    rows = _rows(id=["1", "2"], y=["0", "1"], age=["3", "4"], **{column: ["x", "y"]})
    with pytest.raises(
        DataError, match=rf"column '{column}' looks like a direct identifier.*exclude"
    ):
        table_io.plan_columns({"r": rows}, _mapping(attributes="all"))
    plan = table_io.plan_columns({"r": rows}, _mapping(attributes="all", exclude=(column,)))
    assert plan.numeric == ("age",)


def test_columns_of_email_addresses_are_refused_whatever_their_name() -> None:
    rows = _rows(id=["1", "2"], y=["0", "1"], contact=["a@b.com", "c.d@e.org"])
    with pytest.raises(DataError, match=r"'contact' looks like .*values are e-mail addresses"):
        table_io.plan_columns({"r": rows}, _mapping(categorical=("contact",)))


def test_too_many_levels_is_refused_naming_the_way_out() -> None:
    rows = _rows(id=list("abcd"), y=list("0101"), joined=["d1", "d2", "d3", "d4"])
    with pytest.raises(DataError, match=r"'joined' has 4 distinct values, more than max_levels=3"):
        table_io.plan_columns({"r": rows}, _mapping(attributes="all", max_levels=3))


def test_missing_columns_are_named() -> None:
    rows = _rows(id=["1"], y=["0"], age=["3"])
    with pytest.raises(DataError, match=r"numeric='income' but there is no such column; found"):
        table_io.plan_columns({"r": rows}, _mapping(numeric=("income",)))
