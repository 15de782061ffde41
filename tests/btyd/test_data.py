"""CustomerHistory's checks and the (x, t_x, T) built from fedmarket's aggregates."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.btyd import CustomerHistory, from_aggregates
from fedmarket.errors import DataError

NAMES = ["recency_days", "purchase_recency_days", "first_event_days", "first_purchase_days",
         "purchase_days", "frequency"]  # fmt: skip
NEVER = 58.0  # window_days + step_days of a 56-day window in 2-day steps


def test_history_is_float_and_read_only():
    h = CustomerHistory([0, 2], [0, 3.5], [10, 20])
    assert h.x.dtype == np.float64 and len(h) == 2
    with pytest.raises(ValueError):
        h.x[0] = 1
    assert h.subset(np.array([False, True])).t_x.tolist() == [3.5]


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([1, np.nan], [1, 1], [2, 2], "row 1 .* is not finite"),
        ([1, 1.5], [1, 1], [2, 2], "row 1 .* x is not a whole number"),
        ([-1], [0], [2], "row 0 .* x is not a whole number"),
        ([1, 2], [1, 3], [2, 2], r"row 1 \(x=2.0, t_x=3.0, T=2.0\) needs 0 <= t_x <= T"),
        ([0], [1], [2], "row 0 .* no repeat transaction"),
        ([1, 1], [1], [2, 2], "lengths 2, 1, 2"),
        (["a"], [1], [2], "x is not numeric"),
    ],
)
def test_bad_histories_name_the_first_bad_row(x, t_x, T, message):
    with pytest.raises(DataError, match=message):
        CustomerHistory(x, t_x, T)


def _agg(rows):
    """rows of (purchase_recency, first_event, first_purchase, purchase_days)."""
    out = np.zeros((len(rows), len(NAMES)), dtype=np.float32)
    for i, (recency, first_event, first_purchase, days) in enumerate(rows):
        out[i, 1:5] = recency, first_event, first_purchase, days
    return out


def test_from_aggregates_counts_repeat_purchase_days_from_the_first_event():
    agg = _agg(
        [
            (NEVER, 30.5, NEVER, 0),  # visitor who never bought: x=0, T = 30.5 days
            (30.25, 30.5, 30.25, 1),  # bought on the birth day only: x=0
            (2.0, 30.5, 30.25, 3),  # birth-day purchase + 2 more days: x=2, t_x=28.5
            (7.5, 40.75, 20.0, 2),  # first purchase 20.75 days after birth: x=2, t_x=33.25
        ]
    )
    h = from_aggregates(agg, NAMES, time_unit_days=7.0)
    assert h.x.tolist() == [0, 0, 2, 2]
    np.testing.assert_allclose(h.t_x, [0, 0, 28.5 / 7, 33.25 / 7])
    np.testing.assert_allclose(h.T, [30.5 / 7, 30.5 / 7, 30.5 / 7, 40.75 / 7])
    days = from_aggregates(agg, NAMES, time_unit_days=1.0)
    np.testing.assert_allclose(days.t_x, [0, 0, 28.5, 33.25])


def test_a_purchase_on_the_birth_utc_day_is_the_trial_even_hours_later():
    # first event 10.9 days before the cutoff (a UTC midnight), purchase 10.1 days before:
    # both on the UTC day 11 days back, so the purchase is the trial
    h = from_aggregates(_agg([(10.1, 10.9, 10.1, 1), (9.9, 10.1, 9.9, 1)]), NAMES)
    assert h.x.tolist() == [0, 1]  # second: the purchase is the next UTC day


def test_from_aggregates_names_the_missing_column():
    names = [n for n in NAMES if n != "first_purchase_days"]
    with pytest.raises(DataError, match=r"'first_purchase_days'.*re-run fedmarket data prepare"):
        from_aggregates(np.zeros((1, len(names))), names)


def test_from_aggregates_checks_shape_and_unit():
    with pytest.raises(DataError, match="does not match 6 column names"):
        from_aggregates(np.zeros((2, 3)), NAMES)
    with pytest.raises(DataError, match="time_unit_days must be > 0"):
        from_aggregates(_agg([(NEVER, 3, NEVER, 0)]), NAMES, time_unit_days=0)
