from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.features import (
    AGGREGATE_NAMES,
    FEATURE_NAMES,
    CustomerFeatures,
    FeatureWindow,
    SequenceBuilder,
    default_cutoff,
)
from fedmarket.data.ingest.schema import EVENT_COLUMNS, EVENT_TYPES, RETAILER_COLUMN
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.errors import ConfigError, DataError

UTC = "UTC"
CUTOFF = pd.Timestamp("2019-11-15", tz=UTC)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Events in the validated schema from (time, type, user, price, session, category)."""
    time, etype, user, price, session, category = (list(c) for c in zip(*rows, strict=True))
    df = pd.DataFrame(
        {
            "event_time": pd.to_datetime(time, utc=True),
            "event_type": etype,
            "product_id": np.arange(len(rows), dtype=np.int64),
            "category_id": category,
            "category_code": [None] * len(rows),
            "brand": [None] * len(rows),
            "price": price,
            "user_id": user,
            "user_session": session,
        }
    ).astype(EVENT_COLUMNS)
    df[RETAILER_COLUMN] = "r1"
    return df


def random_events(n: int, n_users: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = CUTOFF - pd.Timedelta(days=60)
    secs = rng.integers(0, 70 * 86_400, n)
    users = rng.integers(0, n_users, n)
    rows = list(
        zip(
            start + pd.to_timedelta(secs, unit="s"),
            np.array(EVENT_TYPES)[rng.choice(4, n, p=[0.7, 0.15, 0.05, 0.1])],
            [f"u{u:03d}" for u in users],
            np.round(rng.uniform(0, 300, n), 2),
            [
                None if k == 0 else f"s{u}-{k}"
                for u, k in zip(users, rng.integers(0, 9, n), strict=True)
            ],
            rng.integers(1, 6, n),
            strict=True,
        )
    )
    return frame(rows)


def build(
    window: FeatureWindow, *chunks: pd.DataFrame, count_unit: str = "transactions"
) -> CustomerFeatures:
    builder = SequenceBuilder(window, count_unit)
    for chunk in chunks:
        builder.add(chunk)
    return builder.finish()


def assert_same(
    a: CustomerFeatures,
    b: CustomerFeatures,
    names: tuple[str, ...] = ("customer", "X", "agg", "y_purchase", "y_count", "y_active"),
) -> None:
    for name in names:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ---- window ---------------------------------------------------------------------------


def test_window_defaults_and_bounds() -> None:
    w = FeatureWindow(cutoff=CUTOFF)
    assert (w.window_days, w.step_days, w.horizon_days, w.n_steps) == (56, 2, 7, 28)
    assert w.start == pd.Timestamp("2019-09-20", tz=UTC)
    assert w.horizon_end == pd.Timestamp("2019-11-22", tz=UTC)
    assert w.never_days == 58.0  # window + one step


def test_window_converts_other_zone_midnight_to_utc() -> None:
    w = FeatureWindow(cutoff=pd.Timestamp("2019-11-15T01:00", tz="Europe/Berlin"))
    assert w.cutoff == CUTOFF and str(w.cutoff.tz) == UTC


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"window_days": 0}, "--window-days"),
        ({"window_days": 7.0}, "--window-days"),
        ({"step_days": -7}, "--step-days"),
        ({"step_days": True}, "--step-days"),
        ({"horizon_days": 0}, "--horizon-days"),
        ({"window_days": 51}, "multiple of --step-days"),
        ({"cutoff": pd.Timestamp("2019-11-15")}, "no time zone"),
        ({"cutoff": pd.Timestamp("2019-11-15T06:00", tz=UTC)}, "not a UTC midnight"),
        ({"cutoff": "not a date"}, "--cutoff"),
    ],
)
def test_window_rejects_bad_options(kwargs: dict, option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        FeatureWindow(**{"cutoff": CUTOFF, **kwargs})


def test_default_cutoff_covers_whole_last_horizon() -> None:
    late = pd.Timestamp("2019-11-30T23:59:59", tz=UTC)
    assert default_cutoff(late, 7) == pd.Timestamp("2019-11-24", tz=UTC)
    assert default_cutoff(pd.Timestamp("2019-11-30", tz=UTC), 7) == pd.Timestamp(
        "2019-11-24", tz=UTC
    )
    assert default_cutoff(late, 1) == pd.Timestamp("2019-11-30", tz=UTC)
    with pytest.raises(DataError, match="time zone"):
        default_cutoff(pd.Timestamp("2019-11-30"), 7)
    with pytest.raises(ConfigError, match="--horizon-days"):
        default_cutoff(late, 0)


# ---- hand-computed example ------------------------------------------------------------

# Window 14 days in 2 steps: step 0 = [11-01, 11-08), step 1 = [11-08, 11-15); horizon
# [11-15, 11-22).
SMALL = FeatureWindow(cutoff=CUTOFF, window_days=14, step_days=7, horizon_days=7)
HAND_ROWS = [
    ("2019-11-14T23:00", "view", "b", 5.0, "s9", 3),
    ("2019-11-14T10:00", "view", "b", 7.0, None, 3),
    ("2019-11-01T12:00", "view", "a", 10.0, "s1", 1),
    ("2019-11-02T00:00", "view", "a", 20.0, "s1", 2),
    ("2019-11-02T06:00", "cart", "a", 20.0, "s1", 2),
    ("2019-11-03T12:00", "purchase", "a", 20.0, "s2", 2),
    ("2019-11-09T06:00", "view", "a", 30.0, "s2", 1),
    ("2019-11-10T18:00", "remove_from_cart", "a", 20.0, "s3", 2),
    ("2019-11-15T00:00", "purchase", "a", 99.0, "s4", 2),  # at the cutoff: label
    ("2019-11-16T00:00", "view", "a", 99.0, "s4", 2),  # not a purchase
    ("2019-11-21T23:59", "purchase", "a", 99.0, "s4", 2),
    ("2019-11-22T00:00", "purchase", "a", 99.0, "s5", 2),  # horizon end: ignored
    ("2019-11-16T00:00", "purchase", "c", 10.0, "s7", 1),  # only after the cutoff
    ("2019-10-31T23:59", "view", "d", 10.0, "s8", 1),  # only before the window
]


def test_hand_computed_example() -> None:
    f = build(SMALL, frame(HAND_ROWS))
    assert f.customer.tolist() == ["a", "b"] and f.customer.dtype.kind == "U"
    assert f.X.shape == (2, 2, len(FEATURE_NAMES)) and f.X.dtype == np.float32
    # views carts removes purchases spend sessions cats mean_price dslp dsle cart_to_view
    a = [
        [2, 1, 0, 1, 20, 2, 2, 15, 4.5, 4.5, 0.5],
        [1, 0, 1, 0, 0, 2, 2, 30, 11.5, 4.25, 0],
    ]
    b = [
        [0, 0, 0, 0, 0, 0, 0, 0, 21, 21, 0],
        [2, 0, 0, 0, 0, 1, 1, 6, 21, 1 / 24, 0],
    ]
    np.testing.assert_allclose(f.X, np.array([a, b], np.float32), rtol=1e-6)
    assert f.agg.shape == (2, len(AGGREGATE_NAMES)) and f.agg.dtype == np.float32
    agg = dict(zip(AGGREGATE_NAMES, f.agg.T, strict=True))
    expected = {
        "recency_days": [4.25, 1 / 24],
        "purchase_recency_days": [11.5, 21],
        "frequency": [1, 0],
        "monetary": [20, 0],
        "views": [3, 2],
        "carts": [1, 0],
        "removes": [1, 0],
        "sessions": [3, 1],  # s2 spans both steps: counted once over the window
        "active_days": [5, 1],
        "distinct_categories": [2, 1],
        "conversion_rate": [1 / 3, 0],
        "first_event_days": [13.5, 14 / 24],  # a: 11-01T12:00; b: 11-14T10:00
        "first_purchase_days": [11.5, 21],  # b never bought: window + step
        "purchase_days": [1, 0],
    }
    for name, value in expected.items():
        np.testing.assert_allclose(agg[name], value, rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(f.y_count, [2, 0])
    np.testing.assert_array_equal(f.y_purchase, [1, 0])
    np.testing.assert_array_equal(f.y_active, [1, 0])
    assert f.y_count.dtype == f.y_purchase.dtype == f.y_active.dtype == np.float32


# ---- churn labels: hand-built event log --------------------------------------------------

# SMALL: window [11-01, 11-15), horizon [11-15, 11-22).
CHURN_ROWS = [
    ("2019-11-05T00:00", "view", "a", 1.0, "s1", 1),
    ("2019-11-16T00:00", "purchase", "a", 1.0, "s1", 1),  # a buys: neither churn
    ("2019-11-05T00:00", "view", "b", 1.0, "s2", 1),
    ("2019-11-20T00:00", "view", "b", 1.0, "s2", 1),  # b only browses: churn, not inactive
    ("2019-11-05T00:00", "purchase", "c", 1.0, "s3", 1),
    ("2019-11-22T00:00", "purchase", "c", 1.0, "s3", 1),  # horizon end: c is inactive
    ("2019-11-14T23:59", "cart", "d", 1.0, "s4", 1),
    ("2019-11-15T00:00", "remove_from_cart", "d", 1.0, "s4", 1),  # at the cut-off: active
    ("2019-11-16T00:00", "view", "e", 1.0, "s5", 1),  # only after the cut-off: no row
]


def test_churn_labels_hand_built() -> None:
    f = build(SMALL, frame(CHURN_ROWS))
    assert f.customer.tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(f.y_purchase, [1, 0, 0, 0])
    np.testing.assert_array_equal(f.y_active, [1, 1, 0, 1])
    # the churn labels are 1 - these (fedmarket.data.store.SplitArrays.y_churn*)
    np.testing.assert_array_equal(1 - f.y_purchase, [0, 1, 1, 1])
    np.testing.assert_array_equal(1 - f.y_active, [0, 0, 1, 0])


def test_churn_labels_ignore_events_outside_the_horizon() -> None:
    base = build(SMALL, frame(CHURN_ROWS))
    outside = frame(
        [
            ("2019-11-22T00:00", "purchase", "b", 1.0, "s9", 1),  # after the horizon
            ("2019-12-30T00:00", "view", "c", 1.0, "s9", 1),
            ("2019-10-31T23:59", "purchase", "c", 1.0, "s9", 1),  # before the window
            ("2019-11-10T00:00", "purchase", "b", 5.0, "s9", 1),  # before the cut-off
            ("2019-11-14T23:59", "view", "c", 5.0, "s9", 1),
        ]
    )
    changed = build(SMALL, frame(CHURN_ROWS), outside)
    assert_same(changed, base, names=("customer", "y_purchase", "y_count", "y_active"))
    assert not np.array_equal(changed.X, base.X)  # the window events did reach the features


def test_horizon_events_never_reach_the_features() -> None:
    base = build(SMALL, frame(CHURN_ROWS))
    horizon = frame([("2019-11-18T00:00", kind, "c", 50.0, "s8", 2) for kind in EVENT_TYPES])
    changed = build(SMALL, frame(CHURN_ROWS), horizon)
    assert_same(changed, base, names=("customer", "X", "agg"))
    np.testing.assert_array_equal(changed.y_active, [1, 1, 1, 1])
    np.testing.assert_array_equal(changed.y_purchase, [1, 0, 1, 0])


@pytest.mark.parametrize(
    ("unit", "expected"),
    [("transactions", [5, 1, 0]), ("customer-days", [4, 1, 0]), ("periods", [3, 1, 0])],
)
def test_count_units_hand_computed(unit: str, expected: list[int]) -> None:
    # Horizon [11-15, 11-22) in 2-day periods from the cut-off: [15,17) [17,19) [19,21) [21,22).
    window = FeatureWindow(cutoff=CUTOFF, window_days=14, step_days=2, horizon_days=7)
    rows = [
        ("2019-11-10T12:00", "view", "a", 1.0, "s1", 1),
        ("2019-11-10T12:00", "view", "b", 1.0, "s2", 1),
        ("2019-11-10T12:00", "view", "c", 1.0, "s3", 1),
        ("2019-11-15T01:00", "purchase", "a", 1.0, "s1", 1),  # day 0, period 0
        ("2019-11-15T23:00", "purchase", "a", 1.0, "s1", 1),  # day 0 again
        ("2019-11-16T05:00", "purchase", "a", 1.0, "s1", 1),  # day 1, period 0 again
        ("2019-11-19T00:00", "purchase", "a", 1.0, "s1", 1),  # day 4, period 2
        ("2019-11-21T23:59", "purchase", "a", 1.0, "s1", 1),  # day 6, period 3 (1 day long)
        ("2019-11-22T00:00", "purchase", "a", 1.0, "s1", 1),  # horizon end: not counted
        ("2019-11-18T00:00", "purchase", "b", 1.0, "s2", 1),
        ("2019-11-18T00:00", "view", "c", 1.0, "s3", 1),  # not a purchase
    ]
    f = build(window, frame(rows), count_unit=unit)
    assert f.customer.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(f.y_count, expected)
    np.testing.assert_array_equal(f.y_purchase, [1, 1, 0])  # the unit never changes who buys


def test_count_unit_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"--count-unit 'days'.*customer-days"):
        SequenceBuilder(SMALL, "days")


# ---- reference implementation on random data -------------------------------------------


def reference(events: pd.DataFrame, w: FeatureWindow) -> tuple[list[str], np.ndarray]:
    """Plain per-customer, per-step pandas: the obvious way, for comparison."""
    t = events["event_time"]
    inside = events[(t >= w.start) & (t < w.cutoff)]
    users = sorted(inside["user_id"].unique())
    X = np.zeros((len(users), w.n_steps, len(FEATURE_NAMES)))
    for i, user in enumerate(users):
        mine = inside[inside["user_id"] == user]
        for s in range(w.n_steps):
            end = w.start + pd.Timedelta(days=(s + 1) * w.step_days)
            step = mine[
                (mine["event_time"] >= end - pd.Timedelta(days=w.step_days))
                & (mine["event_time"] < end)
            ]
            kind = step["event_type"]
            seen = mine[mine["event_time"] < end]
            bought = seen[seen["event_type"] == "purchase"]
            views = (kind == "view").sum()

            def since(df: pd.DataFrame, end: pd.Timestamp = end) -> float:
                return (end - df["event_time"].max()) / pd.Timedelta(days=1) if len(df) else 63

            X[i, s] = [
                views,
                (kind == "cart").sum(),
                (kind == "remove_from_cart").sum(),
                (kind == "purchase").sum(),
                step.loc[kind == "purchase", "price"].sum(),
                step["user_session"].dropna().nunique(),
                step["category_id"].nunique(),
                step.loc[kind == "view", "price"].mean() if views else 0,
                since(bought),
                since(seen),
                (kind == "cart").sum() / max(views, 1),
            ]
    return users, X


def test_matches_reference_implementation() -> None:
    events = random_events(3000, 40, seed=1)
    w = FeatureWindow(cutoff=CUTOFF, step_days=7)  # the reference hard-codes 63 = 56 + 7
    f = build(w, events)
    users, X = reference(events, w)
    assert f.customer.tolist() == users
    np.testing.assert_allclose(f.X, X, rtol=1e-6, atol=1e-5)
    assert set(np.unique(f.X[..., FEATURE_NAMES.index("purchases")])) > {0.0, 1.0}
    t = events["event_time"]
    horizon = events[(t >= w.cutoff) & (t < w.horizon_end) & (events["event_type"] == "purchase")]
    counts = horizon.groupby("user_id").size().reindex(users, fill_value=0).to_numpy()
    np.testing.assert_array_equal(f.y_count, counts)
    np.testing.assert_array_equal(f.y_purchase, counts > 0)
    any_event = events[(t >= w.cutoff) & (t < w.horizon_end)]["user_id"].unique()
    np.testing.assert_array_equal(f.y_active, np.isin(users, any_event))
    assert (f.y_active > f.y_purchase).any()  # browsing without buying exists here
    # aggregates are the step sums where summing is right
    agg = dict(zip(AGGREGATE_NAMES, f.agg.T, strict=True))
    np.testing.assert_allclose(agg["views"], X[..., 0].sum(axis=1))
    np.testing.assert_allclose(agg["monetary"], X[..., 4].sum(axis=1), rtol=1e-6)
    inside = events[(t >= w.start) & (t < w.cutoff)]
    to_cutoff = (w.cutoff - inside.groupby("user_id")["event_time"].min()) / pd.Timedelta(days=1)
    np.testing.assert_allclose(agg["first_event_days"], to_cutoff.loc[users], rtol=1e-6)
    bought = inside[inside["event_type"] == "purchase"]
    first_buy = (w.cutoff - bought.groupby("user_id")["event_time"].min()) / pd.Timedelta(days=1)
    first_buy = first_buy.reindex(users, fill_value=w.never_days)
    np.testing.assert_allclose(agg["first_purchase_days"], first_buy, rtol=1e-6)
    days = bought["event_time"].dt.floor("D").groupby(bought["user_id"]).nunique()
    np.testing.assert_array_equal(agg["purchase_days"], days.reindex(users, fill_value=0))
    # the units on the horizon's purchases, against pandas
    day = (horizon["event_time"] - w.cutoff) // pd.Timedelta(days=1)
    for unit, key in (("customer-days", day), ("periods", day // w.step_days)):
        distinct = key.groupby(horizon["user_id"]).nunique().reindex(users, fill_value=0)
        np.testing.assert_array_equal(build(w, events, count_unit=unit).y_count, distinct)
    assert (distinct.to_numpy() < counts).any()  # the units differ on this data


def test_chunked_and_shuffled_equal_one_shot_exactly() -> None:
    events = random_events(4000, 60, seed=2)
    w = FeatureWindow(cutoff=CUTOFF)
    whole = build(w, events)
    order = np.random.default_rng(0).permutation(len(events))
    shuffled = events.iloc[order]
    assert_same(whole, build(w, *[shuffled.iloc[i : i + 333] for i in range(0, len(events), 333)]))
    assert_same(whole, build(w, *[events.iloc[i : i + 1000] for i in range(0, len(events), 1000)]))
    assert_same(whole, build(w, events.iloc[:0], events))  # an empty chunk is harmless
    for unit in ("customer-days", "periods"):
        one = build(w, events, count_unit=unit)
        assert_same(
            one,
            build(
                w,
                *[shuffled.iloc[i : i + 333] for i in range(0, len(events), 333)],
                count_unit=unit,
            ),
        )


# ---- no leakage ------------------------------------------------------------------------


def test_nothing_at_or_after_cutoff_changes_features() -> None:
    events = random_events(3000, 40, seed=3)
    w = FeatureWindow(cutoff=CUTOFF)
    base = build(w, events)
    after = events["event_time"] >= CUTOFF
    assert after.sum() > 100
    changed = events.copy()
    changed.loc[after, "price"] = 1e6
    changed.loc[after, "event_type"] = "purchase"
    extra = frame([(CUTOFF, "purchase", "u000", 5.0, "z", 1)] * 3)
    for variant in (changed, events[~after], pd.concat([events, extra])):
        assert_same(build(w, variant), base, names=("customer", "X", "agg"))
    assert not np.array_equal(build(w, changed).y_count, base.y_count)


def test_event_just_before_cutoff_changes_features() -> None:
    events = random_events(3000, 40, seed=3)
    w = FeatureWindow(cutoff=CUTOFF)
    base = build(w, events)
    just_before = CUTOFF - pd.Timedelta(seconds=1)
    f = build(w, events, frame([(just_before, "view", "u000", 5.0, "z", 1)]))
    assert not np.array_equal(f.X, base.X)
    assert f.customer[0] == "u000"
    last_step = f.X[0, -1]
    assert last_step[FEATURE_NAMES.index("days_since_last_event")] == pytest.approx(1 / 86_400)


def test_events_before_window_are_ignored() -> None:
    events = random_events(2000, 30, seed=4)
    w = FeatureWindow(cutoff=CUTOFF)
    early = events["event_time"] < w.start
    assert early.sum() > 0
    assert_same(build(w, events), build(w, events[~early]))


# ---- bad input -------------------------------------------------------------------------


def test_rejects_missing_columns() -> None:
    with pytest.raises(DataError, match="user_session"):
        SequenceBuilder(SMALL).add(frame(HAND_ROWS).drop(columns="user_session"))


def test_rejects_naive_times() -> None:
    df = frame(HAND_ROWS)
    df["event_time"] = df["event_time"].dt.tz_localize(None)
    with pytest.raises(DataError, match="tz-aware"):
        SequenceBuilder(SMALL).add(df)


def test_rejects_unknown_event_type_with_row() -> None:
    df = frame(HAND_ROWS)
    df.loc[3, "event_type"] = "wishlist"
    with pytest.raises(DataError, match=r"'wishlist' \(row 3\)"):
        SequenceBuilder(SMALL).add(df)


def test_rejects_missing_price_and_user() -> None:
    df = frame(HAND_ROWS)
    df.loc[2, "price"] = np.nan
    with pytest.raises(DataError, match="price is missing in row 2"):
        SequenceBuilder(SMALL).add(df)
    df = frame(HAND_ROWS)
    df.loc[4, "user_id"] = None
    with pytest.raises(DataError, match="user_id is missing in row 4"):
        SequenceBuilder(SMALL).add(df)


def test_rejects_several_retailers() -> None:
    builder = SequenceBuilder(SMALL)
    builder.add(frame(HAND_ROWS))
    other = frame(HAND_ROWS)
    other[RETAILER_COLUMN] = "r2"
    with pytest.raises(DataError, match="several retailers"):
        builder.add(other)


def test_rejects_window_without_customers() -> None:
    builder = SequenceBuilder(FeatureWindow(cutoff=pd.Timestamp("2021-01-01", tz=UTC)))
    builder.add(frame(HAND_ROWS))
    with pytest.raises(DataError, match="--cutoff"):
        builder.finish()


def test_time_resolution_and_zone_do_not_matter() -> None:
    events = random_events(500, 10, seed=5)
    base = build(SMALL, events)
    other = events.copy()
    other["event_time"] = other["event_time"].dt.as_unit("us").dt.tz_convert("Asia/Tokyo")
    assert_same(build(SMALL, other), base)


def test_compaction_keeps_results_exact() -> None:
    from fedmarket.data.features import _KeySet

    events = random_events(3000, 40, seed=6)
    w = FeatureWindow(cutoff=CUTOFF)
    builder = SequenceBuilder(w)
    builder._sessions, builder._categories, builder._days = (_KeySet(50) for _ in range(3))
    for i in range(0, len(events), 100):
        builder.add(events.iloc[i : i + 100])
    assert_same(builder.finish(), build(w, events))


def test_rejected_chunk_leaves_builder_unchanged() -> None:
    events = random_events(1000, 20, seed=7)
    builder = SequenceBuilder(SMALL)
    builder.add(events)
    bad = events.copy()
    in_window = (bad["event_time"] >= SMALL.start) & (bad["event_time"] < SMALL.cutoff)
    bad.loc[bad.index[in_window][-1], "price"] = np.nan
    with pytest.raises(DataError, match="price is missing"):
        builder.add(bad)
    assert_same(builder.finish(), build(SMALL, events))


def test_distinct_pairs_agree_below_and_above_the_small_size():
    from fedmarket.data import features

    rng = np.random.default_rng(0)
    n = features._SMALL_PAIRS * 2
    a, b = rng.integers(0, 50, n), rng.integers(-(2**62), 2**62, n) % 7
    big = set(zip(*features._unique_pairs(a, b), strict=True))
    small = set()
    for lo in range(0, n, features._SMALL_PAIRS):
        part = features._unique_pairs(
            a[lo : lo + features._SMALL_PAIRS], b[lo : lo + features._SMALL_PAIRS]
        )
        small |= set(zip(*part, strict=True))
    assert big == small == set(zip(a, b, strict=True))
    assert len(features._unique_pairs(a[:100], b[:100])[0]) == len(
        set(zip(a[:100], b[:100], strict=True))
    )


def _random_events(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """n events of the validator's dtypes (Arrow strings, nanoseconds) around CUTOFF."""
    offsets = rng.integers(-60 * 86_400, 10 * 86_400, n) * 10**9
    sessions = rng.choice(np.array(["s1", "s2", "s3", "s4", None], dtype=object), n)
    df = pd.DataFrame(
        {
            "event_time": pd.to_datetime(CUTOFF.value + offsets, utc=True),
            "event_type": pd.array(rng.choice(EVENT_TYPES, n), dtype="string[pyarrow]"),
            "product_id": rng.integers(0, 50, n),
            "category_id": rng.integers(0, 6, n),
            "category_code": pd.array([None] * n, dtype="string[pyarrow]"),
            "brand": pd.array([None] * n, dtype="string[pyarrow]"),
            "price": np.round(rng.uniform(0, 300, n), 2),
            "user_id": pd.array(rng.integers(0, max(n // 8, 2), n).astype(str), "string[pyarrow]"),
            "user_session": pd.array(sessions, dtype="string[pyarrow]"),
        }
    )
    df[RETAILER_COLUMN] = pd.array(["r1"] * n, dtype="string[pyarrow]")
    return df


def _general_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """The same events in the dtypes of the general path: Python strings, microseconds."""
    out = df.astype({c: "string[python]" for c in ("event_type", "user_id", "user_session")})
    out["event_time"] = out["event_time"].dt.as_unit("us")
    return out


@pytest.mark.parametrize("n", [1, 7, 30, 500, 6000])
@pytest.mark.parametrize("count_unit", ["transactions", "customer-days"])
def test_fast_paths_equal_general_path_on_random_events(n: int, count_unit: str) -> None:
    """The Arrow/nanosecond shortcuts (the scoring service's small frames) give exactly what
    the general pandas path gives, in one chunk or several, on small and large frames."""
    rng = np.random.default_rng(n)
    events = _random_events(rng, n)
    results = []
    for df in (events, _general_dtypes(events)):
        for chunks in (1, 3):
            builder = SequenceBuilder(FeatureWindow(CUTOFF), count_unit)
            for part in np.array_split(np.arange(n), chunks):
                builder.add(df.iloc[part])
            results.append(builder.finish())
    first = results[0]
    for other in results[1:]:
        np.testing.assert_array_equal(other.customer, first.customer)
        for name in ("X", "agg", "y_purchase", "y_count", "y_active"):
            np.testing.assert_array_equal(getattr(other, name), getattr(first, name))


@pytest.mark.parametrize("chunk_rows", [6000, 1000, 5000])  # large, few-rows, both mixed
def test_session_tokens_give_the_features_of_session_text(chunk_rows: int) -> None:
    """``data prepare`` gives the builder sessions as keyed Int64 tokens (``Pseudonymiser.
    tokens``), the scoring service and older callers as text: the same distinct sessions, the
    same features, whether a chunk takes the few-rows path or the general one."""
    events = _random_events(np.random.default_rng(3), 6000)
    tokens = events.assign(user_session=Pseudonymiser(b"k" * 32).tokens(events["user_session"]))
    results = []
    for df in (events, tokens):
        builder = SequenceBuilder(FeatureWindow(CUTOFF))
        for lo in range(0, len(df), chunk_rows):
            builder.add(df.iloc[lo : lo + chunk_rows])
        results.append(builder.finish())
    np.testing.assert_array_equal(results[1].customer, results[0].customer)
    for name in ("X", "agg"):
        np.testing.assert_array_equal(getattr(results[1], name), getattr(results[0], name))


def test_unknown_event_type_is_refused_on_the_arrow_path() -> None:
    df = _random_events(np.random.default_rng(0), 5)
    df.loc[3, "event_type"] = "refund"
    with pytest.raises(DataError, match=r"event_type 'refund' \(row 3\)"):
        SequenceBuilder(FeatureWindow(CUTOFF)).add(df)


def test_missing_price_is_refused_with_its_row() -> None:
    df = _random_events(np.random.default_rng(1), 40)
    df["event_time"] = pd.Timestamp(CUTOFF) - pd.Timedelta(days=1)
    df.loc[17, "price"] = np.nan
    with pytest.raises(DataError, match=r"price is missing in row 17"):
        SequenceBuilder(FeatureWindow(CUTOFF)).add(df)


@pytest.mark.parametrize("arrow", [True, False])
def test_two_retailers_are_refused_on_either_path(arrow: bool) -> None:
    df = _random_events(np.random.default_rng(2), 6)
    df = df if arrow else _general_dtypes(df).astype({RETAILER_COLUMN: "string[python]"})
    df.loc[4, RETAILER_COLUMN] = "r2"
    with pytest.raises(DataError, match=r"several retailers \(\['r1', 'r2'\]\)"):
        SequenceBuilder(FeatureWindow(CUTOFF)).add(df)
    df.loc[4, RETAILER_COLUMN] = None  # a missing retailer is not another one
    builder = SequenceBuilder(FeatureWindow(CUTOFF))
    builder.add(df)
    with pytest.raises(DataError, match=r"several retailers \(\['other', 'r1'\]\)"):
        builder.add(df.assign(**{RETAILER_COLUMN: "other"}))
