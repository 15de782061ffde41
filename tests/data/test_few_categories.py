"""The few-rows path of ``CategoryHistoryBuilder`` (``few_categories``) against the general one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import few_categories, few_rows
from fedmarket.data.categories import CategoryHistories, CategoryHistoryBuilder
from fedmarket.data.features import FeatureWindow
from fedmarket.data.ingest.schema import EVENT_TYPES

CUTOFFS = [pd.Timestamp(d, tz="UTC") for d in ("2019-11-15", "2019-11-22", "2019-12-01")]
DAY = 86_400 * 10**9
CODES = np.array(["electronics.audio", "electronics.phone", "kids", "apparel.shoes.boot", None])
BRANDS = np.array(["sony", "lego", "None", "", None])  # "None" the text, None missing


def events(rng: np.random.Generator, n: int, *, arrow: bool = True) -> pd.DataFrame:
    """n validated events over 80 days around the cut-offs, at midnights so that many of a
    customer's events tie on time and type (the order then rests on the code and brand
    hashes): several customers (one with a single event), every type, times at the window's
    and horizon's edges, missing codes and brands."""
    base = CUTOFFS[0].value - 60 * DAY
    ns = base + rng.integers(0, 80, n) * DAY
    edges = [
        c.value + off for c in CUTOFFS for off in (-56 * DAY, -1, 0, 7 * DAY - 1, 7 * DAY, -1 * DAY)
    ]
    k = min(n, len(edges))
    ns[:k] = rng.choice(edges, k, replace=False)
    users = rng.integers(0, max(n // 10, 3), n).astype(str).astype(object)
    users[-1] = "lone"
    strings = "string[pyarrow]" if arrow else "string[python]"
    return pd.DataFrame(
        {
            "event_time": pd.to_datetime(ns, utc=True),
            "event_type": pd.array(rng.choice(EVENT_TYPES, n), dtype=strings),
            "product_id": rng.integers(0, 50, n),
            "category_id": rng.integers(0, 6, n),
            "category_code": pd.array(rng.choice(CODES, n), dtype=strings),
            "brand": pd.array(rng.choice(BRANDS, n), dtype=strings),
            "price": np.round(rng.uniform(0, 300, n), 2),
            "user_id": pd.array(users, dtype=strings),
            "user_session": pd.array(["s"] * n, dtype=strings),
        }
    )


def build(
    chunks: list[pd.DataFrame],
    cutoff: pd.Timestamp,
    length: int,
    customers: np.ndarray,
    *,
    general: bool,
) -> CategoryHistories:
    builder = CategoryHistoryBuilder(FeatureWindow(cutoff), length, few_rows=True)
    for chunk in chunks:
        builder.add(chunk)
    if not general:
        return builder.finish(customers)
    original, few_categories.read = few_categories.read, lambda _chunk: None
    try:  # what ``finish`` does when few_categories declines the chunk
        return builder.finish(customers)
    finally:
        few_categories.read = original


def assert_same(a: CategoryHistories, b: CategoryHistories) -> None:
    for name in ("customer", "codes", "etypes", "brands", "n_events"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    pd.testing.assert_frame_equal(a.seen, b.seen)
    assert a.targets == b.targets


def customers_of(df: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Most of the frame's customers and one it does not hold, in a random order."""
    users = sorted(set(df["user_id"].astype(str)))
    picked = rng.choice(users, size=max(1, len(users) * 3 // 4), replace=False)
    return rng.permutation(np.array([*picked, "stranger"], dtype=object))


@pytest.mark.parametrize("n", [1, 2, 7, 30, 241, 1500, 4096, 6000])
def test_few_rows_path_equals_general_path(n: int) -> None:
    """Seeded random frames, three cut-offs, history lengths 1, 3 and 20 (20 only from 1,500
    rows, to keep it fast), Arrow or Python strings: exactly the general path's histories,
    seen pairs and targets (6,000 rows are more than a few: both take the general path)."""
    rng = np.random.default_rng(n)
    for arrow in (True, False):
        df = events(rng, n, arrow=arrow)
        who = customers_of(df, rng)
        assert (few_categories.read(df) is not None) == (n <= few_rows.SMALL_ROWS)
        for cutoff in CUTOFFS:
            for length in (1, 3, 20) if n < 1500 else (20,):
                want = build([df], cutoff, length, who, general=True)
                assert_same(build([df], cutoff, length, who, general=False), want)
                if arrow:  # two chunks are folded by the general path: the same again
                    halves = [df.iloc[: n // 2], df.iloc[n // 2 :]]
                    assert_same(build(halves, cutoff, length, who, general=False), want)


def test_ties_on_time_and_type_are_broken_by_the_general_paths_hashes() -> None:
    t = CUTOFFS[0] - pd.Timedelta(days=1)
    df = pd.DataFrame(
        {
            "event_time": [t] * 4,
            "event_type": ["view"] * 4,
            "category_code": ["b.b", "a.a", "c", "a.a"],
            "brand": [None, "z", "y", "None"],
            "user_id": ["u"] * 4,
        }
    ).astype({"event_type": "string", "category_code": "string", "brand": "string"})
    who = np.array(["u"], dtype=object)
    want = build([df], CUTOFFS[0], 4, who, general=True)
    got = build([df], CUTOFFS[0], 4, who, general=False)
    assert_same(got, want)
    assert sorted(got.codes[0].tolist()) == ["a.a", "a.a", "b.b", "c"]  # all four, some order
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):  # row order changes no history
        other = build([df.iloc[perm]], CUTOFFS[0], 4, who, general=False)
        assert_same(other, build([df.iloc[perm]], CUTOFFS[0], 4, who, general=True))
        np.testing.assert_array_equal(other.codes, want.codes)
        np.testing.assert_array_equal(other.brands, want.brands)


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(user_id=df["user_id"].astype(int).astype(object)),  # not text
        lambda df: df.assign(event_time=df["event_time"].dt.tz_localize(None)),
        lambda df: df.assign(event_time=df["event_time"].astype("datetime64[us, UTC]")),
        lambda df: df.drop(columns="category_code"),
    ],
)
def test_other_columns_go_to_the_general_path(change) -> None:
    df = events(np.random.default_rng(3), 40)
    df = change(df.assign(user_id=df["user_id"].str.replace("lone", "7")))
    assert few_categories.read(df) is None
    who = np.array(sorted(set(df["user_id"])), dtype=object)
    if "category_code" not in df.columns:
        got = build([df], CUTOFFS[0], 3, who, general=False)
        assert got.n_events.tolist() == [0] * len(who)  # no taxonomy, no item
        return
    if df["event_time"].dt.tz is None:
        return  # the general path's own error for naive times is not this path's concern
    assert_same(
        build([df], CUTOFFS[0], 3, who, general=False),
        build([df], CUTOFFS[0], 3, who, general=True),
    )


def test_unknown_event_types_and_no_brand_column() -> None:
    df = events(np.random.default_rng(4), 60).drop(columns="brand")
    types = df["event_type"].astype(object).to_numpy().copy()
    types[::7] = "teleport"
    types[::11] = None
    df["event_type"] = pd.Series(types, dtype=object)
    assert few_categories.read(df) is not None
    who = customers_of(df, np.random.default_rng(0))
    for cutoff in CUTOFFS:
        assert_same(
            build([df], cutoff, 5, who, general=False), build([df], cutoff, 5, who, general=True)
        )


def test_prepare_never_takes_the_few_rows_path() -> None:
    """The few-rows path builds the categories alone; ``data prepare`` (few_rows off, the
    default) also needs the next-products fields, even from a single small chunk."""
    chunk = events(np.random.default_rng(7), 40)
    customers = chunk["user_id"].astype(str).unique()
    builder = CategoryHistoryBuilder(FeatureWindow(CUTOFFS[0]), 5)
    builder.add(chunk)
    out = builder.finish(customers)
    assert out.products is not None and out.described is not None
