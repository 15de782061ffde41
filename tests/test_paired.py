"""fedmarket.paired: DeLong's paired test against a brute-force reference of its structural
components, the degenerate cases without NaN warnings, and the seeded paired bootstrap."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from fedmarket.errors import ConfigError, DataError
from fedmarket.marketing import lift_at_k
from fedmarket.paired import (
    METRICS,
    compare,
    delong_components,
    paired_bootstrap,
    paired_delong,
)


def brute_components(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """V10 and V01 from their definition: psi(x, y) = 1 if x > y, 1/2 if equal, 0 else."""
    pos, neg = s[y == 1], s[y == 0]
    psi = np.array([[1.0 if p > q else 0.5 if p == q else 0.0 for q in neg] for p in pos])
    return psi.mean(axis=1), psi.mean(axis=0)


def small_sample(seed: int = 0, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated models' scores, rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    y[:2], y[2:4] = 1.0, 0.0  # both classes, at least twice
    shared = rng.normal(size=n)
    a = np.round(y + shared + rng.normal(scale=0.8, size=n), 1)
    b = np.round(0.5 * y + shared + rng.normal(scale=0.8, size=n), 1)
    return y, a, b


def test_components_equal_the_brute_force_definition_with_ties():
    y, a, _ = small_sample()
    assert len(np.unique(a)) < len(a)  # the sample has ties
    v10, v01 = delong_components(y, a)
    ref10, ref01 = brute_components(y, a)
    np.testing.assert_allclose(v10, ref10, atol=1e-12)
    np.testing.assert_allclose(v01, ref01, atol=1e-12)
    assert v10.mean() == pytest.approx(roc_auc_score(y, a), abs=1e-12)


def test_paired_delong_equals_the_covariance_formula_on_brute_force_components():
    y, a, b = small_sample(seed=3)
    (a10, a01), (b10, b01) = brute_components(y, a), brute_components(y, b)
    s10, s01 = np.cov(np.vstack([a10, b10])), np.cov(np.vstack([a01, b01]))
    contrast = np.array([1.0, -1.0])
    var = contrast @ s10 @ contrast / len(a10) + contrast @ s01 @ contrast / len(a01)
    diff = roc_auc_score(y, a) - roc_auc_score(y, b)
    se = math.sqrt(var)
    result = paired_delong(y, a, b)
    assert result.a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result.b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result.difference == pytest.approx(diff, abs=1e-12)
    assert result.low == pytest.approx(diff - 1.959963984540054 * se, abs=1e-9)
    assert result.high == pytest.approx(diff + 1.959963984540054 * se, abs=1e-9)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(diff) / se), rel=1e-9)
    assert result.method == "delong" and result.metric == "roc_auc"


def test_pairing_narrows_the_interval_of_correlated_models():
    """The paired variance is below the sum of the two AUCs' own variances."""
    y, a, b = small_sample(seed=5, n=400)
    (a10, a01), (b10, b01) = delong_components(y, a), delong_components(y, b)
    alone = sum(np.var(v, ddof=1) / len(v) for v in (a10, a01, b10, b01))
    paired = paired_delong(y, a, b)
    assert ((paired.high - paired.low) / (2 * 1.959963984540054)) ** 2 < alone / 2


def test_identical_scores_give_zero_and_a_degenerate_interval_without_warnings():
    y, a, _ = small_sample()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        delong = paired_delong(y, a, a.copy())
        boot = paired_bootstrap(y, a, a.copy(), "pr_auc", rng=np.random.default_rng(0))
    for r in (delong, boot):
        assert (r.difference, r.low, r.high, r.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_perfect_against_constant_scores_is_a_certain_difference():
    y = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = paired_delong(y, y * 2, np.full(6, 0.3))
    assert (r.a, r.b, r.difference, r.low, r.high, r.p_value) == (1.0, 0.5, 0.5, 0.5, 0.5, 0.0)


def test_bootstrap_is_reproducible_with_a_seed_and_varies_without():
    y, a, b = small_sample(seed=1, n=200)
    first = paired_bootstrap(y, a, b, "lift_at_10", rng=np.random.default_rng(7), resamples=300)
    again = paired_bootstrap(y, a, b, "lift_at_10", rng=np.random.default_rng(7), resamples=300)
    other = paired_bootstrap(y, a, b, "lift_at_10", rng=np.random.default_rng(8), resamples=300)
    assert first == again and (first.low, first.high) != (other.low, other.high)
    lift = lambda s: lift_at_k(y, s, ks=(0.1,))[0]["lift"]  # noqa: E731
    assert first.difference == pytest.approx(lift(a) - lift(b), abs=1e-12)
    assert first.low <= first.high and first.method == "bootstrap" and first.resamples == 300


def test_a_clearly_better_model_has_an_interval_above_zero():
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.3).astype(float)
    good, noise = y + rng.normal(scale=0.5, size=500), rng.normal(size=500)
    for metric in ("roc_auc", "pr_auc"):
        r = compare(y, good, noise, metric, rng=np.random.default_rng(0), resamples=300)
        assert r.low > 0 and r.p_value < 0.01, r
    assert compare(y, good, noise, "pr_auc", rng=np.random.default_rng(0), resamples=300).a == (
        pytest.approx(average_precision_score(y, good))
    )


def test_count_metrics():
    y = np.array([0, 0, 1, 2, 0, 3, 1, 0, 0, 5], dtype=float)
    s = np.array([0.1, 0.2, 0.9, 1.5, 0.3, 2.0, 1.2, 0.1, 0.5, 4.0])
    assert METRICS["rmse"].fn(y, s) == pytest.approx(math.sqrt(np.mean((y - s) ** 2)))
    assert METRICS["mae"].fn(y, s) == pytest.approx(np.mean(np.abs(y - s)))
    assert METRICS["pearson"].fn(y, s) == pytest.approx(np.corrcoef(y, s)[0, 1])
    assert math.isnan(METRICS["pearson"].fn(y, np.ones(10)))  # no spread: undefined, no warning
    r = paired_bootstrap(y, s, s * 0.5, "rmse", rng=np.random.default_rng(0), resamples=200)
    assert r.difference == pytest.approx(METRICS["rmse"].fn(y, s) - METRICS["rmse"].fn(y, s / 2))


def test_bad_input_is_refused():
    y, a, b = small_sample()
    with pytest.raises(DataError, match="buyers and non-buyers"):
        paired_delong(np.ones(5), np.arange(5.0), np.arange(5.0))
    with pytest.raises(DataError, match="at least 2 buyers"):
        paired_delong(np.array([1, 0, 0.0]), np.arange(3.0), np.arange(3.0))
    with pytest.raises(DataError, match="one value per customer"):
        paired_delong(y, a, b[:-1])
    with pytest.raises(DataError, match="finite"):
        paired_delong(y, np.where(y > 0, np.nan, a), b)
    with pytest.raises(ConfigError, match="did you mean 'pr_auc'"):
        compare(y, a, b, "pr-auc", rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="at least 100"):
        paired_bootstrap(y, a, b, "pr_auc", rng=np.random.default_rng(0), resamples=10)
    with pytest.raises(ConfigError, match="strictly between"):
        paired_delong(y, a, b, confidence=1.0)
    with pytest.raises(DataError, match="undefined"):
        paired_bootstrap(
            np.zeros(5), np.arange(5.0), np.arange(5.0), "pr_auc", rng=np.random.default_rng(0)
        )
