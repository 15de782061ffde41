import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import binomtest, norm
from torch import nn

from fedmarket.data import store
from fedmarket.errors import ConfigError, DataError
from fedmarket.intervals import delong_interval
from fedmarket.privacy.membership import (
    attack_metrics,
    clopper_pearson,
    epsilon_lower_bound,
    membership_samples,
    per_example_losses,
    rate_epsilon,
    tpr_at_fpr,
)


# --- the epsilon a (FPR, TPR) pair implies ---------------------------------------------------
def test_rate_epsilon_by_hand():
    # TPR 0.5 at FPR 0.1: log(0.5 / 0.1) = log 5 beats log(0.9 / 0.5)
    assert rate_epsilon(0.1, 0.5, 0.0) == pytest.approx(math.log(5))
    assert rate_epsilon(0.1, 0.5, 0.01) == pytest.approx(math.log(0.49 / 0.1))
    # a low-FPR attack that misses few members: the second inequality binds
    assert rate_epsilon(0.5, 0.95, 0.0) == pytest.approx(math.log(0.5 / 0.05))
    assert rate_epsilon(0.3, 0.3, 0.0) == 0.0  # guessing shows nothing
    assert rate_epsilon(0.4, 0.2, 0.0) == 0.0  # worse than guessing: never negative
    assert rate_epsilon(0.0, 0.2, 0.0) == math.inf  # no finite epsilon allows it
    assert rate_epsilon(0.0, 0.0, 0.0) == 0.0
    np.testing.assert_allclose(rate_epsilon([0.1, 0.3], [0.5, 0.3], 0.0), [math.log(5), 0.0])


def test_clopper_pearson_matches_scipy_exact_interval():
    for k, n in [(0, 50), (3, 50), (25, 50), (50, 50), (7, 1000)]:
        lo, hi = clopper_pearson(k, n, 0.95)
        ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert (float(lo), float(hi)) == pytest.approx((ref.low, ref.high), abs=1e-12)
    lo, hi = clopper_pearson(0, 500, 0.95)  # closed forms at the ends
    assert (float(lo), float(hi)) == pytest.approx((0.0, 1 - 0.025 ** (1 / 500)))


def test_lower_bound_uses_the_pessimistic_ends():
    # 10 false positives of 1000 non-members, 500 true positives of 1000 members
    _, fpr_hi = clopper_pearson(10, 1000, 0.95)
    tpr_lo, _ = clopper_pearson(500, 1000, 0.95)
    expected = math.log(float(tpr_lo) / float(fpr_hi))
    assert epsilon_lower_bound(10, 1000, 500, 1000, 0.0) == pytest.approx(expected)
    assert 0 < expected < math.log(50)  # below the plug-in value log(0.5 / 0.01)


def test_tpr_at_fpr_interpolates_on_the_upper_envelope():
    fpr = np.array([0.0, 0.0, 0.5, 1.0])
    tpr = np.array([0.0, 0.5, 0.75, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.0) == 0.5  # the best TPR at FPR 0, not the first
    assert tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(0.5 + 0.25 * 0.01 / 0.5)
    assert tpr_at_fpr(fpr, tpr, 1.0) == 1.0


def test_delong_interval_matches_the_pairwise_definition():
    """Placements counted pair by pair (ties half), the variance formula written out."""
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=60), 1)  # rounding makes ties
    member = np.arange(60) < 25
    scores[member] += 0.4
    pos, neg = scores[member], scores[~member]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = wins.mean(axis=1), wins.mean(axis=0)
    se = math.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    auc = wins.mean()
    lo, hi = delong_interval(scores, member, 0.95)
    assert (lo, hi) == pytest.approx((auc - 1.959964 * se, auc + 1.959964 * se), abs=1e-6)
    assert attack_metrics(scores, member, delta=0.0).roc_auc == pytest.approx(auc)


# --- the attack's metrics on cases with a known answer ---------------------------------------
def test_perfectly_separable_members():
    n = 1000
    losses = np.r_[np.full(n, 0.1), np.full(n, 2.0)]  # members fit far better
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    result = attack_metrics(-losses, member, delta=0.0)
    assert result.roc_auc == 1.0
    assert result.roc_auc_ci == (1.0, 1.0)  # every placement is 1: no variance
    assert dict(result.tpr_at_fpr) == {0.001: 1.0, 0.01: 1.0}
    assert result.epsilon_point == math.inf
    # measured on the held-out half (500 + 500): 0/500 FP and 500/500 TP, at 95%:
    # FPR <= 1 - 0.025^(1/500), TPR >= 0.025^(1/500)
    tpr_lo = 0.025 ** (1 / 500)
    assert result.epsilon_lower_bound == pytest.approx(math.log(tpr_lo / (1 - tpr_lo)))
    assert result.epsilon_lower_bound == pytest.approx(4.9056, abs=1e-4)
    assert (result.n_members, result.n_nonmembers) == (n, n)


def test_identical_distributions_show_nothing():
    rng = np.random.default_rng(0)
    n = 4000
    scores = rng.normal(size=2 * n)
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    result = attack_metrics(scores, member, delta=1e-5)
    assert result.roc_auc == pytest.approx(0.5, abs=0.02)
    lo, hi = result.roc_auc_ci
    assert lo < 0.5 < hi and hi - lo == pytest.approx(
        2 * 1.96 * math.sqrt(1 / (12 * n) * 2), rel=0.05
    )
    assert dict(result.tpr_at_fpr)[0.01] == pytest.approx(0.01, abs=0.006)
    assert result.epsilon_lower_bound == 0.0


def test_gaussian_shift_matches_theory_and_the_bound_is_sound():
    """Members' scores N(mu, 1), non-members' N(0, 1): AUC = Phi(mu / sqrt 2), TPR at FPR f =
    Phi(mu - Phi^-1(1 - f)); the test is mu-GDP, so no sound bound exceeds its epsilon."""
    mu, n, delta = 2.0, 20000, 1e-5
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(mu, 1, n), rng.normal(0, 1, n)]
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    result = attack_metrics(scores, member, delta=delta)
    assert result.roc_auc == pytest.approx(norm.cdf(mu / math.sqrt(2)), abs=0.005)
    lo, hi = result.roc_auc_ci
    assert lo < norm.cdf(mu / math.sqrt(2)) < hi
    tolerance = {0.001: 0.05, 0.01: 0.03}  # 20 and 200 non-members above the threshold
    for f, tpr in result.tpr_at_fpr:
        assert tpr == pytest.approx(norm.cdf(mu - norm.ppf(1 - f)), abs=tolerance[f])
    true_eps = _gdp_epsilon(mu, delta)  # 6.4 for mu = 2, delta = 1e-5
    assert 1.0 < result.epsilon_lower_bound < true_eps


def _gdp_epsilon(mu: float, delta: float) -> float:
    from scipy.optimize import brentq

    def gap(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return brentq(gap, 0.0, 50.0)


@pytest.mark.parametrize(
    ("scores", "member", "message"),
    [
        ([0.1, np.nan, 0.3, 0.4], [1, 1, 0, 0], "non-finite"),
        ([0.1, 0.2, 0.3, 0.4], [1, 1, 1, 0], "two members and two non-members"),
        ([0.1, 0.2, 0.3], [1, 0], "1-D of one length"),
    ],
)
def test_bad_attack_input(scores, member, message):
    with pytest.raises(DataError, match=message):
        attack_metrics(scores, member, delta=0.0)


def test_bad_confidence_and_delta():
    scores, member = [0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0]
    with pytest.raises(ConfigError, match="confidence"):
        attack_metrics(scores, member, delta=0.0, confidence=1.0)
    with pytest.raises(ConfigError, match="delta"):
        attack_metrics(scores, member, delta=1.0)


# --- losses, samples and a run directory -------------------------------------------------------
class _Constant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x))


def test_per_example_losses_by_hand(tiny_data: Path):
    split = store.load_split(tiny_data, 0, "test")
    losses = per_example_losses(_Constant(), split, "purchase")
    np.testing.assert_allclose(losses, np.full(len(split), math.log(2)), rtol=1e-6)
    counts = per_example_losses(_Constant(), split, "purchase-count")  # Poisson, rate 1
    np.testing.assert_allclose(counts, np.ones(len(split)), rtol=1e-6)  # exp(0) - y * 0


def test_membership_samples_are_balanced_per_retailer(tiny_data: Path):
    members, nonmembers = membership_samples(tiny_data, seed=3)
    manifest = store.read_manifest(tiny_data)
    n_test = sum(p["test"]["n"] for p in manifest["partitions"])
    assert len(members) == len(nonmembers) == n_test
    train_ids = set(store.load_pooled(tiny_data, "train").customer.tolist())
    test_ids = set(store.load_pooled(tiny_data, "test").customer.tolist())
    assert set(members.customer.tolist()) <= train_ids
    assert set(nonmembers.customer.tolist()) == test_ids
    again, _ = membership_samples(tiny_data, seed=3)
    assert again.customer.tolist() == members.customer.tolist()
