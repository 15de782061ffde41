"""A few validated events read as plain arrays, for ``SequenceBuilder``'s few-rows path.

Why: the scoring service featurises one customer's ~30 events per request, and for so few rows
the general path's cost is its library calls (a pandas column read, an Arrow kernel, a hash
table: 10-50 us each, whatever the rows), not the rows. Here each used column is read once into
a NumPy array or a Python list, and event types and customers are looked up in Python dicts.

Only the reading differs: the accumulation and every feature definition stay in
``features.SequenceBuilder`` (one source of truth). Anything this module does not expect (a time
that is not tz-aware nanoseconds, an unknown or missing event type, a missing customer or price,
another dtype) gives ``None``, and the general path reads the chunk and raises its own errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.data.ingest.schema import EVENT_TYPES, RETAILER_COLUMN

# Up to this many rows a chunk is read here; above, the general path's vectorised calls win.
SMALL_ROWS = 4096

_CODES: dict[str, int] = {name: i for i, name in enumerate(EVENT_TYPES)}


@dataclass(frozen=True)
class EventArrays:
    """One chunk's used columns, row i of each being row i of the chunk."""

    ns: np.ndarray  # event_time as int64 UTC nanoseconds
    codes: np.ndarray  # event_type as int64 positions in EVENT_TYPES
    user: list[str]
    price: np.ndarray  # float64, no NaN
    session: np.ndarray  # object: str, or None where missing
    category: np.ndarray  # int64, or object with None where missing
    retailers: set[Any]  # distinct non-missing retailer ids (empty without the column)


def values(series: pd.Series) -> list[Any]:
    """The column's values as a Python list, ``None`` where missing."""
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        return series.array.__arrow_array__().to_pylist()  # one call, no pandas NA objects
    return series.to_numpy(dtype=object, na_value=None).tolist()


def read(chunk: pd.DataFrame) -> EventArrays | None:
    """``chunk``'s used columns as plain arrays, or ``None``: let the general path read it."""
    if len(chunk) > SMALL_ROWS:
        return None
    times = chunk["event_time"]
    if not isinstance(times.dtype, pd.DatetimeTZDtype) or times.dtype.unit != "ns":
        return None
    price = chunk["price"]
    if price.dtype != np.float64:
        return None
    prices = price.to_numpy()
    if np.isnan(prices).any():
        return None
    codes = [_CODES.get(t, -1) if isinstance(t, str) else -1 for t in values(chunk["event_type"])]
    user = values(chunk["user_id"])
    if -1 in codes or any(u is None for u in user):
        return None
    category = chunk["category_id"]
    return EventArrays(
        ns=times.array.asi8,  # tz-aware nanoseconds are stored as UTC
        codes=np.array(codes, dtype=np.int64),
        user=user,
        price=prices,
        session=np.array(values(chunk["user_session"]), dtype=object),
        category=(
            category.to_numpy()
            if category.dtype == np.int64
            else category.to_numpy(dtype=object, na_value=None)
        ),
        retailers=_retailers(chunk),
    )


def _retailers(chunk: pd.DataFrame) -> set[Any]:
    if RETAILER_COLUMN not in chunk.columns:
        return set()
    return {r for r in values(chunk[RETAILER_COLUMN]) if r is not None}
