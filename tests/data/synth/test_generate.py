"""Tests for the synthetic retailer generator (fedmarket/data/synth*.py)."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedmarket.data.ingest.schema import (
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    RETAILER_COLUMN,
)
from fedmarket.data.synth.behaviour import CART, VIEW, Shoppers
from fedmarket.data.synth.catalog import CATEGORY_CODES, build_catalog, leaf_mix
from fedmarket.data.synth.generate import SYNTH_JSON, generate_retailers, plan_retailers
from fedmarket.data.synth.people import CITY_PREFIX, customer_table
from fedmarket.errors import ConfigError

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TINY = {"n_retailers": 2, "n_customers": 200, "days": 20, "seed": 7}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synth") / "raw"
    calls: list[int] = []
    summary = generate_retailers(out, **TINY, progress=calls.append)
    return out, summary, calls


def _events(summary, k: int) -> pd.DataFrame:
    return pd.read_parquet(summary.retailers[k].events_path)


def test_layout_schema_and_dtypes(tiny):
    out, summary, _ = tiny
    assert sorted(p.name for p in out.iterdir()) == ["retailer_00", "retailer_01", SYNTH_JSON]
    for k, r in enumerate(summary.retailers):
        assert r.events_path == out / f"retailer_{k:02d}" / "events.parquet"
        schema = pq.read_schema(r.events_path)
        assert schema.names == [*EVENT_COLUMNS, RETAILER_COLUMN]
        assert schema.field("event_time").type == pa.timestamp("ns", tz="UTC")
        for col in ("product_id", "category_id", "user_id"):
            assert schema.field(col).type == pa.int64()
        assert schema.field("price").type == pa.float64()
        df = _events(summary, k)
        assert len(df) == r.n_events > 0
        assert set(df["event_type"]) <= set(EVENT_TYPES)
        assert (df[RETAILER_COLUMN] == f"retailer_{k:02d}").all()
        assert df["user_session"].map(lambda s: bool(UUID.match(s))).all()
        assert df["category_id"].min() > 10**18  # REES46-style 19-digit ids
        assert df["category_code"].dropna().isin(CATEGORY_CODES).all()
        assert df["category_code"].isna().any() and df["brand"].isna().any()  # like REES46
        # A session belongs to exactly one customer.
        assert (df.groupby("user_session")["user_id"].nunique() == 1).all()


def test_times_sorted_within_period(tiny):
    _, summary, _ = tiny
    for k in range(2):
        t = _events(summary, k)["event_time"]
        assert t.is_monotonic_increasing
        assert t.min() >= pd.Timestamp("2019-10-01", tz="UTC")
        assert t.max() < pd.Timestamp("2019-10-21", tz="UTC")


def test_counts_summary_and_manifest_agree(tiny):
    out, summary, calls = tiny
    manifest = json.loads((out / SYNTH_JSON).read_text())
    assert manifest["status"] == "complete"
    assert manifest["parameters"] == {**TINY, "format": "parquet", "start": "2019-10-01"}
    for entry, r in zip(manifest["retailers"], summary.retailers, strict=True):
        df = pd.read_parquet(r.events_path)
        assert entry["event_counts"] == r.event_counts == df["event_type"].value_counts().to_dict()
        assert entry["profile"]["n_customers"] == r.n_customers
        assert len(entry["profile"]["promo_dates"]) == len(entry["profile"]["promo_days"])
    assert summary.total_events == sum(summary.event_counts.values())
    # Progress adds up to the customers simulated, which plan_retailers predicts.
    assert sum(calls) == summary.total_customers
    assert summary.total_customers == sum(p.n_customers for p in plan_retailers(2, 200, 20, 7))


def test_customers_table(tiny):
    _, summary, _ = tiny
    ids = []
    for k, r in enumerate(summary.retailers):
        customers = pd.read_csv(r.customers_path, dtype=str)
        assert list(customers.columns) == list(CUSTOMER_COLUMNS)
        assert len(customers) == r.n_customers and customers["user_id"].is_unique
        assert customers.notna().all().all()
        user_ids = customers["user_id"].astype("int64")
        event_users = set(_events(summary, k)["user_id"])
        assert event_users <= set(user_ids)
        ids.append(set(user_ids))
        birth = pd.to_datetime(customers["birth_date"], format="%Y-%m-%d")
        age = (pd.Timestamp("2019-10-01") - birth).dt.days / 365.25
        assert age.between(17.9, 93).all()
        assert customers["postcode"].str.fullmatch(r"\d{5}").all()
        assert (customers["postcode"].str[:2] == customers["city"].map(CITY_PREFIX)).all()
        assert set(customers["gender"]) <= {"F", "M", "X"}
        assert customers["email"].str.fullmatch(r"[a-z.]+\d+@example\.(com|org|net)").all()
    assert not ids[0] & ids[1]  # user ids are disjoint across retailers


def test_customers_without_events_exist(tmp_path: Path):
    out = generate_retailers(tmp_path / "r", 1, 300, 10, 3)
    r = out.retailers[0]
    buyers = set(pd.read_parquet(r.events_path, columns=["user_id"])["user_id"])
    assert 0 < len(buyers) < r.n_customers


def test_event_mix_and_prices_plausible(tiny):
    _, summary, _ = tiny
    counts = summary.event_counts
    total = sum(counts.values())
    assert counts["view"] / total > 0.88
    assert 0.01 < counts["cart"] / total < 0.08
    assert 0.003 < counts["purchase"] / total < 0.04
    assert 0 < counts["remove_from_cart"] < counts["cart"]
    for k in range(2):
        df = _events(summary, k)
        price = df["price"]
        assert (price > 0).all()
        assert np.allclose(price, price.round(2))
        assert price.mean() > 1.3 * price.median()  # heavy right tail
        per_user = df.groupby("user_id").size()
        assert per_user.mean() > 1.5 * per_user.median()  # heavy-tailed activity


def test_purchases_follow_view_and_cart_of_same_product(tiny):
    _, summary, _ = tiny
    for k in range(2):
        df = _events(summary, k).reset_index(drop=True)
        df["row"] = df.index
        for earlier in ("cart", "view"):
            pairs = df[df["event_type"] == "purchase"].merge(
                df[df["event_type"] == earlier][["user_id", "product_id", "row"]],
                on=["user_id", "product_id"],
                suffixes=("", "_before"),
            )
            preceded = pairs[pairs["row_before"] < pairs["row"]]["row"].nunique()
            assert preceded == summary.retailers[k].event_counts["purchase"]


def test_same_seed_same_bytes_and_retailers_independent_of_count(tmp_path):
    args = {"n_customers": 120, "days": 8, "seed": 11}
    a = generate_retailers(tmp_path / "a", n_retailers=2, **args)
    b = generate_retailers(tmp_path / "b", n_retailers=2, **args)
    for ra, rb in zip(a.retailers, b.retailers, strict=True):
        assert ra.events_path.read_bytes() == rb.events_path.read_bytes()
        assert ra.customers_path.read_bytes() == rb.customers_path.read_bytes()
    assert (tmp_path / "a" / SYNTH_JSON).read_bytes() == (tmp_path / "b" / SYNTH_JSON).read_bytes()
    c = generate_retailers(tmp_path / "c", n_retailers=3, **args)
    assert c.retailers[1].events_path.read_bytes() == a.retailers[1].events_path.read_bytes()
    d = generate_retailers(tmp_path / "d", n_retailers=2, **{**args, "seed": 12})
    assert d.retailers[0].events_path.read_bytes() != a.retailers[0].events_path.read_bytes()


def test_csv_matches_parquet_in_rees46_text_format(tmp_path):
    args = {"n_retailers": 1, "n_customers": 150, "days": 6, "seed": 5}
    parquet = generate_retailers(tmp_path / "p", **args).retailers[0]
    csv = generate_retailers(tmp_path / "c", fmt="csv", **args).retailers[0]
    assert csv.events_path.name == "events.csv"
    lines = csv.events_path.read_text().splitlines()
    assert lines[0] == ",".join([*EVENT_COLUMNS, RETAILER_COLUMN])
    assert re.match(
        r"^2019-10-0\d \d\d:\d\d:\d\d UTC,(view|cart|remove_from_cart|purchase),\d+,", lines[1]
    )
    assert '"' not in "".join(lines)
    from_csv = pd.read_csv(csv.events_path, dtype={"category_code": str, "brand": str})
    from_parquet = pd.read_parquet(parquet.events_path)
    assert len(from_csv) == len(from_parquet) == parquet.n_events
    parsed = pd.to_datetime(from_csv["event_time"], format="%Y-%m-%d %H:%M:%S UTC", utc=True)
    pd.testing.assert_series_equal(parsed, from_parquet["event_time"], check_dtype=False)
    for col in ("product_id", "category_id", "user_id", "price", "user_session", "brand"):
        pd.testing.assert_series_equal(from_csv[col], from_parquet[col], check_dtype=False)


def test_retailers_differ():
    profiles = plan_retailers(10, 1000, 60, seed=0)
    sizes = np.array([p.n_customers for p in profiles])
    assert sizes.min() >= 500 and sizes.max() <= 1500 and len(set(sizes)) == 10
    levels = [p.price_level for p in profiles]
    assert max(levels) / min(levels) > 1.3
    assert max(p.cart_rate for p in profiles) - min(p.cart_rate for p in profiles) > 0.05
    mixes = np.array([p.top_mix_array for p in profiles])
    assert (mixes.argmax(axis=1) != mixes[0].argmax()).any()
    assert all(1 <= len(p.promo_days) <= 4 for p in profiles)
    assert len({p.weekly for p in profiles}) == 10
    assert plan_retailers(10, 1000, 60, seed=0) == profiles


def test_price_level_scales_catalogue_prices():
    rng = np.random.default_rng(0)
    mix = leaf_mix(np.full(13, 1 / 13), rng)
    cheap = build_catalog(np.random.default_rng(1), mix, 20_000, 1.0, 0.1, 0.1)
    dear = build_catalog(np.random.default_rng(1), mix, 20_000, 1.5, 0.1, 0.1)
    ratio = np.exp(np.log(dear.price).mean() - np.log(cheap.price).mean())
    assert ratio == pytest.approx(1.5, rel=0.01)
    assert cheap.price.mean() > 1.3 * np.median(cheap.price)


def _simulate(profile, n: int, days: int, seed: int) -> np.ndarray:
    """Event-type counts of one retailer simulated in memory (no files)."""
    rng = np.random.default_rng(seed)
    mix = leaf_mix(profile.top_mix_array, rng)
    catalog = build_catalog(rng, mix, 300, profile.price_level, 0.1, 0.1)
    shoppers = Shoppers(rng, n, profile, mix, first_weekday=0)
    counts = np.zeros(4, int)
    for day in range(days):
        counts += np.bincount(shoppers.simulate_day(day, catalog, rng).event, minlength=4)
    return counts


def test_cart_rate_drives_conversion():
    base = plan_retailers(1, 1500, 30, seed=3)[0]
    low = _simulate(dataclasses.replace(base, cart_rate=0.12), 1500, 30, seed=1)
    high = _simulate(dataclasses.replace(base, cart_rate=0.30), 1500, 30, seed=1)
    assert high[CART] / high[VIEW] > 1.8 * low[CART] / low[VIEW]
    assert high[3] / high[VIEW] > 1.5 * low[3] / low[VIEW]


def test_sequence_signal_recent_cart_predicts_purchase(tmp_path):
    """Same number of carts, different timing: a cart in the last 2 days before the cut-off
    must predict a purchase in the next 7 days far better than carts weeks ago.

    The comparison is count-matched: the old-cart buy rate is averaged with the recent
    group's distribution of cart counts, so totals alone cannot explain the difference.
    """
    summary = generate_retailers(tmp_path / "s", n_retailers=1, n_customers=3000, days=45, seed=2)
    df = pd.read_parquet(
        summary.retailers[0].events_path, columns=["event_time", "event_type", "user_id"]
    )
    day = (df["event_time"] - pd.Timestamp("2019-10-01", tz="UTC")).dt.days
    cut = 38
    buyers = df.loc[(day >= cut) & (df["event_type"] == "purchase"), "user_id"].unique()
    carts = df[(day < cut) & (df["event_type"] == "cart")].assign(day=day)
    per_user = carts.groupby("user_id")["day"].agg(["count", "max"])
    per_user = per_user[per_user["count"] <= 4].assign(buy=lambda t: t.index.isin(buyers))
    recent = per_user[per_user["max"] >= cut - 2]
    old = per_user[per_user["max"] < cut - 14]
    assert len(recent) >= 40 and len(old) >= 300
    old_rate_by_count = old.groupby("count")["buy"].mean()
    matched_old_rate = recent["count"].map(old_rate_by_count).mean()
    assert recent["buy"].mean() > 0.3
    assert recent["buy"].mean() > 3 * matched_old_rate


def test_k_anonymity_suppresses_a_minority():
    n = 5000
    table = customer_table(np.random.default_rng(0), np.arange(n), "Köln", date(2019, 10, 1))
    df = table.to_pandas()
    age_band = (pd.Timestamp("2019-10-01") - pd.to_datetime(df["birth_date"])).dt.days // 3652
    sizes = df.groupby([age_band, df["postcode"].str[:2], df["gender"]])["user_id"].transform(
        "size"
    )
    suppressed = (sizes < 5).mean()
    assert 0.01 < suppressed < 0.25
    assert df["city"].nunique() > 20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_retailers": 0}, "--retailers"),
        ({"n_customers": -5}, "--customers"),
        ({"days": 0}, "--days"),
        ({"days": 2.5}, "--days"),
        ({"n_retailers": True}, "--retailers"),
        ({"seed": -1}, "--seed"),
        ({"fmt": "json"}, "--format"),
        ({"start": "2019-13-01"}, "--start"),
        ({"new_products": 1.5}, "--new-products"),
        ({"new_products": -0.1}, "--new-products"),
        ({"new_products": float("nan")}, "--new-products"),
        ({"new_products": 0.1, "launch_from": 1.0}, "--launch-from"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_retailers(tmp_path / "out", **{"n_customers": 10, "days": 2, **kwargs})
    assert not (tmp_path / "out").exists()  # nothing written before the arguments are checked


def test_output_directory_policy(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "important.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not written by `fedmarket data synth`"):
        generate_retailers(foreign, 1, 10, 2)
    assert (foreign / "important.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        generate_retailers(tmp_path / "file", 1, 10, 2)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / SYNTH_JSON).write_text('{"generator": "something else"}')
    with pytest.raises(ConfigError, match="not written by"):
        generate_retailers(fake, 1, 10, 2)

    # A tampered synth.json cannot make the generator delete outside its retailer folders.
    sneaky = tmp_path / "nest" / "sneaky"
    sneaky.mkdir(parents=True)
    (tmp_path / "nest" / "events.csv").write_text("precious")
    entries = [{"dir": ".."}, {"dir": "../.."}, {"dir": "/"}, "junk"]
    (sneaky / SYNTH_JSON).write_text(
        json.dumps({"generator": "fedmarket data synth", "retailers": entries})
    )
    generate_retailers(sneaky, 1, 10, 2)
    assert (tmp_path / "nest" / "events.csv").read_text() == "precious"

    # A directory synth wrote is regenerated in place; unrelated files survive.
    out = tmp_path / "own"
    generate_retailers(out, 3, 10, 2)
    (out / "notes.md").write_text("mine")
    second = generate_retailers(out, 2, 10, 2, fmt="csv")
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.md",
        "retailer_00",
        "retailer_01",
        SYNTH_JSON,
    ]
    assert sorted(p.name for p in (out / "retailer_00").iterdir()) == [
        "customers.csv",
        "events.csv",
    ]
    assert second.total_events > 0
