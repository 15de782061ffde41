"""Synthetic consortia whose contributions are known, valued with a cheap stand-in for a
federated run: logistic regression on the coalition's pooled training customers, scored by
ROC-AUC on every retailer's test customers (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fedmarket.contribution.values import (
    CachedGame,
    exact_shapley,
    leave_one_out,
    monte_carlo_shapley,
)


def customers(rng, n, segment):
    """Segment 0 buys when x0 > 0, segment 1 when x1 > 0 (another behaviour)."""
    x = rng.normal(size=(n, 2))
    y = (x[:, segment] + 0.3 * rng.normal(size=n) > 0).astype(int)
    s = np.full(n, float(segment))
    features = np.column_stack([x, s[:, None] * x, s])
    return features, y


def value_game(train, test):
    X_test = np.concatenate([t[0] for t in test])
    y_test = np.concatenate([t[1] for t in test])

    def value(coalition):
        X = np.concatenate([train[p][0] for p in sorted(coalition)])
        y = np.concatenate([train[p][1] for p in sorted(coalition)])
        model = LogisticRegression(C=1.0, max_iter=500).fit(X, y)
        return roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])

    players = tuple(range(len(train)))
    return CachedGame(players, value, grand=value(frozenset(players)), empty=0.5)


def test_shuffled_labels_and_a_duplicate_are_worth_about_nothing():
    rng = np.random.default_rng(0)
    a, b = customers(rng, 150, 0), customers(rng, 150, 0)
    shuffled = customers(rng, 150, 0)
    shuffled = (shuffled[0], rng.permutation(shuffled[1]))
    train = [a, b, a, shuffled]  # retailer 2 duplicates retailer 0
    test = [customers(rng, 200, 0) for _ in range(4)]
    game = value_game(train, test)
    loo = leave_one_out(game).values
    assert abs(loo[2]) < 0.01  # the duplicate: nothing lost without it
    assert abs(loo[3]) < 0.01  # shuffled labels: nothing lost without them
    shapley = exact_shapley(game).values
    assert abs(shapley[3]) < 0.2 * shapley[1]
    # a duplicate is a symmetric player: Shapley splits the value it shares with its original
    assert shapley[2] == pytest.approx(shapley[0])


def test_the_only_retailer_with_a_behaviour_is_worth_the_most():
    rng = np.random.default_rng(1)
    train = [customers(rng, 150, 0) for _ in range(3)] + [customers(rng, 150, 1)]
    test = [customers(rng, 100, 0) for _ in range(3)] + [customers(rng, 300, 1)]
    game = value_game(train, test)
    for estimate in (
        leave_one_out(game),
        exact_shapley(game),
        monte_carlo_shapley(game, 30, tolerance=0.01, seed=0),
    ):
        values = estimate.values
        assert max(values, key=values.get) == 3, estimate
        assert values[3] > 1.5 * max(values[p] for p in (0, 1, 2))
    mc = monte_carlo_shapley(game, 30, tolerance=0.0, seed=0)
    exact = exact_shapley(game).values
    for p in range(4):  # the estimate is within 3 SE of the truth
        assert abs(mc.values[p] - exact[p]) <= 3 * mc.se[p] + 1e-9
