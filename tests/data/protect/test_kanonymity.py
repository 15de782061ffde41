"""k-anonymity by greedy local suppression: hand-worked outcomes and properties on random tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import fedmarket.data.protect.kanonymity as kanon
from fedmarket.data.protect.kanonymity import SUPPRESSED, enforce_k_anonymity
from fedmarket.errors import ConfigError, DataError

QIS = ["a", "b", "c"]


def _table(rows):
    return pd.DataFrame(rows, columns=["id", *QIS])


def test_hand_built_table_with_removal():
    # k = 2. Rows 1-2 already form a class. Rows 3-4 differ only in b: suppressing b
    # rescues both (suppressing a or c rescues none), so b goes first. Row 5 stays alone:
    # a and c then rescue nobody, a wins the tie (3 distinct values against 2), then c,
    # and the lone all-"*" row is removed.
    table = _table(
        [
            (1, "x", "p", "m"),
            (2, "x", "p", "m"),
            (3, "y", "q", "m"),
            (4, "y", "r", "m"),
            (5, "z", "s", "f"),
        ]
    )
    out, report = enforce_k_anonymity(table, QIS, k=2)
    assert out.values.tolist() == [
        [1, "x", "p", "m"],
        [2, "x", "p", "m"],
        [3, "y", "*", "m"],
        [4, "y", "*", "m"],
    ]
    assert list(out.index) == [0, 1, 2, 3]
    assert report.suppression_order == ("b", "a", "c")
    assert report.to_dict() == {
        "k": 2,
        "quasi_identifiers": QIS,
        "suppression_order": ["b", "a", "c"],
        "records_in": 5,
        "records_released": 4,
        "records_removed": 1,
        "suppressed": {"a": 0, "b": 2, "c": 0},
        "missing_or_invalid": {"a": 0, "b": 0, "c": 0},
        "equivalence_classes": 2,
        "smallest_class": 2,
        "columns_dropped": [],
    }
    json.dumps(report.to_dict())


def test_hand_built_table_where_the_all_star_class_is_big_enough():
    # Same as above plus row 6 with a missing: after b, a and c, rows 5 and 6 share
    # the all-"*" class of size 2 = k, so nothing is removed.
    table = _table(
        [
            (1, "x", "p", "m"),
            (2, "x", "p", "m"),
            (3, "y", "q", "m"),
            (4, "y", "r", "m"),
            (5, "z", "s", "f"),
            (6, None, "p", "m"),
        ]
    )
    out, report = enforce_k_anonymity(table, QIS, k=2)
    assert out.values.tolist() == [
        [1, "x", "p", "m"],
        [2, "x", "p", "m"],
        [3, "y", "*", "m"],
        [4, "y", "*", "m"],
        [5, "*", "*", "*"],
        [6, "*", "*", "*"],
    ]
    assert report.records_removed == 0
    assert dict(report.suppressed) == {"a": 2, "b": 4, "c": 2}
    assert dict(report.missing_or_invalid) == {"a": 1, "b": 0, "c": 0}
    assert (report.equivalence_classes, report.smallest_class) == (3, 2)


def test_suppressed_record_joins_a_class_with_missing_values():
    # Two records already lack b; suppressing b on the third merges it into their class.
    table = pd.DataFrame({"a": ["x", "x", "x"], "b": [None, None, "q"]})
    out, report = enforce_k_anonymity(table, ["a", "b"], k=3)
    assert out["b"].tolist() == ["*", "*", "*"]
    assert (report.suppression_order, report.equivalence_classes, report.smallest_class) == (
        ("b",),
        1,
        3,
    )


def test_already_k_anonymous_table_is_untouched():
    table = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["p", "p", "q", "q"], "n": [1, 2, 3, 4]})
    out, report = enforce_k_anonymity(table, ["a", "b"], k=2)
    assert out.astype(object).equals(table.astype(object))
    assert report.suppression_order == ()
    assert report.records_removed == 0


def test_too_few_records_for_k_removes_everything():
    out, report = enforce_k_anonymity(pd.DataFrame({"a": ["x", "y"]}), ["a"], k=3)
    assert out.empty
    assert (report.records_released, report.records_removed, report.smallest_class) == (0, 2, 0)


def test_empty_table():
    out, report = enforce_k_anonymity(pd.DataFrame({"a": pd.Series([], dtype="string")}), ["a"], 2)
    assert out.empty
    assert (report.records_in, report.equivalence_classes) == (0, 0)


def test_duplicate_index_labels_do_not_misalign():
    table = pd.DataFrame({"a": ["x", "x", "y"], "b": ["p", "p", "q"]}, index=[7, 7, 7])
    out, _ = enforce_k_anonymity(table, ["a", "b"], k=2)
    assert out.values.tolist() == [["x", "p"], ["x", "p"]]


def _random_table(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {}
    for name, cardinality in (("age", 8), ("zip", 30), ("sex", 3), ("town", 60)):
        values = rng.integers(0, cardinality, n).astype(str).astype(object)
        values[rng.random(n) < 0.05] = None
        cols[name] = values
    cols["row"] = np.arange(n)
    return pd.DataFrame(cols)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 5, 11])
def test_random_tables_are_k_anonymous_and_only_lose_what_they_must(seed, k):
    qis = ["age", "zip", "sex", "town"]
    table = _random_table(seed)
    out, report = enforce_k_anonymity(table, qis, k)
    # Every class has >= k records, recounted here from scratch.
    sizes = out.groupby(qis).size()
    assert sizes.min() >= k
    assert (report.smallest_class, report.equivalence_classes) == (sizes.min(), len(sizes))
    assert report.records_released + report.records_removed == len(table) == report.records_in
    # Values are either kept exactly or replaced by "*"; nothing is invented.
    original = table.set_index("row").loc[out["row"]].fillna(SUPPRESSED)
    for qi in qis:
        kept = out[qi].to_numpy() != SUPPRESSED
        assert (out[qi].to_numpy()[kept] == original[qi].to_numpy()[kept]).all()
    # Records already in a class of >= k are released untouched.
    before = table.fillna(SUPPRESSED)
    safe = before.groupby(qis)["row"].transform("size") >= k
    released_safe = out.set_index("row").loc[before.loc[safe, "row"], qis]
    assert released_safe.astype(object).equals(
        before.loc[safe].set_index("row")[qis].astype(object)
    )
    # Removed records are exactly those the all-"*" class could not absorb.
    assert report.records_removed == 0 or report.records_removed < k


def test_verification_failure_is_an_internal_error(monkeypatch):
    # Pretend every class is large: nothing gets suppressed, and the independent recount
    # must refuse to release the result.
    monkeypatch.setattr(kanon, "_class_sizes", lambda codes: np.full(len(codes), 10**6))
    with pytest.raises(RuntimeError, match="internal error"):
        enforce_k_anonymity(pd.DataFrame({"a": ["x", "y"]}), ["a"], k=2)


@pytest.mark.parametrize("k", [1, 0, -3, True, 2.0, "5", None])
def test_bad_k(k):
    with pytest.raises(ConfigError, match="k must be an integer >= 2"):
        enforce_k_anonymity(pd.DataFrame({"a": ["x"]}), ["a"], k)


def test_numpy_integer_k_is_accepted():
    _, report = enforce_k_anonymity(pd.DataFrame({"a": ["x", "x"]}), ["a"], np.int64(2))
    assert report.k == 2 and isinstance(report.k, int)


def test_missing_or_no_quasi_identifiers():
    with pytest.raises(DataError, match=r"\['zz'\]"):
        enforce_k_anonymity(pd.DataFrame({"a": ["x"]}), ["a", "zz"], 2)
    with pytest.raises(ConfigError, match="at least one"):
        enforce_k_anonymity(pd.DataFrame({"a": ["x"]}), [], 2)
