"""The one pass of `data prepare` (fedmarket/data/event_pass.py): same output as two passes.

The reference is the old order of work: the exact latest valid event from a full validating
pass (``event_pass.last_event_time``), its default cut-off, then preparation with that cut-off
given explicitly (which reads the events once, in that window).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedmarket.data import event_pass, features, store
from fedmarket.data.ingest import loaders, peek
from fedmarket.data.ingest import mapping as mapping_module
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.prepare import PrepareOptions, PrepareResult, prepare
from fedmarket.data.synth.generate import generate_retailers
from fedmarket.errors import DataError

KEY = hashlib.sha256(b"fedmarket test pseudonym key").digest()
WINDOW = {"window_days": 28, "step_days": 7, "horizon_days": 7}


def options(raw: Path, out: Path, **kw) -> PrepareOptions:
    return PrepareOptions(raw=raw, out=out, pseudonym_key=KEY, **{**WINDOW, **kw})


def two_pass_reference(raw: Path, out: Path) -> PrepareResult:
    opts = options(raw, out)
    last = event_pass.last_event_time(loaders.find_exports(raw), opts)
    cutoff = features.default_cutoff(last, opts.horizon_days)
    return prepare(options(raw, out, cutoff=cutoff.isoformat()))


def assert_same_prepared(a: PrepareResult, b: PrepareResult) -> None:
    ignore = {"created_at", "source"}
    assert {k: v for k, v in a.manifest.items() if k not in ignore} == {
        k: v for k, v in b.manifest.items() if k not in ignore
    }
    for pid in store.partition_ids(a.manifest):
        for split in store.SPLITS:
            x, y = store.load_split(a.out, pid, split), store.load_split(b.out, pid, split)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
    for table in sorted((a.out / "customers").iterdir()):
        pd.testing.assert_frame_equal(
            pd.read_parquet(table), pd.read_parquet(b.out / "customers" / table.name)
        )


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("event_pass") / "raw"
    generate_retailers(out, n_retailers=2, n_customers=120, days=42, seed=3)
    return out


def test_one_pass_equals_the_two_pass_reference(raw: Path, tmp_path: Path) -> None:
    calls = []
    real = event_pass.scan_retailer

    def counted(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(event_pass, "scan_retailer", counted)
        mp.setattr(event_pass, "_validated_latest", pytest.fail)  # no validating first pass
        one = prepare(options(raw, tmp_path / "one"))
    assert calls == ["retailer_00", "retailer_01"]  # each retailer's events read once
    assert_same_prepared(one, two_pass_reference(raw, tmp_path / "two"))


def add_invalid_late_rows(src: Path, dst: Path) -> pd.Timestamp:
    """Rows three days after the end that validation drops; returns their time."""
    table = pq.read_table(src)
    late = table.slice(0, 5).to_pandas()
    when = table.column("event_time").to_pandas().max() + pd.Timedelta(days=3)
    late["event_time"] = when
    late["event_type"] = "bogus"  # unknown_event_type: parseable time, invalid row
    more = pa.Table.from_pandas(late, schema=table.schema, preserve_index=False)
    pq.write_table(pa.concat_tables([table, more]), dst)
    return when


def test_invalid_latest_rows_make_a_second_pass_with_the_exact_cutoff(
    raw: Path, tmp_path: Path
) -> None:
    dirty = tmp_path / "raw"
    shutil.copytree(raw, dirty)
    path = dirty / "retailer_01" / "events.parquet"
    late = add_invalid_late_rows(raw / "retailer_01" / "events.parquet", path)
    assert peek.latest_event_ns(path) == late.value  # the bound sees the invalid rows ...
    calls = []
    real = event_pass.scan_retailer

    def counted(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(event_pass, "scan_retailer", counted)
        one = prepare(options(dirty, tmp_path / "one"))
    assert len(calls) == 4  # ... so the pass ran again, with the exact cut-off
    reference = two_pass_reference(dirty, tmp_path / "two")
    assert_same_prepared(one, reference)
    assert pd.Timestamp(one.manifest["window"]["cutoff"]) < late.normalize() - pd.Timedelta(days=2)
    assert one.manifest["dropped_rows"]["dropped"]["unknown_event_type"] == 5


def test_latest_event_is_the_bound_without_a_mapping_and_exact_with_one(
    raw: Path, tmp_path: Path
) -> None:
    dirty = tmp_path / "raw"
    shutil.copytree(raw, dirty)
    late = add_invalid_late_rows(
        raw / "retailer_01" / "events.parquet", dirty / "retailer_01" / "events.parquet"
    )
    exports = loaders.find_exports(dirty)
    exact = event_pass.last_event_time(exports, options(dirty, tmp_path / "out"))
    assert exact < late
    assert event_pass.latest_event(exports, None, 1000) == late  # the bound counts bad rows
    mapping = mapping_module.parse_mapping_option("kind=rees46")
    drops = DropReport()
    assert event_pass.latest_event(exports, mapping, 1000, drops=drops) == exact
    assert drops.counts == {"unknown_event_type": 5}


def test_latest_event_is_none_when_no_row_is_valid(tmp_path: Path) -> None:
    raw = tiny_export(tmp_path / "raw", october(12))  # no time zone: every row dropped
    drops = DropReport()
    assert event_pass.latest_event(loaders.find_exports(raw), None, 5, drops=drops) is None
    assert drops.counts == {"missing_timezone": 12}
    with pytest.raises(DataError, match="all 12 of 12 rows were dropped"):
        prepare(options(raw, tmp_path / "out"))


def test_prepare_cuts_off_at_the_latest_event(raw: Path, tmp_path: Path, monkeypatch) -> None:
    """`data prepare`'s default cut-off is made from ``latest_event`` (scoring's default date
    is too: tests/scoring/test_featurise.py), so the two cannot drift apart."""
    seen = []

    def spy(exports, mapping, chunksize, **kw):
        seen.append(event_pass_latest(exports, mapping, chunksize, **kw))
        return seen[-1]

    event_pass_latest = event_pass.latest_event
    monkeypatch.setattr(event_pass, "latest_event", spy)
    result = prepare(options(raw, tmp_path / "out"))
    assert len(seen) == 1
    expected = features.default_cutoff(seen[0], WINDOW["horizon_days"])
    assert pd.Timestamp(result.manifest["window"]["cutoff"]) == expected


def test_explicit_cutoff_reads_no_bound(raw: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(peek, "latest_event_ns", pytest.fail)
    result = prepare(options(raw, tmp_path / "out", cutoff="2019-11-01"))
    assert result.manifest["window"]["cutoff"] == "2019-11-01T00:00:00+00:00"


# --- exports that fail as a whole: the error says why, where, and what to change ---------------

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def tiny_export(root: Path, times: list[str], *, name: str = "events.csv") -> Path:
    """One retailer "shop" whose customer i % 8 views (every 5th row: buys) at ``times[i]``."""
    shop = root / "shop"
    shop.mkdir(parents=True)
    rows = [
        f"{t},{'purchase' if i % 5 == 0 else 'view'},1,2,,,9.5,{i % 8},s{i}"
        for i, t in enumerate(times)
    ]
    (shop / name).write_text("\n".join([HEADER, *rows]) + "\n")
    return root


def october(n: int, fmt: str = "2019-10-{day:02d} {hour:02d}:00:00") -> list[str]:
    return [fmt.format(day=1 + i % 30, hour=i % 24) for i in range(n)]


@pytest.mark.parametrize("cutoff", [None, "2019-10-20"])
def test_naive_times_show_the_drops_by_reason_an_example_and_the_fix(
    tmp_path: Path, cutoff: str | None
) -> None:
    raw = tiny_export(tmp_path / "raw", october(120))
    with pytest.raises(DataError) as caught:
        prepare(options(raw, tmp_path / "out", cutoff=cutoff))
    message = str(caught.value)
    assert (
        "no valid events: all 120 of 120 rows were dropped: missing_timezone 120 (e.g. " in message
    )
    assert "shop/events.csv row 1: event_time='2019-10-01 00:00:00')" in message
    assert (
        'Fix: missing_timezone: describe the export with --mapping "kind=rees46,assume_tz=UTC"'
        in message
    )
    assert not (tmp_path / "out").exists()


def test_with_a_mapping_the_fix_names_the_mapping_setting(tmp_path: Path) -> None:
    raw = tiny_export(tmp_path / "raw", october(40, "201910{day:02d}"))  # dates, no zone
    mapping = mapping_module.parse_mapping_option("kind=rees46")
    with pytest.raises(DataError) as caught:
        prepare(options(raw, tmp_path / "out", mapping=mapping))
    message = str(caught.value)
    assert "all 40 of 40 rows were dropped: missing_timezone 40" in message
    assert "event_time='20191001'" in message
    assert 'Fix: missing_timezone: add assume_tz = "UTC" to the mapping' in message


def test_an_unknown_format_names_timestamp_format(tmp_path: Path) -> None:
    raw = tiny_export(tmp_path / "raw", october(40, "{day:02d}/10/2019 {hour:02d}:00"))
    with pytest.raises(DataError) as caught:
        prepare(options(raw, tmp_path / "out"))
    message = str(caught.value)
    assert "all 40 of 40 rows were dropped: unparseable_timestamp 40" in message
    assert "row 1: event_time='01/10/2019 00:00'" in message
    assert (
        'describe the export with --mapping "kind=rees46,'
        'timestamp_format=%d/%m/%Y %H:%M,assume_tz=UTC"'
    ) in message


@pytest.mark.parametrize(
    ("fmt", "setting"),
    [
        ("201910{day:02d}", "assume_tz=UTC"),
        ("{day:02d}/10/2019 {hour:02d}:00", "timestamp_format=%d/%m/%Y %H:%M,assume_tz=UTC"),
    ],
)
def test_the_advised_mapping_prepares_the_export(tmp_path: Path, fmt: str, setting: str) -> None:
    raw = tiny_export(tmp_path / "raw", october(240, fmt))
    mapping = mapping_module.parse_mapping_option(f"kind=rees46,{setting}")
    result = prepare(options(raw, tmp_path / "out", mapping=mapping))
    assert result.manifest["dropped_rows"]["rows_kept"] == 240


def test_mixed_reasons_are_counted_with_the_commonest_first(tmp_path: Path) -> None:
    times = october(30) + ["not a time"] * 10
    raw = tiny_export(tmp_path / "raw", times)
    with pytest.raises(DataError) as caught:
        prepare(options(raw, tmp_path / "out"))
    message = str(caught.value)
    assert "all 40 of 40 rows were dropped: missing_timezone 30 (e.g." in message
    assert (
        "; unparseable_timestamp 10 (e.g. " in message
        and "row 31: event_time='not a time'" in message
    )


def test_a_window_that_misses_the_data_names_the_data_span(tmp_path: Path) -> None:
    raw = tiny_export(
        tmp_path / "raw", [t + "Z" for t in october(120, "2019-10-{day:02d}T{hour:02d}:00:00")]
    )
    with pytest.raises(DataError) as caught:
        prepare(options(raw, tmp_path / "out", cutoff="2020-01-01"))
    message = str(caught.value)
    assert message.startswith(
        "retailer shop: no customer has an event in the feature window "
        "[2019-12-04T00:00:00+00:00, 2020-01-01T00:00:00+00:00) (cut-off 2020-01-01, "
        "--window-days 28); the data has valid events from 2019-10-01T00:00:00+00:00 to "
        "2019-10-30T23:00:00+00:00. Pass a --cutoff inside that span (e.g. --cutoff 2019-10-24"
    )
    assert "or a longer --window-days" in message


@pytest.mark.parametrize(("cutoff", "covered"), [("2019-10-28", 3), ("2019-10-31", 0)])
def test_a_horizon_past_the_last_event_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cutoff: str, covered: int
) -> None:
    raw = tiny_export(
        tmp_path / "raw", [t + "Z" for t in october(240, "2019-10-{day:02d}T{hour:02d}:00:00")]
    )
    with caplog.at_level("WARNING", logger="fedmarket"):
        prepare(options(raw, tmp_path / "out", cutoff=cutoff))
    assert (
        f"labels cover only {covered} of the 7 horizon days: cut-off {cutoff} plus 7 days"
        in caplog.text
    )
    assert "the last valid event is at 2019-10-30T23:00:00+00:00" in caplog.text
    assert "pass --cutoff 2019-10-24 (or earlier)" in caplog.text


def test_a_covered_horizon_says_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = tiny_export(
        tmp_path / "raw", [t + "Z" for t in october(240, "2019-10-{day:02d}T{hour:02d}:00:00")]
    )
    with caplog.at_level("WARNING", logger="fedmarket"):
        prepare(options(raw, tmp_path / "out", cutoff="2019-10-24"))
    assert "labels cover only" not in caplog.text


def clickstream_shops(root: Path, chunks: int = 1) -> Path:
    """Two shops whose site names a cart-page view "cart"; 6 + 6 such rows in all."""
    for shop in ("a", "b"):
        lines = ["uid,t,action"]
        for i in range(30):
            action = ("page_view", "cart", "order", "page_view", "page_view")[i % 5]
            lines.append(f"u{i % 7},2019-10-{1 + i % 28:02d}T10:00:00Z,{action}")
        (root / shop).mkdir(parents=True)
        (root / shop / "events.csv").write_text("\n".join(lines) + "\n")
    return root


CLICKS = "kind=clickstream,customer=uid,timestamp=t,event=action,event.page_view=view,"


@pytest.mark.parametrize("chunksize", [500_000, 4])
def test_an_unlisted_own_event_name_is_warned_once_with_its_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunksize: int
) -> None:
    raw = clickstream_shops(tmp_path / "raw")
    mapping = mapping_module.parse_mapping_option(CLICKS + "event.order=purchase")
    with caplog.at_level("WARNING", logger="fedmarket"):
        result = prepare(
            options(
                raw, tmp_path / "out", mapping=mapping, cutoff="2019-10-22", chunksize=chunksize
            )
        )
    warnings = [r.getMessage() for r in caplog.records if "event name" in r.getMessage()]
    assert warnings == [
        "the export's event name 'cart' (12 rows) is not listed in the mapping's "
        "[event_names], so it is read as fedmarket's own 'cart'; if it means something else "
        'on your site, list it: cart = "view" or cart = "ignore" in [event_names] (inline: '
        'event.cart=ignore), or cart = "cart" to confirm it and silence this warning'
    ]
    assert result.manifest["dropped_rows"]["unlisted_own_event_names"] == {"cart": 12}
    assert result.manifest["retailers"]["a"]["dropped_rows"]["unlisted_own_event_names"] == {
        "cart": 6
    }


def test_a_listed_own_event_name_or_a_mapping_without_names_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = clickstream_shops(tmp_path / "raw")
    listed = mapping_module.parse_mapping_option(CLICKS + "event.order=purchase,event.cart=view")
    with caplog.at_level("WARNING", logger="fedmarket"):
        result = prepare(options(raw, tmp_path / "o1", mapping=listed, cutoff="2019-10-22"))
    assert "event name" not in caplog.text
    assert "unlisted_own_event_names" not in result.manifest["dropped_rows"]
    # The carts are views now: none left in the features.
    split = store.load_pooled(result.out, "train")
    assert split.agg[:, features.AGGREGATE_NAMES.index("carts")].sum() == 0
