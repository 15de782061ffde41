"""The estimators on a 3-player game whose values are written out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fedmarket.contribution.values import (
    BudgetSpent,
    CachedGame,
    CoalitionFailed,
    exact_shapley,
    leave_one_out,
    monte_carlo_shapley,
    permutation_order,
    runs_needed,
)

# v(S) for every coalition of players 0, 1, 2
GAME = {
    (): 0.0,
    (0,): 0.2,
    (1,): 0.3,
    (2,): 0.1,
    (0, 1): 0.6,
    (0, 2): 0.4,
    (1, 2): 0.5,
    (0, 1, 2): 0.9,
}
# by hand: phi_0 = 0.2/3 + 0.3/6 + 0.3/6 + 0.4/3 = 0.3; phi_1 = 0.4; phi_2 = 0.2
SHAPLEY = {0: 0.3, 1: 0.4, 2: 0.2}
LOO = {0: 0.9 - 0.5, 1: 0.9 - 0.4, 2: 0.9 - 0.6}


def game(values=GAME, asked=None):
    def value(coalition):
        if asked is not None:
            asked.append(coalition)
        return values[tuple(sorted(coalition))]

    return CachedGame((0, 1, 2), value, grand=values[(0, 1, 2)], empty=values[()])


def test_leave_one_out_by_hand():
    asked = []
    est = leave_one_out(game(asked=asked))
    assert est.values == pytest.approx(LOO)
    assert all(math.isnan(se) for se in est.se.values())  # one run each: not estimated
    assert sorted(map(sorted, asked)) == [[0, 1], [0, 2], [1, 2]]  # the grand one is given


def test_exact_shapley_by_hand_and_efficiency():
    est = exact_shapley(game())
    assert est.values == pytest.approx(SHAPLEY)
    assert sum(est.values.values()) == pytest.approx(GAME[(0, 1, 2)] - GAME[()])


def test_all_six_permutations_average_to_the_exact_value(monkeypatch):
    import fedmarket.contribution.values as values

    orders = [list(p) for p in itertools.permutations((0, 1, 2))]
    monkeypatch.setattr(values, "permutation_order", lambda players, n, seed: orders)
    est = monte_carlo_shapley(game(), 6, tolerance=0.0)
    assert est.values == pytest.approx(SHAPLEY)
    assert est.permutations == 6 and est.truncated == 0
    # player 0's marginals in the orders above: 0.2 0.2 0.3 0.4 0.3 0.4
    marginals = [0.2, 0.2, 0.3, 0.4, 0.3, 0.4]
    assert est.se[0] == pytest.approx(np.std(marginals, ddof=1) / math.sqrt(6))


def test_each_coalition_is_trained_once_across_permutations():
    asked = []
    monte_carlo_shapley(game(asked=asked), 30, tolerance=0.0, seed=1)
    assert len(asked) == len(set(asked)) <= 6


def test_truncation_skips_what_cannot_change_much(monkeypatch):
    # player 0 alone already reaches the grand value: after it, nobody is trained
    values = dict(GAME) | {(0,): 0.9}
    asked = []
    orders = [[0, 1, 2], [1, 0, 2]]
    import fedmarket.contribution.values as module

    monkeypatch.setattr(module, "permutation_order", lambda players, n, seed: orders)
    est = monte_carlo_shapley(game(values, asked), 2, tolerance=0.01)
    # order 1: 0 gains 0.9, 1 and 2 truncated (0); order 2: 1 gains 0.3, 0 gains 0.3,
    # then v({0,1}) = 0.6 is not within 1% of 0.9, so 2 gains 0.3
    assert est.values == pytest.approx({0: 0.6, 1: 0.15, 2: 0.15})
    assert est.truncated == 1  # v({0,1}) skipped in the first order; v(all) is given
    assert frozenset({0, 1}) in asked and frozenset({0, 2}) not in asked


def test_a_failed_coalition_drops_its_permutation_and_the_budget_stops():
    def value(coalition):
        if coalition == frozenset({1}):
            raise CoalitionFailed("boom")
        return GAME[tuple(sorted(coalition))]

    est = monte_carlo_shapley(CachedGame((0, 1, 2), value, 0.9, 0.0), 20, tolerance=0, seed=0)
    starts = [o[0] for o in permutation_order((0, 1, 2), 20, 0)]
    assert est.failed_permutations == starts.count(1)
    assert est.permutations == 20 - starts.count(1)

    def spent(coalition):
        raise BudgetSpent

    stopped = monte_carlo_shapley(CachedGame((0, 1, 2), spent, 0.9, 0.0), 5, seed=0)
    assert stopped.stopped_early and stopped.permutations == 0
    assert all(math.isnan(v) for v in stopped.values.values())
    loo = leave_one_out(CachedGame((0, 1, 2), spent, 0.9, 0.0))
    assert loo.stopped_early and all(math.isnan(v) for v in loo.values.values())


def test_runs_needed_counts_what_is_not_recorded():
    players = (0, 1, 2)
    assert runs_needed(players, "loo", set()) == 3
    assert runs_needed(players, "loo", {frozenset({0, 1})}) == 2
    assert runs_needed(players, "shapley", set(), permutations=1) == 2  # N - 1
    assert runs_needed(players, "shapley", set(), permutations=500) == 6  # 2^N - 2
    known = {frozenset(o[:1]) for o in permutation_order(players, 1, 0)}
    assert runs_needed(players, "shapley", known, permutations=1) == 1


def test_permutations_are_seeded():
    assert permutation_order((0, 1, 2, 3), 5, 7) == permutation_order((0, 1, 2, 3), 5, 7)
    assert permutation_order((0, 1, 2, 3), 5, 7) != permutation_order((0, 1, 2, 3), 5, 8)
