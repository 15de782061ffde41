from __future__ import annotations

import math

import pytest

from fedmarket.errors import ConfigError, DataError
from fedmarket.scoring.campaign import campaign_outcome, newcombe, wilson


def test_newcombe_reproduces_the_papers_examples():
    # Newcombe (1998), Stat Med 17:873, Table II, method 10
    assert newcombe(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert newcombe(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=5e-5)


def test_wilson_at_zero():
    # z^2 / (n + z^2) with z = 1.959964
    z2 = 1.959963984540054**2
    assert wilson(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))


def test_outcome_hand_computed():
    bought = [1] * 30 + [0] * 70 + [1] * 10 + [0] * 90
    holdout = [False] * 100 + [True] * 100
    o = campaign_outcome(bought, holdout, [0.25] * 100 + [0.15] * 100)
    assert (o.contacted, o.contacted_buyers, o.holdout, o.holdout_buyers) == (100, 30, 100, 10)
    assert o.rate_contacted == 0.3 and o.rate_holdout == 0.1
    assert o.difference == pytest.approx(0.2)
    assert o.ratio == pytest.approx(3.0)
    # Katz: exp(ln 3 -+ 1.96 sqrt(1/30 - 1/100 + 1/10 - 1/100))
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 10 - 1 / 100)
    z = 1.959963984540054
    assert o.ratio_low == pytest.approx(3 * math.exp(-z * se))
    assert o.ratio_high == pytest.approx(3 * math.exp(z * se))
    assert o.difference_low < 0.2 < o.difference_high
    assert o.p_value == pytest.approx(0.00065, rel=0.01)  # Fisher's exact, two-sided
    assert o.predicted_contacted == pytest.approx(0.25)
    assert o.predicted_holdout == pytest.approx(0.15)


def test_no_effect_is_not_significant():
    bought = [1, 0] * 50 + [1, 0] * 50
    o = campaign_outcome(bought, [False] * 100 + [True] * 100, [0.5] * 200)
    assert o.difference == 0 and o.p_value == pytest.approx(1.0)
    assert o.difference_low < 0 < o.difference_high


def test_bad_input():
    with pytest.raises(DataError, match="needs both"):
        campaign_outcome([1, 0], [False, False], [0.1, 0.2])
    with pytest.raises(DataError, match="2 outcomes"):
        campaign_outcome([1, 0], [False], [0.1, 0.2])
    with pytest.raises(ConfigError, match="confidence"):
        campaign_outcome([1, 0], [False, True], [0.1, 0.2], confidence=1.5)
