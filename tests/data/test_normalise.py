from __future__ import annotations

import json

import numpy as np
import pytest

from fedmarket.data.features import FEATURE_NAMES
from fedmarket.data.normalise import (
    LOG1P_FEATURES,
    STD_FLOOR,
    FeatureMoments,
    NormStats,
    transform,
)
from fedmarket.errors import DataError

F = len(FEATURE_NAMES)
LINEAR = [FEATURE_NAMES.index(n) for n in ("days_since_last_purchase", "days_since_last_event")]


def raw(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """Heavy-tailed non-negative data shaped like raw features [N, T, F]."""
    rng = np.random.default_rng(seed)
    return (rng.lognormal(0.0, 1.5, (n, 8, F)) * scale).astype(np.float32)


def test_log1p_only_on_heavy_tailed_features() -> None:
    assert set(LOG1P_FEATURES) == set(FEATURE_NAMES) - {
        "days_since_last_purchase",
        "days_since_last_event",
    }
    X = raw(5, 0)
    out = transform(X)
    for f, name in enumerate(FEATURE_NAMES):
        expected = np.log1p(X[..., f].astype(np.float64)) if name in LOG1P_FEATURES else X[..., f]
        np.testing.assert_array_equal(out[..., f], expected)


def test_moments_of_retailers_combine_to_pooled_numpy_stats() -> None:
    parts = [raw(30, 1), raw(7, 2, scale=5.0), raw(50, 3, scale=0.2)]
    combined = FeatureMoments.combine(FeatureMoments.from_raw(p) for p in parts)
    pooled = transform(np.concatenate(parts)).reshape(-1, F)
    np.testing.assert_array_equal(combined.count, [87 * 8] * F)
    np.testing.assert_allclose(combined.sum, pooled.sum(axis=0), rtol=1e-12)
    stats = NormStats.from_moments(combined)
    np.testing.assert_allclose(stats.mean, pooled.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(stats.std, pooled.std(axis=0), rtol=1e-9)
    for total in (
        sum(FeatureMoments.from_raw(p) for p in parts),
        sum((FeatureMoments.from_raw(p) for p in parts), FeatureMoments.zeros()),
    ):
        np.testing.assert_array_equal(total.count, combined.count)
        np.testing.assert_allclose(total.sumsq, combined.sumsq, rtol=1e-12)
    added = FeatureMoments.from_raw(parts[0]) + FeatureMoments.from_raw(parts[1])
    np.testing.assert_allclose(
        added.sumsq,
        transform(np.concatenate(parts[:2])).reshape(-1, F).__pow__(2).sum(axis=0),
        rtol=1e-12,
    )


def test_apply_gives_z_scores_as_float32_and_leaves_input() -> None:
    train, test = raw(40, 4), raw(10, 5)
    before = test.copy()
    stats = NormStats.from_raw(train)
    out = stats.apply(test)
    assert out.dtype == np.float32 and out.shape == test.shape
    np.testing.assert_array_equal(test, before)
    np.testing.assert_allclose(
        out, (transform(test) - stats.mean) / stats.std, rtol=1e-4, atol=1e-4
    )
    z = stats.apply(train).reshape(-1, F).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-5)


def test_hand_computed_stats() -> None:
    X = np.zeros((2, 1, F), np.float32)
    X[:, 0, 0] = [0.0, np.e - 1]  # views: log1p -> 0, 1
    X[:, 0, LINEAR[0]] = [2.0, 6.0]  # linear: mean 4, std 2
    stats = NormStats.from_raw(X)
    assert stats.mean[0] == pytest.approx(0.5) and stats.std[0] == pytest.approx(0.5)
    assert stats.mean[LINEAR[0]] == 4.0 and stats.std[LINEAR[0]] == 2.0
    np.testing.assert_allclose(stats.apply(X)[:, 0, LINEAR[0]], [-1.0, 1.0])


def test_constant_feature_is_only_centred() -> None:
    X = raw(20, 6)
    X[..., 2] = 3.0
    stats = NormStats.from_raw(X)
    assert stats.std[2] == 1.0 and STD_FLOOR > 0
    assert stats.mean[2] == pytest.approx(np.log1p(3.0))
    np.testing.assert_allclose(stats.apply(X)[..., 2], 0.0, atol=1e-6)
    assert np.isfinite(stats.apply(X + 1.0)).all()


def test_round_trips_through_json() -> None:
    m = FeatureMoments.from_raw(raw(9, 7))
    back = FeatureMoments.from_dict(json.loads(json.dumps(m.to_dict())))
    for name in ("count", "sum", "sumsq"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    s = NormStats.from_moments(m)
    again = NormStats.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(again.mean, s.mean)
    np.testing.assert_array_equal(again.std, s.std)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.pop("mean"), "lack 'mean'"),
        (lambda d: d.update(mean=[0.0] * (F - 1)), "expected 11"),
        (lambda d: d.update(std=[0.0] * F), "positive"),
        (lambda d: d.update(mean=["x"] * F), "not a list of numbers"),
        (lambda d: d.update(features=["a"] * F), "other features"),
        (lambda d: d.update(log1p=[]), "other features"),
    ],
)
def test_from_dict_rejects_bad_stats(change, match: str) -> None:
    d = NormStats.from_raw(raw(3, 8)).to_dict()
    change(d)
    with pytest.raises(DataError, match=match):
        NormStats.from_dict(d)


def test_rejects_bad_arrays_and_empty_moments() -> None:
    with pytest.raises(DataError, match=r"expected \[\.\.\., 11\]"):
        FeatureMoments.from_raw(np.zeros((3, 8, 5)))
    with pytest.raises(DataError, match="NaN"):
        FeatureMoments.from_raw(np.full((1, 8, F), np.nan))
    with pytest.raises(DataError, match="negative"):
        NormStats.from_raw(raw(2, 9)).apply(-raw(2, 9))
    with pytest.raises(DataError, match="zero training cells"):
        NormStats.from_moments(FeatureMoments.from_raw(np.zeros((0, 8, F), np.float32)))
    with pytest.raises(DataError, match="no retailer"):
        FeatureMoments.combine([])
    bad = FeatureMoments.from_raw(raw(2, 9)).to_dict()
    bad["count"] = [-1] * F
    with pytest.raises(DataError, match="negative"):
        FeatureMoments.from_dict(bad)
    with pytest.raises(TypeError):
        FeatureMoments.from_raw(raw(2, 9)) + 1
    with pytest.raises(TypeError):
        1 + FeatureMoments.from_raw(raw(2, 9))
    with pytest.raises(DataError, match="need 11 features"):
        FeatureMoments.zeros(3)
