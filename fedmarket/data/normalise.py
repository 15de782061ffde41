"""Feature normalisation whose statistics combine across retailers without customer data.

The transform is ``log1p`` on the heavy-tailed features (:data:`LOG1P_FEATURES`: event
counts, spend, sessions, distinct categories, mean viewed price and the cart-to-view ratio,
all non-negative with long right tails), then a z-score per feature over every
(customer, step) cell. The two ``days_since_*`` features are bounded by the window
(``window_days + step_days`` means "never") and stay linear.

Each retailer computes :class:`FeatureMoments` (count, sum, sum of squares of the
transformed values) over its TRAINING customers only and sends those three numbers per
feature; their sum gives exactly the pooled mean and population standard deviation
(``ddof=0``), so every partition and the centralised reference normalise identically and
test customers never shape the statistics. The moments are aggregates, not DP-protected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fedmarket.data.features import FEATURE_NAMES
from fedmarket.errors import DataError

LOG1P_FEATURES: tuple[str, ...] = (
    "views",
    "carts",
    "removes",
    "purchases",
    "spend",
    "sessions",
    "distinct_categories",
    "mean_viewed_price",
    "cart_to_view",
)
# A feature whose training std is below this is only centred (divided by 1): a constant
# column (e.g. no remove events at all) must not turn a tiny test-time change into a huge value.
STD_FLOOR = 1e-6
_LOG1P_MASK = np.array([name in LOG1P_FEATURES for name in FEATURE_NAMES])


def _check_raw(X_raw: np.ndarray) -> np.ndarray:
    X = np.asarray(X_raw)
    if X.ndim < 2 or X.shape[-1] != len(FEATURE_NAMES):
        raise DataError(
            f"feature array has shape {X.shape}; expected [..., {len(FEATURE_NAMES)}] "
            f"with the features {', '.join(FEATURE_NAMES)}"
        )
    if not np.isfinite(X).all():
        raise DataError("feature array holds NaN or infinite values; rebuild the features")
    if X.size and X.min() < 0:
        raise DataError(
            "feature array holds negative values; raw features are all non-negative, "
            "so it is probably already normalised"
        )
    return X


def transform(X_raw: np.ndarray) -> np.ndarray:
    """log1p on :data:`LOG1P_FEATURES`, identity on the rest; float64 for exact moments."""
    X = _check_raw(X_raw).astype(np.float64)
    X[..., _LOG1P_MASK] = np.log1p(X[..., _LOG1P_MASK])
    return X


def _vector(d: dict[str, Any], key: str, dtype: type) -> np.ndarray:
    try:
        value = np.asarray(d[key], dtype=dtype)
    except KeyError:
        raise DataError(
            f"normalisation statistics lack {key!r}; re-run `fedmarket data prepare`"
        ) from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"normalisation statistics: {key!r} is not a list of numbers") from exc
    if value.shape != (len(FEATURE_NAMES),):
        raise DataError(
            f"normalisation statistics: {key!r} has {value.size} values, "
            f"expected {len(FEATURE_NAMES)} (one per feature)"
        )
    return value


def _check_names(d: dict[str, Any]) -> None:
    if list(d.get("features", [])) != list(FEATURE_NAMES) or list(d.get("log1p", [])) != list(
        LOG1P_FEATURES
    ):
        raise DataError(
            "normalisation statistics were made for other features or another "
            "transform than this fedmarket uses; re-run `fedmarket data prepare`"
        )


def _header() -> dict[str, Any]:
    return {"features": list(FEATURE_NAMES), "log1p": list(LOG1P_FEATURES)}


@dataclass(frozen=True)
class FeatureMoments:
    """Per-feature count, sum and sum of squares of transformed cells; add to combine."""

    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    @staticmethod
    def from_raw(X_raw: np.ndarray) -> FeatureMoments:
        X = _check_raw(X_raw)
        n_features = len(FEATURE_NAMES)
        total, total_sq = np.zeros(n_features), np.zeros(n_features)
        # One BLAS thread: above ~10,000 cells OpenBLAS splits np.dot over every core, and on
        # a busy machine its spinning threads made this 50x slower (80 ms for 90,000 cells);
        # it also made the sum's last bits depend on the core count.
        with threadpool_limits(limits=1, user_api="blas"):
            for f in range(n_features):  # one float64 column at a time, not a copy of X
                col = X[..., f].astype(np.float64).ravel()
                if _LOG1P_MASK[f]:
                    np.log1p(col, out=col)
                total[f], total_sq[f] = col.sum(), np.dot(col, col)
        cells = X.size // n_features
        return FeatureMoments(np.full(n_features, cells, np.int64), total, total_sq)

    @staticmethod
    def zeros(n_features: int = len(FEATURE_NAMES)) -> FeatureMoments:
        """The neutral element, e.g. as the start of ``sum(...)``."""
        if n_features != len(FEATURE_NAMES):
            raise DataError(f"moments need {len(FEATURE_NAMES)} features, not {n_features}")
        return FeatureMoments(
            np.zeros(n_features, np.int64), np.zeros(n_features), np.zeros(n_features)
        )

    def __add__(self, other: FeatureMoments) -> FeatureMoments:
        if not isinstance(other, FeatureMoments):
            return NotImplemented
        return FeatureMoments(
            self.count + other.count, self.sum + other.sum, self.sumsq + other.sumsq
        )

    def __radd__(self, other: object) -> FeatureMoments:
        if isinstance(other, int) and other == 0:  # lets plain sum(moments) work
            return self
        return NotImplemented

    @staticmethod
    def combine(parts: Iterable[FeatureMoments]) -> FeatureMoments:
        parts = list(parts)
        if not parts:
            raise DataError("no feature moments to combine: no retailer sent statistics")
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            **_header(),
            "count": self.count.tolist(),
            "sum": self.sum.tolist(),
            "sumsq": self.sumsq.tolist(),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> FeatureMoments:
        _check_names(d)
        count = _vector(d, "count", np.int64)
        if (count < 0).any():
            raise DataError("normalisation statistics: 'count' must not be negative")
        return FeatureMoments(count, _vector(d, "sum", np.float64), _vector(d, "sumsq", np.float64))


@dataclass(frozen=True)
class NormStats:
    """Mean and std per feature of the transformed training cells."""

    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def from_moments(m: FeatureMoments) -> NormStats:
        if (m.count <= 0).any():
            raise DataError(
                "cannot normalise from zero training cells; every retailer "
                "needs training customers (check the split and partitions)"
            )
        mean = m.sum / m.count
        # E[x^2] - E[x]^2 can dip below zero by rounding when the variance is ~0.
        var = np.maximum(m.sumsq / m.count - np.square(mean), 0.0)
        std = np.sqrt(var)
        return NormStats(mean=mean, std=np.where(std < STD_FLOOR, 1.0, std))

    @staticmethod
    def from_raw(X_raw: np.ndarray) -> NormStats:
        return NormStats.from_moments(FeatureMoments.from_raw(X_raw))

    def apply(self, X_raw: np.ndarray) -> np.ndarray:
        """Normalised float32 copy of ``X_raw`` (same shape); the input is left untouched."""
        X = _check_raw(X_raw)
        out = X.astype(np.float32, copy=True)
        mean, std = self.mean.astype(np.float32), self.std.astype(np.float32)
        for f in range(len(FEATURE_NAMES)):  # per feature keeps peak memory at one copy of X
            col = out[..., f]
            if _LOG1P_MASK[f]:
                np.log1p(col, out=col)
            col -= mean[f]
            col /= std[f]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**_header(), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> NormStats:
        _check_names(d)
        std = _vector(d, "std", np.float64)
        if not (std > 0).all():
            raise DataError("normalisation statistics: every 'std' must be positive")
        return NormStats(mean=_vector(d, "mean", np.float64), std=std)
