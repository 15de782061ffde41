"""Retailer-side anonymisation of events and customers: nothing identifying survives."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.ingest.schema import CUSTOMER_COLUMNS, DIRECT_IDENTIFIERS
from fedmarket.data.protect.anonymise import (
    RELEASED_CUSTOMER_COLUMNS,
    RELEASED_QUASI_IDENTIFIERS,
    Pseudonymiser,
    anonymise_customers,
    anonymise_events,
    generalise_customers,
)
from fedmarket.errors import ConfigError, DataError

KEY = b"retailer-shared-pseudonym-key-32"  # exactly 32 bytes
REF = date(2024, 6, 15)


def _events(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_time": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "event_type": pd.array(
                ["view", "cart", "purchase", "view", "view", "cart"][:n], dtype="string"
            ),
            "price": np.linspace(1.0, 6.0, n),
            "user_id": pd.array(
                ["cust_001", "cust_002", "cust_001", "cust_003", None, "cust_002"][:n],
                dtype="string",
            ),
            "user_session": pd.array(
                ["sess_a", "sess_b", "sess_a", "sess_c", "sess_d", None][:n], dtype="string"
            ),
            "retailer_id": 3,
        }
    )


def _customers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    births = pd.Timestamp("1940-01-01") + pd.to_timedelta(rng.integers(0, 30_000, n), unit="D")
    return pd.DataFrame(
        {
            "user_id": [f"cust_{i:05d}" for i in range(n)],
            "name": [f"Person Number{i}" for i in range(n)],
            "email": [f"person{i}@example.org" for i in range(n)],
            "phone": [f"+49 30 {1_000_000 + i}" for i in range(n)],
            "street_address": [f"{i} Lindenstrasse" for i in range(n)],
            "birth_date": births.strftime("%Y-%m-%d"),
            "postcode": [f"{z:05d}" for z in rng.integers(0, 99_999, n)],
            "gender": rng.choice(["female", "male", "diverse"], n, p=[0.49, 0.49, 0.02]),
            "city": rng.choice(
                ["Berlin", "Hamburg", "Munich", "Cologne", "Tiny Village"],
                n,
                p=[0.4, 0.3, 0.2, 0.09, 0.01],
            ),
            "loyalty_card": [f"LC{i:08d}" for i in range(n)],
        }
    )


# --- events -------------------------------------------------------------------------------


def test_events_ids_become_pseudonyms_and_sessions_tokens():
    events = _events()
    before = events.copy()
    out = anonymise_events(events, Pseudonymiser(KEY))
    expected = hmac.new(KEY, b"cust_001", hashlib.sha256).hexdigest()
    assert out["user_id"].iloc[0] == out["user_id"].iloc[2] == expected
    # sessions are only counted: keyed 64-bit tokens (tests/data/protect/test_pseudonyms.py)
    assert out["user_session"].dtype == "Int64"
    assert out["user_session"].iloc[0] == Pseudonymiser(KEY).tokens(pd.Series(["sess_a"]))[0]
    assert pd.isna(out["user_id"].iloc[4]) and pd.isna(out["user_session"].iloc[5])
    assert out["user_id"].nunique() == 3 and out["user_session"].nunique() == 4
    # Everything else is untouched, and so is the caller's frame.
    pd.testing.assert_frame_equal(
        out.drop(columns=["user_id", "user_session"]),
        before.drop(columns=["user_id", "user_session"]),
    )
    pd.testing.assert_frame_equal(events, before)


def test_events_drop_direct_identifier_columns_by_loose_name():
    events = _events().assign(**{"Email ": "a@b.c", "PHONE": "123", "name": "Ann"})
    out = anonymise_events(events, Pseudonymiser(KEY))
    assert list(out.columns) == list(_events().columns)


def test_events_without_session_column_and_integer_ids():
    events = _events().drop(columns="user_session").assign(user_id=[5, 6, 5, 7, 8, 6])
    out = anonymise_events(events, Pseudonymiser(KEY))
    assert out["user_id"].iloc[0] == Pseudonymiser(KEY).pseudonym("5")


def test_events_without_user_id():
    with pytest.raises(DataError, match="no user_id"):
        anonymise_events(_events().drop(columns="user_id"), Pseudonymiser(KEY))


# --- customers ----------------------------------------------------------------------------


def test_nothing_identifying_survives_in_customers():
    customers = _customers(300, seed=0)
    out, report = anonymise_customers(customers, Pseudonymiser(KEY), k=5, reference_date=REF)
    assert tuple(out.columns) == RELEASED_CUSTOMER_COLUMNS
    assert not set(out.columns) & set(DIRECT_IDENTIFIERS)
    cells = out.astype("string").fillna("").to_numpy().ravel().tolist()
    secrets = [
        *customers["user_id"],
        *customers["email"],
        *customers["phone"],
        *customers["name"],
        *customers["street_address"],
        *customers["loyalty_card"],
        *customers["birth_date"],
    ]
    # These raw values hold '_', '@', '+', '-', spaces or capitals, so none can occur inside a
    # hex pseudonym by chance: a substring search is exact. All-digit postcodes can (and do)
    # occur inside hex digests, so they are compared whole.
    leaks = [s for s in secrets if any(s in cell for cell in cells)]
    assert leaks == []
    assert set(customers["postcode"]).isdisjoint(cells)
    assert out["postcode_prefix"].str.len().max() <= 2
    assert report.columns_dropped == (*DIRECT_IDENTIFIERS, "loyalty_card")


def test_customer_pseudonyms_join_with_event_pseudonyms():
    p = Pseudonymiser(KEY)
    customers = _customers(40, seed=1)
    out, _ = anonymise_customers(customers, p, k=2, reference_date=REF)
    events = pd.DataFrame({"user_id": customers["user_id"].iloc[[3, 3, 7]].tolist()})
    assert set(anonymise_events(events, p)["user_id"]) <= set(out["user_id"])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 5, 10])
def test_random_customers_are_k_anonymous(seed, k):
    customers = _customers(250, seed=seed)
    out, report = anonymise_customers(
        customers, Pseudonymiser(KEY), k=k, reference_date=REF, postcode_prefix_len=3
    )
    sizes = out.groupby(list(RELEASED_QUASI_IDENTIFIERS)).size()
    assert sizes.min() >= k
    assert report.smallest_class == sizes.min() and report.equivalence_classes == len(sizes)
    assert report.records_released == len(out) == 250 - report.records_removed
    assert report.k == k and report.quasi_identifiers == RELEASED_QUASI_IDENTIFIERS
    assert out["user_id"].is_unique
    json.dumps(report.to_dict())


def test_hand_built_customers_known_outcome():
    # k = 2, reference 2024-06-15. Rows 0-1: same band 30-39, prefix "10", female, Berlin.
    # Rows 2-3: same band/prefix/gender, cities differ -> city suppressed. Row 4 alone
    # with an unparseable birth date -> removed after full suppression.
    customers = pd.DataFrame(
        {
            "user_id": ["c0", "c1", "c2", "c3", "c4"],
            "email": ["e0", "e1", "e2", "e3", "e4"],
            "birth_date": ["1990-01-01", "1985-06-15", "1960-06-16", "1955-01-01", "15/06/1990"],
            "postcode": ["10115", "10 999", "80331", "80999", "20095"],
            "gender": ["f", "f", "m", "m", "m"],
            "city": ["Berlin", "Berlin", "Munich", "Freising", "Hamburg"],
        }
    )
    p = Pseudonymiser(KEY)
    out, report = anonymise_customers(customers, p, k=2, reference_date=REF)
    assert out.to_dict("list") == {
        "user_id": [p.pseudonym(f"c{i}") for i in range(4)],
        "age_band": ["30-39", "30-39", "60-69", "60-69"],
        "postcode_prefix": ["10", "10", "80", "80"],
        "gender": ["f", "f", "m", "m"],
        "city": ["Berlin", "Berlin", "*", "*"],
    }
    # Row 4 alone: every step rescues nobody, so ties go to the most specific QI (postcode,
    # 3 distinct prefixes), then to the fixed order (age_band before gender, 2 values each).
    assert report.suppression_order == ("city", "postcode_prefix", "age_band", "gender")
    assert (report.records_removed, report.equivalence_classes, report.smallest_class) == (1, 2, 2)
    assert report.missing_or_invalid["age_band"] == 1
    assert report.columns_dropped == ("email",)


def test_generalisation_ages_and_postcodes():
    customers = pd.DataFrame(
        {
            "birth_date": [
                "1994-06-15",
                "1994-06-16",
                "2024-06-15",
                "2024-06-16",
                "1904-06-15",
                "1903-06-14",
                None,
                "not a date",
                "06/15/1994",
            ],
            "postcode": ["sw1a 1aa", " 10115", "8", "", None, "AB", "ab1", "x", "99999"],
            "gender": [" f ", "", None, "m", "m", "m", "m", "m", "m"],
            "city": ["Berlin", "  ", "Köln", "x", "x", "x", "x", "x", "x"],
        }
    )
    out = generalise_customers(
        customers, reference_date=REF, age_band_years=5, postcode_prefix_len=3
    )
    na = pd.NA
    # 30 on the birthday, 29 the day before it; 0 at birth; 120 is the oldest kept.
    assert out["age_band"].tolist() == ["30-34", "25-29", "0-4", na, "120-124", na, na, na, na]
    assert out["postcode_prefix"].tolist() == ["SW1", "101", "8", na, na, "AB", "AB1", "X", "999"]
    assert out["gender"].tolist()[:3] == ["f", na, na]
    assert out["city"].tolist()[:3] == ["Berlin", na, "Köln"]
    single = generalise_customers(customers.iloc[:1], reference_date=REF, age_band_years=1)
    assert single["age_band"].tolist() == ["30"]


def test_datetime_birth_dates():
    customers = pd.DataFrame(
        {
            "birth_date": pd.to_datetime(["1994-06-15", None]).tz_localize("UTC"),
            "postcode": ["10115", "10115"],
            "gender": ["f", "f"],
            "city": ["B", "B"],
        }
    )
    out = generalise_customers(customers, reference_date=REF)
    assert out["age_band"].tolist() == ["30-39", pd.NA]


def test_numeric_postcodes_are_refused():
    customers = _customers(10, seed=0).assign(postcode=lambda d: d["postcode"].astype(int))
    with pytest.raises(DataError, match="leading zeros"):
        anonymise_customers(customers, Pseudonymiser(KEY), reference_date=REF)


@pytest.mark.parametrize("column", ["user_id", "birth_date", "postcode", "gender", "city"])
def test_missing_customer_columns(column):
    customers = _customers(10, seed=0).drop(columns=column)
    with pytest.raises(DataError, match=column):
        anonymise_customers(customers, Pseudonymiser(KEY), reference_date=REF)


def test_direct_identifiers_are_optional():
    customers = _customers(20, seed=0).drop(columns=list(DIRECT_IDENTIFIERS))
    out, report = anonymise_customers(customers, Pseudonymiser(KEY), k=2, reference_date=REF)
    assert len(out) == report.records_released > 0
    assert report.columns_dropped == ("loyalty_card",)
    assert set(CUSTOMER_COLUMNS) - set(customers.columns) == set(DIRECT_IDENTIFIERS)


def test_missing_and_duplicate_ids():
    customers = _customers(10, seed=0)
    customers.loc[4, "user_id"] = None
    with pytest.raises(DataError, match=r"missing at rows \[4\]"):
        anonymise_customers(customers, Pseudonymiser(KEY), reference_date=REF)
    customers.loc[4, "user_id"] = "cust_00001"
    with pytest.raises(DataError, match=r"rows \[4\].*repeat"):
        anonymise_customers(customers, Pseudonymiser(KEY), reference_date=REF)
    # 7 and "7" share a pseudonym, so they are the same customer twice.
    customers["user_id"] = pd.Series([7, *range(100, 108), "7"], dtype=object)
    with pytest.raises(DataError, match=r"rows \[9\].*repeat"):
        anonymise_customers(customers, Pseudonymiser(KEY), reference_date=REF)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 1},
        {"k": 0},
        {"age_band_years": 0},
        {"postcode_prefix_len": 0},
        {"postcode_prefix_len": 2.5},
        {"reference_date": "2024-06-15"},
    ],
)
def test_bad_settings(kwargs):
    settings = {"reference_date": REF, **kwargs}
    with pytest.raises(ConfigError):
        anonymise_customers(_customers(10, seed=0), Pseudonymiser(KEY), **settings)
