"""Which partition (simulated client) each customer belongs to, reproducible by seed.

Schemes:

- ``natural``: one partition per retailer, the real federated setting.
- ``iid``: a uniform random split into equal sizes (differing by at most one).
- ``dirichlet``: label skew; per label value, the share each partition gets is drawn
  from Dir(alpha) (the algorithm of Flower Datasets' ``DirichletPartitioner``), redrawn
  up to ``DIRICHLET_TRIES`` times until every partition has ``min_partition_size``
  customers. Small alpha: partitions
  with very different purchase rates; large alpha: close to iid.
- ``quantity``: size skew; each partition gets ``min_partition_size`` customers plus a
  Dir(alpha) share of the rest, customers drawn at random (so label rates stay similar).

The caller assigns train and test customers together and each keeps its split, so the
union of test customers is the same under every scheme and results stay comparable.
Every scheme but ``natural`` (whose sizes are the retailers') guarantees at least
``min_partition_size`` customers per partition or raises.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from fedmarket.checks import integer, number
from fedmarket.errors import ConfigError, DataError

Scheme = Literal["natural", "iid", "dirichlet", "quantity"]
SCHEMES: tuple[str, ...] = get_args(Scheme)
DIRICHLET_TRIES = 1000


def assign_partitions(
    scheme: Scheme,
    *,
    n_partitions: int | None,
    retailer_index: np.ndarray,
    labels: np.ndarray,
    alpha: float,
    seed: int,
    min_partition_size: int = 10,
) -> np.ndarray:
    """Partition id (0..P-1, int64) for each customer; row i matches ``labels[i]``."""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"--partition {scheme!r} is not a partition scheme; use one of {', '.join(SCHEMES)}"
        )
    retailer_index, labels = _check_arrays(retailer_index, labels)
    integer("min_partition_size", min_partition_size, at_least=0, numpy=True)
    integer("--seed", seed, at_least=0, numpy=True)
    rng = np.random.default_rng(seed)
    if scheme == "natural":
        parts = _natural(retailer_index, n_partitions)
    else:
        n = _check_n_partitions(n_partitions, len(labels), min_partition_size, scheme)
        if scheme == "iid":
            parts = _iid(len(labels), n, rng)
        else:
            _check_alpha(alpha, scheme)
            if scheme == "dirichlet":
                parts = _dirichlet(labels, n, float(alpha), rng, min_partition_size)
            else:
                parts = _quantity(len(labels), n, float(alpha), rng, min_partition_size)
        _check_sizes(parts, min_partition_size, scheme)
    return parts


def _check_arrays(retailer_index: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    retailer_index, labels = np.asarray(retailer_index), np.asarray(labels)
    if retailer_index.ndim != 1 or labels.ndim != 1 or len(retailer_index) != len(labels):
        raise DataError(
            f"retailer_index {retailer_index.shape} and labels {labels.shape} must be "
            f"1-D arrays with one entry per customer"
        )
    if len(labels) == 0:
        raise DataError("no customers to partition; check the feature window and the input data")
    if not np.issubdtype(retailer_index.dtype, np.integer) or retailer_index.min() < 0:
        raise DataError("retailer_index must hold non-negative integers (the retailer's position)")
    if np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        raise DataError("labels hold NaN or infinite values; rebuild the features")
    return retailer_index, labels


def _check_n_partitions(
    n_partitions: int | None, n_customers: int, min_size: int, scheme: str
) -> int:
    if n_partitions is None:
        raise ConfigError(f"--partitions is required with --partition {scheme}")
    n = integer("--partitions", n_partitions, at_least=1, numpy=True)
    if n * max(min_size, 1) > n_customers:
        raise ConfigError(
            f"--partitions {n} with at least {max(min_size, 1)} customers each needs "
            f"{n * max(min_size, 1)} customers, but there are {n_customers}; "
            f"use fewer partitions or a smaller minimum partition size"
        )
    return n


def _check_alpha(alpha: float, scheme: str) -> None:
    number(
        "--alpha",
        alpha,
        above=0.0,
        numpy=True,
        must=f"a positive number for --partition {scheme} (small = skewed, large = near iid)",
    )


def _check_sizes(parts: np.ndarray, min_size: int, scheme: str) -> None:
    sizes = np.bincount(parts)
    if sizes.min() < min_size:
        raise ConfigError(
            f"--partition {scheme}: partition {int(sizes.argmin())} would have "
            f"{int(sizes.min())} customers, below the minimum of {min_size}; "
            f"choose another scheme or lower the minimum partition size"
        )


def _natural(retailer_index: np.ndarray, n_partitions: int | None) -> np.ndarray:
    retailers, parts = np.unique(retailer_index, return_inverse=True)
    if n_partitions is not None and n_partitions != len(retailers):
        raise ConfigError(
            f"--partitions {n_partitions} contradicts --partition natural, which "
            f"makes one partition per retailer ({len(retailers)}); leave it unset"
        )
    return parts.astype(np.int64)


def _iid(n_customers: int, n_partitions: int, rng: np.random.Generator) -> np.ndarray:
    parts = np.empty(n_customers, np.int64)
    parts[rng.permutation(n_customers)] = np.arange(n_customers) % n_partitions
    return parts


def _quantity(
    n_customers: int, n_partitions: int, alpha: float, rng: np.random.Generator, min_size: int
) -> np.ndarray:
    # Reserving the minimum first needs no resampling, which could fail for small alpha.
    spare = n_customers - n_partitions * min_size
    sizes = min_size + np.diff(_split_points(spare, rng.dirichlet(np.full(n_partitions, alpha))))
    parts = np.empty(n_customers, np.int64)
    parts[rng.permutation(n_customers)] = np.repeat(np.arange(n_partitions), sizes)
    return parts


def _dirichlet(
    labels: np.ndarray, n_partitions: int, alpha: float, rng: np.random.Generator, min_size: int
) -> np.ndarray:
    # The algorithm of flwr_datasets' DirichletPartitioner (no self-balancing), in numpy:
    # with datasets 4.x that partitioner reads the label column row by row (measured
    # ~70 s per million customers). Here a draw only fixes split points, so retrying
    # until every partition reaches min_size costs nothing per customer.
    classes = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    for _ in range(DIRICHLET_TRIES):
        cuts = [
            _split_points(len(rows), rng.dirichlet(np.full(n_partitions, alpha)))
            for rows in classes
        ]
        sizes = sum(np.diff(c) for c in cuts)
        if sizes.min() >= min_size:
            break
    else:
        raise ConfigError(
            f"--partition dirichlet with --alpha {alpha} left a partition below {min_size} "
            f"customers in all {DIRICHLET_TRIES} draws; raise --alpha or lower --partitions"
        )
    parts = np.empty(len(labels), np.int64)
    for rows, cut in zip(classes, cuts, strict=True):
        parts[rows] = np.repeat(np.arange(n_partitions), np.diff(cut))
    return parts


def _split_points(n: int, proportions: np.ndarray) -> np.ndarray:
    """0, the rounded-down cumulative shares of ``n``, and ``n``: P + 1 split points."""
    inner = np.floor(np.cumsum(proportions[:-1]) * n).astype(np.int64)
    return np.concatenate([[0], np.minimum(inner, n), [n]])
