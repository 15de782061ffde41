from __future__ import annotations

import numpy as np
import pytest

from fedmarket.data.partition import assign_partitions
from fedmarket.errors import ConfigError, DataError

N = 3000


def customers(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    retailer = np.repeat(np.arange(3), [1500, 1000, 500])
    labels = (rng.random(N) < 0.3).astype(np.float32)
    return retailer, labels


def assign(scheme: str, n: int | None = 5, alpha: float = 1.0, seed: int = 0, **kw) -> np.ndarray:
    retailer, labels = customers()
    return assign_partitions(
        scheme,
        n_partitions=n,
        retailer_index=kw.pop("retailer_index", retailer),
        labels=kw.pop("labels", labels),
        alpha=alpha,
        seed=seed,
        **kw,
    )


def rates(parts: np.ndarray) -> np.ndarray:
    _, labels = customers()
    return np.bincount(parts, weights=labels) / np.bincount(parts)


@pytest.mark.parametrize("scheme", ["natural", "iid", "dirichlet", "quantity"])
def test_reproducible_by_seed(scheme: str) -> None:
    n = None if scheme == "natural" else 5
    first = assign(scheme, n, seed=7)
    assert first.dtype == np.int64 and first.shape == (N,)
    np.testing.assert_array_equal(first, assign(scheme, n, seed=7))
    if scheme != "natural":
        assert not np.array_equal(first, assign(scheme, n, seed=8))
        assert set(np.unique(first)) == set(range(5))


def test_natural_is_the_retailer() -> None:
    retailer, _ = customers()
    np.testing.assert_array_equal(assign("natural", None), retailer)
    np.testing.assert_array_equal(assign("natural", 3), retailer)
    # retailer positions with a gap still give partitions 0..P-1, in retailer order
    gapped = np.where(retailer == 2, 5, retailer)
    np.testing.assert_array_equal(assign("natural", None, retailer_index=gapped), retailer)
    # a retailer's size is data, not a choice: no minimum applies
    small = assign("natural", None, min_partition_size=600)
    np.testing.assert_array_equal(np.bincount(small), [1500, 1000, 500])


def test_iid_sizes_differ_by_at_most_one() -> None:
    sizes = np.bincount(assign("iid", 7))
    assert sizes.sum() == N and sizes.max() - sizes.min() <= 1
    assert np.ptp(rates(assign("iid", 7))) < 0.15


def test_dirichlet_small_alpha_skews_labels_large_alpha_does_not() -> None:
    skewed = rates(assign("dirichlet", 5, alpha=0.1, seed=1))
    even = rates(assign("dirichlet", 5, alpha=1000.0, seed=1))
    assert np.ptp(skewed) > 0.5
    assert np.ptp(even) < 0.05
    assert np.bincount(assign("dirichlet", 5, alpha=0.1, seed=1)).min() >= 10


def test_dirichlet_respects_min_size_or_says_why() -> None:
    parts = assign("dirichlet", 10, alpha=0.3, seed=2, min_partition_size=50)
    assert np.bincount(parts).min() >= 50
    with pytest.raises(ConfigError, match=r"--alpha 0\.01.*raise --alpha or lower --partitions"):
        assign("dirichlet", 50, alpha=0.01, min_partition_size=50)


def test_quantity_skews_sizes() -> None:
    sizes = np.bincount(assign("quantity", 5, alpha=0.3, seed=3))
    assert sizes.sum() == N and sizes.min() >= 10
    assert sizes.max() > 4 * sizes.min()
    big = np.bincount(assign("quantity", 5, alpha=1000.0, seed=3))
    assert big.max() - big.min() < 0.2 * N / 5
    tiny = np.bincount(assign("quantity", 5, alpha=0.01, seed=3, min_partition_size=100))
    assert tiny.min() >= 100


@pytest.mark.parametrize(
    ("scheme", "kwargs", "match"),
    [
        ("shards", {}, "--partition 'shards'"),
        ("iid", {"n": None}, "--partitions is required"),
        ("iid", {"n": 0}, "--partitions must be a positive integer"),
        ("iid", {"n": 2.0}, "--partitions must be a positive integer"),
        ("iid", {"n": 301}, "needs 3010 customers"),
        ("natural", {"n": 4}, "one partition per retailer"),
        ("dirichlet", {"alpha": 0.0}, "--alpha must be a positive"),
        ("quantity", {"alpha": float("nan")}, "--alpha must be a positive"),
        ("quantity", {"alpha": -1}, "--alpha must be a positive"),
        ("iid", {"seed": -1}, "--seed"),
        ("iid", {"min_partition_size": -1}, "min_partition_size"),
    ],
)
def test_rejects_bad_options(scheme: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        assign(scheme, **kwargs)


def test_rejects_bad_arrays() -> None:
    retailer, labels = customers()
    with pytest.raises(DataError, match="one entry per customer"):
        assign("iid", labels=labels[:-1])
    with pytest.raises(DataError, match="no customers"):
        assign("iid", retailer_index=retailer[:0], labels=labels[:0])
    with pytest.raises(DataError, match="non-negative integers"):
        assign("natural", None, retailer_index=retailer - 1)
    with pytest.raises(DataError, match="NaN"):
        assign("dirichlet", labels=np.where(labels > 0, np.nan, 0.0))
