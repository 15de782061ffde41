"""A customer's purchase history in the form every BTYD model reads: (x, t_x, T).

``x`` is the number of repeat transactions, ``t_x`` the time of the last one since the
customer's birth (0 when there is none), ``T`` the customer's age at the end of the
calibration period. The models never see anything else, which is what lets a retailer
compute its part of the likelihood on three numbers per customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmarket.errors import DataError


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


@dataclass(frozen=True)
class CustomerHistory:
    """Per-customer ``x`` (repeat count), ``t_x`` and ``T`` as float64 arrays of one length.

    Checked on construction so a likelihood never meets a NaN or an impossible history;
    a bad row is named by its index and values.
    """

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray

    def __post_init__(self) -> None:
        arrays = {}
        for name in ("x", "t_x", "T"):
            try:
                value = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1).copy()
            except (TypeError, ValueError) as exc:
                raise DataError(f"customer history: {name} is not numeric ({exc})") from exc
            value.flags.writeable = False
            arrays[name] = value
            object.__setattr__(self, name, value)
        x, t_x, T = arrays["x"], arrays["t_x"], arrays["T"]
        if not (len(x) == len(t_x) == len(T)):
            raise DataError(
                f"customer history: x, t_x and T have lengths {len(x)}, {len(t_x)}, {len(T)}; "
                "give one value per customer in each"
            )
        checks = (
            (~(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)), "is not finite"),
            ((x < 0) | (x != np.round(x)), "x is not a whole number >= 0"),
            ((t_x < 0) | (t_x > T), "needs 0 <= t_x <= T"),
            ((x == 0) & (t_x != 0), "has t_x != 0 but no repeat transaction (x == 0)"),
        )
        for bad, what in checks:
            if bad.any():
                i = _first_bad(bad)
                raise DataError(
                    f"customer history row {i} (x={x[i]}, t_x={t_x[i]}, T={T[i]}) {what}; "
                    "fix the input or drop the customer"
                )

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray | slice) -> CustomerHistory:
        """The customers at ``index`` (a mask, indices or slice), e.g. one retailer's."""
        return CustomerHistory(self.x[index], self.t_x[index], self.T[index])


def _column(agg: np.ndarray, names: Sequence[str], name: str) -> np.ndarray:
    names = list(names)
    if name not in names:
        raise DataError(
            f"customer aggregates have no {name!r} column (they have {', '.join(names)}); "
            "they were prepared by an older fedmarket: re-run fedmarket data prepare"
        )
    return np.asarray(agg[:, names.index(name)], dtype=np.float64)


def from_aggregates(
    agg: np.ndarray, names: Sequence[str], *, time_unit_days: float = 7.0
) -> CustomerHistory:
    """Histories from fedmarket's per-customer aggregate matrix (``AGGREGATE_NAMES`` columns).

    Birth is the customer's first event in the feature window (a visit, not necessarily a
    purchase: that is when the retailer starts counting them); ``x`` = purchase days other
    than the birth day (a purchase on the birth day is the "trial" the models do not count),
    ``t_x`` = time from birth to the last purchase when ``x > 0``, ``T`` = time from birth to
    the cutoff; all in units of ``time_unit_days`` (weeks by default, as in the literature).
    The cutoff is a UTC midnight, so an event ``d`` days before it falls on the UTC day
    ``ceil(d)`` days back: the first purchase is on the birth day when those agree.
    """
    if not time_unit_days > 0:
        raise DataError(f"time_unit_days must be > 0, got {time_unit_days}")
    agg = np.asarray(agg)
    if agg.ndim != 2 or agg.shape[1] != len(names):
        raise DataError(
            f"customer aggregates: shape {agg.shape} does not match {len(names)} column names"
        )
    first_event = _column(agg, names, "first_event_days")
    first_purchase = _column(agg, names, "first_purchase_days")
    recency = _column(agg, names, "purchase_recency_days")
    purchase_days = _column(agg, names, "purchase_days")
    bought = purchase_days > 0
    birth_purchase = bought & (np.ceil(first_purchase) == np.ceil(first_event))
    x = np.where(bought, purchase_days - birth_purchase, 0.0)
    t_x = np.where(x > 0, np.clip(first_event - recency, 0.0, first_event), 0.0)
    return CustomerHistory(x, t_x / time_unit_days, first_event / time_unit_days)
