"""The few-rows path of ``SequenceBuilder`` (``few_rows.read``) against the general path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import few_rows
from fedmarket.data.features import CustomerFeatures, FeatureWindow, SequenceBuilder
from fedmarket.data.ingest.schema import EVENT_TYPES, RETAILER_COLUMN
from fedmarket.errors import DataError

CUTOFFS = [pd.Timestamp(d, tz="UTC") for d in ("2019-11-15", "2019-11-22", "2019-12-01")]
NAMES = ("customer", "X", "agg", "y_purchase", "y_count", "y_active")
DAY = 86_400 * 10**9


def events(rng: np.random.Generator, n: int, *, arrow: bool = True) -> pd.DataFrame:
    """n validated events over 80 days around the cut-offs: every type, several customers
    (one with a single event), times at the window's and horizon's edges, missing sessions
    and categories."""
    base = CUTOFFS[0].value - 60 * DAY
    ns = base + rng.integers(0, 80 * DAY // 10**9, n) * 10**9
    edges = [
        c.value + off for c in CUTOFFS for off in (-56 * DAY, -1, 0, 7 * DAY - 1, 7 * DAY, -2 * DAY)
    ]
    k = min(n, len(edges))
    ns[:k] = rng.choice(edges, k, replace=False)
    users = rng.integers(0, max(n // 10, 3), n).astype(str).astype(object)
    users[-1] = "lone"  # a customer with one event
    sessions = rng.choice(np.array(["s1", "s2", "s3", "s4", None], dtype=object), n)
    strings = "string[pyarrow]" if arrow else "string[python]"
    df = pd.DataFrame(
        {
            "event_time": pd.to_datetime(ns, utc=True),
            "event_type": pd.array(rng.choice(EVENT_TYPES, n), dtype=strings),
            "product_id": rng.integers(0, 50, n),
            "category_id": rng.integers(0, 6, n),
            "price": np.round(rng.uniform(0, 300, n), 2),
            "user_id": pd.array(users, dtype=strings),
            "user_session": pd.array(sessions, dtype=strings),
        }
    )
    df[RETAILER_COLUMN] = pd.array(["r1"] * n, dtype=strings)
    return df


def build(
    chunks: list[pd.DataFrame], cutoff: pd.Timestamp, unit: str, *, general: bool
) -> CustomerFeatures:
    builder = SequenceBuilder(FeatureWindow(cutoff), unit)
    for chunk in chunks:
        if general:  # what ``add`` does when few_rows declines the chunk
            original, few_rows.read = few_rows.read, lambda _chunk: None
            try:
                builder.add(chunk)
            finally:
                few_rows.read = original
        else:
            builder.add(chunk)
    return builder.finish()


def assert_same(a: CustomerFeatures, b: CustomerFeatures) -> None:
    for name in NAMES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("n", [1, 2, 7, 30, 241, 1500, 4096, 6000])
@pytest.mark.parametrize("unit", ["transactions", "customer-days", "periods"])
def test_few_rows_path_equals_general_path(n: int, unit: str) -> None:
    """Seeded random frames, several cut-offs, one chunk or several, Arrow or Python strings:
    exactly the general path's arrays (a 6,000-row frame is read in 2,000-row chunks)."""
    rng = np.random.default_rng(n)
    for arrow in (True, False):
        df = events(rng, n, arrow=arrow)
        for cutoff in CUTOFFS:
            for parts in (1, 3):
                chunks = [df.iloc[p] for p in np.array_split(np.arange(n), parts)]
                try:
                    want = build(chunks, cutoff, unit, general=True)
                except DataError:  # nobody in this window: the few-rows path says the same
                    with pytest.raises(DataError, match="no customer has an event"):
                        build(chunks, cutoff, unit, general=False)
                    continue
                if parts == 3 or n <= few_rows.SMALL_ROWS:
                    assert all(few_rows.read(c) is not None for c in chunks)
                assert_same(build(chunks, cutoff, unit, general=False), want)


def test_small_and_large_chunks_mix_in_one_builder() -> None:
    """A file's last chunk is small: sessions and customers seen in a large chunk are the same
    ones in a small one (same session hashes, same dense ids)."""
    df = events(np.random.default_rng(5), 5000)
    chunks = [df.iloc[:4500], df.iloc[4500:]]  # general, then few rows
    assert few_rows.read(chunks[0]) is None and few_rows.read(chunks[1]) is not None
    for cutoff in CUTOFFS:
        want = build(chunks, cutoff, "customer-days", general=True)
        assert_same(build(chunks, cutoff, "customer-days", general=False), want)
        assert_same(build(chunks[::-1], cutoff, "customer-days", general=False), want)


def test_hand_built_edges() -> None:
    """Window start counts, cutoff - 1 ns counts, the cutoff is a label; a step with no event
    keeps zero counts and carries the days since the last event."""
    c = CUTOFFS[0].value
    df = events(np.random.default_rng(0), 4)
    df["event_time"] = pd.to_datetime([c - 56 * DAY, c - 1, c, c + 7 * DAY], utc=True)
    df["event_type"] = pd.array(["view", "purchase", "purchase", "purchase"], "string[pyarrow]")
    df["user_id"] = pd.array(["a"] * 4, "string[pyarrow]")
    got = build([df], CUTOFFS[0], "transactions", general=False)
    assert_same(got, build([df], CUTOFFS[0], "transactions", general=True))
    X = got.X[0]
    assert X[0, 0] == 1 and X[-1, 3] == 1 and X[1:-1, :4].sum() == 0
    assert got.y_count.tolist() == [1.0]  # horizon_end itself is outside
    assert X[1, 9] == pytest.approx(4.0)  # days from step 1's end back to the window start


def test_last_event_is_the_latest_time_added() -> None:
    df = events(np.random.default_rng(3), 40)
    builder = SequenceBuilder(FeatureWindow(CUTOFFS[1]))
    assert builder.last_ns is None
    builder.add(df.iloc[:20])
    builder.add(df.iloc[20:])
    assert builder.last_ns == int(df["event_time"].array.asi8.max())


@pytest.mark.parametrize(
    ("column", "value"),
    [("event_type", "refund"), ("event_type", None), ("user_id", None), ("price", np.nan)],
)
def test_unexpected_cells_go_to_the_general_path(column: str, value: object) -> None:
    df = events(np.random.default_rng(1), 10)
    df.loc[4, column] = value
    assert few_rows.read(df) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(event_time=df["event_time"].dt.as_unit("us")),
        lambda df: df.assign(price=df["price"].astype("Float64")),
        lambda df: df.iloc[[0] * (few_rows.SMALL_ROWS + 1)],
    ],
)
def test_other_dtypes_and_many_rows_go_to_the_general_path(change) -> None:
    df = events(np.random.default_rng(2), 10)
    df["event_time"] = CUTOFFS[0] - pd.to_timedelta(np.arange(1, 11), unit="h")
    df = change(df)
    assert few_rows.read(df) is None
    builder = SequenceBuilder(FeatureWindow(CUTOFFS[0]))
    builder.add(df)  # read by the general path
    assert_same(builder.finish(), build([df], CUTOFFS[0], "transactions", general=True))


def test_missing_user_outside_window_and_horizon_is_ignored_as_before() -> None:
    df = events(np.random.default_rng(4), 30, arrow=False)
    df.loc[0, "event_time"] = CUTOFFS[0] - pd.Timedelta(days=300)
    df.loc[0, "user_id"] = None
    assert_same(
        build([df], CUTOFFS[0], "transactions", general=False),
        build([df], CUTOFFS[0], "transactions", general=True),
    )


def test_two_retailers_are_refused_on_the_few_rows_path() -> None:
    df = events(np.random.default_rng(6), 8)
    assert few_rows.read(df) is not None
    builder = SequenceBuilder(FeatureWindow(CUTOFFS[0]))
    builder.add(df)
    with pytest.raises(DataError, match=r"several retailers \(\['r1', 'r2'\]\)"):
        builder.add(df.assign(**{RETAILER_COLUMN: "r2"}))
