"""Each player's value in a cooperative game: leave-one-out, exact Shapley, and Ghorbani and
Zou's truncated Monte-Carlo permutation Shapley (Data Shapley, ICML 2019).

The estimators are pure functions of a ``value(coalition)`` callable, so the arithmetic is
tested on games with a known answer and the expensive part (a federated run per coalition)
is injected. A coalition is a ``frozenset`` of player ids; ``value`` is asked only for
coalitions other than the empty and the grand one, whose values are given, and each only
once (the values are cached and reused across permutations).

``value`` may raise ``CoalitionFailed`` (its run failed: that permutation, or that player's
leave-one-out value, is left out) or ``BudgetSpent`` (no more runs allowed: the estimate
stops with what it has, and says how many permutations it used).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Coalition = frozenset[int]
ValueFn = Callable[[Coalition], float]


class CoalitionFailed(Exception):
    """The value of a coalition could not be computed (its run failed)."""


class BudgetSpent(Exception):
    """Computing one more coalition's value would exceed the allowed number of runs."""


@dataclass
class CachedGame:
    """``value`` with the empty and grand coalitions given and every answer remembered."""

    players: tuple[int, ...]
    value: ValueFn
    grand: float
    empty: float
    cache: dict[Coalition, float] = field(default_factory=dict)

    def __call__(self, coalition: Coalition) -> float:
        coalition = frozenset(coalition)
        if not coalition:
            return self.empty
        if coalition == frozenset(self.players):
            return self.grand
        if coalition not in self.cache:
            self.cache[coalition] = float(self.value(coalition))
        return self.cache[coalition]


@dataclass(frozen=True)
class Estimate:
    """Each player's value and its standard error (0 where exact; NaN where not estimated:
    leave-one-out, one run per coalition, or a player without two marginals)."""

    method: str
    values: dict[int, float]
    se: dict[int, float]
    permutations: int = 0  # permutations that finished (Shapley by Monte Carlo)
    failed_permutations: int = 0
    truncated: int = 0  # coalition values not computed because of truncation
    stopped_early: bool = False  # the run budget ended the estimate


def leave_one_out(game: CachedGame) -> Estimate:
    """v(N) - v(N without i) for each player i; NaN for a player whose run failed."""
    grand = frozenset(game.players)
    values: dict[int, float] = {}
    stopped = False
    for player in game.players:
        if stopped:
            values[player] = math.nan
            continue
        try:
            values[player] = game.grand - game(grand - {player})
        except CoalitionFailed:
            values[player] = math.nan
        except BudgetSpent:
            values[player], stopped = math.nan, True
    # one run per coalition: its run-to-run noise (seed, DP noise) is not measured, so no SE
    se = dict.fromkeys(game.players, math.nan)
    return Estimate("loo", values, se, stopped_early=stopped)


def exact_shapley(game: CachedGame) -> Estimate:
    """The Shapley value by its definition: 2^N coalitions (for tests and tiny games)."""
    n = len(game.players)
    values = dict.fromkeys(game.players, 0.0)
    for player in game.players:
        others = [p for p in game.players if p != player]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                values[player] += weight * (game(s | {player}) - game(s))
    return Estimate("shapley-exact", values, dict.fromkeys(game.players, 0.0))


def permutation_order(players: Sequence[int], permutations: int, seed: int) -> list[list[int]]:
    """The seeded permutations the Monte-Carlo estimate walks, in order (a rerun with the
    same seed walks the same ones, so its cached coalitions are the ones it needs)."""
    rng = np.random.default_rng(seed)
    return [[int(p) for p in rng.permutation(list(players))] for _ in range(permutations)]


def monte_carlo_shapley(
    game: CachedGame, permutations: int, *, tolerance: float = 0.01, seed: int = 0
) -> Estimate:
    """Truncated Monte-Carlo permutation Shapley.

    Each permutation adds the players one by one; a player's marginal contribution is the
    change in value it brings. Once the coalition so far is within ``tolerance`` x |v(N)|
    of the grand value, the remaining players' contributions are taken as 0 without
    training them (truncation: the model cannot improve much more). The standard error of
    a player's value is the standard deviation of its marginal contributions over
    permutations divided by sqrt(permutations).
    """
    marginals: dict[int, list[float]] = {p: [] for p in game.players}
    failed = truncated = done = 0
    stopped = False
    for order in permutation_order(game.players, permutations, seed):
        try:
            row, cut = _walk(game, order, tolerance)
        except CoalitionFailed:
            failed += 1
            continue
        except BudgetSpent:
            stopped = True
            break
        done += 1
        truncated += cut
        for player, gain in row.items():
            marginals[player].append(gain)
    values = {p: float(np.mean(m)) if m else math.nan for p, m in marginals.items()}
    se = {p: _se(m) for p, m in marginals.items()}
    return Estimate("shapley", values, se, done, failed, truncated, stopped)


def _walk(game: CachedGame, order: list[int], tolerance: float) -> tuple[dict[int, float], int]:
    """One permutation's marginal contributions and how many values truncation skipped."""
    row: dict[int, float] = {}
    coalition: Coalition = frozenset()
    before = game.empty
    cut = 0
    for position, player in enumerate(order):
        if abs(game.grand - before) < tolerance * abs(game.grand):
            row[player] = 0.0
            cut += int(position < len(order) - 1)  # the grand value is never computed
            coalition = coalition | {player}
            continue
        coalition = coalition | {player}
        after = game(coalition)
        row[player] = after - before
        before = after
    return row, cut


def _se(marginals: list[float]) -> float:
    if len(marginals) < 2:
        return math.nan
    return float(np.std(marginals, ddof=1) / math.sqrt(len(marginals)))


def runs_needed(
    players: Sequence[int], method: str, known: set[Coalition], permutations: int = 0, seed: int = 0
) -> int:
    """Coalitions still to train, less the ones already ``known``: exact for leave-one-out;
    for Shapley an upper bound, the distinct coalitions the seeded permutations would visit
    without truncation (at most permutations x (N-1), and at most 2^N - 2)."""
    everyone = frozenset(players)
    if method == "loo":
        wanted = {everyone - {p} for p in players}
    else:
        wanted = {
            frozenset(order[:k])
            for order in permutation_order(players, permutations, seed)
            for k in range(1, len(order))
        }
    return len(wanted - set(known))
