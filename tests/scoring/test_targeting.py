from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedmarket.errors import ConfigError, DataError
from fedmarket.scoring.targeting import (
    SelectionRule,
    deciles,
    rank_customers,
    select,
    summarise,
)

P = np.array([0.1, 0.9, 0.3, 0.5, 0.2, 0.7, 0.05, 0.4, 0.6, 0.8])
IDS = np.array([f"c{i}" for i in range(10)])


def test_top_fraction_selects_the_highest_scores_with_ranks_and_deciles():
    t = select(P, IDS, SelectionRule(top_fraction=0.3))
    # scores in order: 0.9 (c1), 0.8 (c9), 0.7 (c5), 0.6 (c8), 0.5 (c3), ...
    assert t["rank"].tolist() == [9, 1, 7, 5, 8, 3, 10, 6, 4, 2]
    assert t["decile"].tolist() == [9, 1, 7, 5, 8, 3, 10, 6, 4, 2]
    assert IDS[t["selected"]].tolist() == ["c1", "c5", "c9"]
    assert not t["holdout"].any()


def test_top_fraction_counts_as_marketing_does():
    # 0.1 * 30 is 3.0000000000000004 in floating point: 3 customers, not 4
    p = np.linspace(0, 1, 30)
    ids = [str(i) for i in range(30)]
    assert select(p, ids, SelectionRule(top_fraction=0.1))["selected"].sum() == 3
    assert select(p, ids, SelectionRule(top_fraction=0.01))["selected"].sum() == 1


def test_top_n_and_more_than_there_are():
    assert IDS[select(P, IDS, SelectionRule(top_n=2))["selected"]].tolist() == ["c1", "c9"]
    assert select(P, IDS, SelectionRule(top_n=50))["selected"].all()


def test_profit_rule_contacts_positive_expected_profit():
    # p * 10 - 4 > 0  <=>  p > 0.4: c1 0.9, c3 0.5, c5 0.7, c8 0.6, c9 0.8 (0.4 is not > 0)
    rule = SelectionRule(margin=10.0, contact_cost=4.0)
    t = select(P, IDS, rule)
    assert IDS[t["selected"]].tolist() == ["c1", "c3", "c5", "c8", "c9"]
    s = summarise(P, t, rule)
    assert s.expected_profit == pytest.approx((0.9 + 0.5 + 0.7 + 0.6 + 0.8) * 10 - 5 * 4)


def test_profit_rule_uses_the_expected_count():
    count = np.array([0.1, 2.0, 0.3, 0.5, 0.2, 0.7, 0.05, 0.4, 0.6, 0.8])
    p = 1 - np.exp(-count)
    rule = SelectionRule(margin=5.0, contact_cost=3.0)  # count > 0.6
    t = select(p, IDS, rule, expected_count=count)
    assert IDS[t["selected"]].tolist() == ["c1", "c5", "c9"]
    s = summarise(p, t, rule, expected_count=count)
    assert s.expected_purchases == pytest.approx(3.5)
    assert s.expected_profit == pytest.approx(3.5 * 5 - 9)


def test_summary_hand_computed():
    rule = SelectionRule(top_fraction=0.3)
    t = select(P, IDS, rule)
    s = summarise(P, t, rule)
    assert (s.customers, s.selected, s.contacted, s.holdout) == (10, 3, 3, 0)
    assert s.expected_buyers == pytest.approx(2.4)
    assert s.expected_lift == pytest.approx(0.8 / P.mean())  # 0.8 / 0.445
    assert s.expected_profit is None and s.expected_purchases is None


def test_holdout_is_drawn_among_the_selected_seeded():
    p = np.linspace(0.01, 0.99, 100)
    ids = [f"u{i:03d}" for i in range(100)]
    rule = SelectionRule(top_n=40)
    t = select(p, ids, rule, holdout_fraction=0.25, seed=7)
    assert t["holdout"].sum() == 10
    assert (t["selected"] | ~t["holdout"]).all()  # holdout implies selected
    again = select(p, ids, rule, holdout_fraction=0.25, seed=7)
    pd.testing.assert_frame_equal(t, again)
    other = select(p, ids, rule, holdout_fraction=0.25, seed=8)
    assert not np.array_equal(t["holdout"], other["holdout"])
    s = summarise(p, t, rule)
    assert (s.selected, s.contacted, s.holdout) == (40, 30, 10)
    assert s.expected_buyers == pytest.approx(p[t["selected"] & ~t["holdout"]].sum())


def test_ties_are_deterministic_and_independent_of_row_order():
    p = np.array([0.5, 0.5, 0.5, 0.5, 0.9, 0.1])
    ids = np.array(["a", "b", "c", "d", "e", "f"])
    rule = SelectionRule(top_n=3)
    t = select(p, ids, rule, seed=3)
    chosen = set(ids[t["selected"]])
    assert "e" in chosen and len(chosen) == 3 and "f" not in chosen
    perm = np.array([5, 3, 0, 4, 2, 1])
    t2 = select(p[perm], ids[perm], rule, seed=3)
    assert set(ids[perm][t2["selected"]]) == chosen
    assert dict(zip(ids[perm], t2["rank"], strict=True)) == dict(zip(ids, t["rank"], strict=True))


def test_rank_and_deciles_hand_computed():
    r = rank_customers([0.2, 0.8, 0.5], ["x", "y", "z"], np.random.default_rng(0))
    assert r.tolist() == [3, 1, 2]
    assert deciles(np.arange(1, 21)).tolist() == [i for i in range(1, 11) for _ in range(2)]
    assert deciles([1, 2, 3]).tolist() == [4, 7, 10]


def test_lift_is_nan_without_any_probability():
    p = np.zeros(4)
    rule = SelectionRule(top_n=1)
    assert math.isnan(summarise(p, select(p, list("abcd"), rule), rule).expected_lift)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"top_fraction": 0.1, "top_n": 5}, "both given"),
        ({"top_fraction": 1.5}, r"\(0, 1\]"),
        ({"top_fraction": 0.0}, r"\(0, 1\]"),
        ({"top_n": 0}, "at least one"),
        ({"margin": -1.0}, ">= 0"),
        ({"margin": 1.0, "contact_cost": -1.0}, ">= 0"),
        ({}, "no selection rule"),
    ],
)
def test_bad_rules(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SelectionRule(**kwargs)


def test_bad_inputs():
    rule = SelectionRule(top_n=1)
    with pytest.raises(DataError, match="one score each"):
        select([0.1, 0.2], ["a"], rule)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        select([1.5], ["a"], rule)
    with pytest.raises(DataError, match="repeat"):
        select([0.1, 0.2], ["a", "a"], rule)
    with pytest.raises(ConfigError, match="holdout"):
        select([0.1], ["a"], rule, holdout_fraction=1.0)
