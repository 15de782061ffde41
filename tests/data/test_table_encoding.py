"""The customer-table encoding (fedmarket/data/table_encoding.py), checked against numbers
computed by hand: z-scores, one-hot over training levels, missing indicators, unseen levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.ingest import table as table_io
from fedmarket.data.ingest.table import ColumnPlan
from fedmarket.data.table_encoding import TableEncoding
from fedmarket.errors import DataError

PLAN = ColumnPlan(("income", "age"), ("edu",), {}, ())


def frame(**columns: list) -> pd.DataFrame:
    rows = pd.DataFrame(columns)
    rows[table_io.WHERE_KEY] = [f"t.csv data row {i + 1}" for i in range(len(rows))]
    return rows


TRAIN = frame(
    income=["10", "", "30", "20"],  # mean 20, population std sqrt(200/3)
    age=["40", "40", "40", "40"],  # constant: centred only
    edu=["PhD", "Basic", None, "PhD"],
)


def test_fit_keeps_training_statistics_and_levels() -> None:
    enc = TableEncoding.fit(TRAIN, PLAN)
    assert enc.numeric["income"] == pytest.approx((20.0, np.sqrt(200 / 3)))
    assert enc.numeric["age"] == (40.0, 0.0)
    assert enc.categorical == {"edu": ("Basic", "PhD")}
    assert enc.missing == ("income", "edu")
    assert enc.feature_names == [
        "income",
        "income:missing",
        "age",
        "edu=Basic",
        "edu=PhD",
        "edu:missing",
    ]


def test_encode_by_hand() -> None:
    enc = TableEncoding.fit(TRAIN, PLAN)
    test = frame(income=["40", "NA"], age=["41", None], edu=["Master", None])
    X, agg, unseen = enc.encode(test)
    sd = np.sqrt(200 / 3)
    assert X.shape == (2, 1, 6)
    assert X.dtype == agg.dtype == np.float32
    np.testing.assert_allclose(
        X[:, 0, :], [[20 / sd, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1]], rtol=1e-6
    )
    # agg: unscaled, missing numeric -> the training mean; "Master" never seen: all zero
    np.testing.assert_allclose(agg, [[40, 0, 41, 0, 0, 0], [20, 1, 40, 0, 0, 1]])
    assert unseen == {"edu": 1}


def test_the_manifest_form_encodes_identically() -> None:
    enc = TableEncoding.fit(TRAIN, PLAN)
    again = TableEncoding.from_manifest(enc.to_manifest())
    assert again == enc
    (X1, agg1, unseen1), (X2, agg2, unseen2) = enc.encode(TRAIN), again.encode(TRAIN)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(agg1, agg2)
    assert unseen1 == unseen2 == {"edu": 0}
    with pytest.raises(DataError, match="damaged"):
        TableEncoding.from_manifest({"numeric": {}})


def test_a_numeric_column_empty_in_training_is_refused() -> None:
    with pytest.raises(DataError, match="'income' is empty for every training customer"):
        TableEncoding.fit(frame(income=["", ""], age=["1", "2"], edu=["a", "b"]), PLAN)


def test_indicators_follow_gaps_anywhere_in_the_table() -> None:
    train = frame(income=["1", "2"], age=["1", "2"], edu=["a", "b"])
    everyone = frame(income=["1", "2", ""], age=["1", "2", "3"], edu=["a", "b", "c"])
    assert TableEncoding.fit(train, PLAN).missing == ()
    assert TableEncoding.fit(train, PLAN, everyone).missing == ("income",)
