"""A few validated events folded into category histories in plain Python: the few-rows path of
``categories.CategoryHistoryBuilder``.

Why: the recommendation service builds one customer's history from ~30 events per request, and
for so few rows the builder's general path costs its pandas calls (a sort, a groupby, several
``drop_duplicates`` and ``.loc`` lookups: 20-100 us each, whatever the rows), about 10 ms in
all; here each used column is read once into a Python list and the history is kept in dicts.

Only a lone chunk of up to ``few_rows.SMALL_ROWS`` events takes this path (the builder defers
such a chunk to ``finish``); the result is the general path's exactly: the same rows, the same
order (customer, time, event type, then the same 64-bit string hashes of code and brand, which
are computed only when two of a customer's events tie on time and type), the same ``seen``
pairs in the same order. Anything this module does not expect (a time that is not tz-aware
nanoseconds, a customer id that is not a string) gives ``None``, and the general path reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.data import few_rows
from fedmarket.data.categories import TARGET_EVENTS, CategoryHistories, sort_hash
from fedmarket.data.ingest.schema import EVENT_TYPES

_CODES: dict[str, int] = {name: i for i, name in enumerate(EVENT_TYPES)}
_TARGETS = frozenset(_CODES[e] for e in TARGET_EVENTS)


@dataclass(frozen=True)
class SmallChunk:
    """One chunk's used columns as Python lists, item i of each being row i of the chunk."""

    ns: list[int]  # event_time as UTC nanoseconds
    etype: list[int]  # position in EVENT_TYPES, -1 for an unknown or missing type
    user: list[str]
    code: list[Any]  # category_code, None where missing
    brand: list[Any]  # brand, None where missing (or no brand column)


def read(chunk: pd.DataFrame) -> SmallChunk | None:
    """``chunk``'s used columns as lists, or ``None``: let the general path read it."""
    if len(chunk) > few_rows.SMALL_ROWS or "category_code" not in chunk.columns:
        return None
    times = chunk["event_time"]
    if not isinstance(times.dtype, pd.DatetimeTZDtype) or times.dtype.unit != "ns":
        return None
    user = few_rows.values(chunk["user_id"])
    if not all(isinstance(u, str) for u in user):
        return None
    kinds = few_rows.values(chunk["event_type"])
    return SmallChunk(
        ns=times.array.asi8.tolist(),  # tz-aware nanoseconds are stored as UTC
        etype=[_CODES.get(t, -1) if isinstance(t, str) else -1 for t in kinds],
        user=user,
        code=few_rows.values(chunk["category_code"]),
        brand=few_rows.values(chunk["brand"]) if "brand" in chunk.columns else [None] * len(user),
    )


def histories(
    small: SmallChunk, bounds: tuple[int, int, int], length: int, customers: np.ndarray
) -> CategoryHistories:
    """What ``CategoryHistoryBuilder(window, length)`` gives for ``customers`` after ``add``
    of the one chunk ``small`` was read from; ``bounds``: the window's start, cut-off and
    horizon end in UTC nanoseconds."""
    start, cutoff, end = bounds
    window: list[int] = []  # rows with a category code and a known type, in the window
    targets: dict[str, set[Any]] = {}
    for i, (t, e, c) in enumerate(zip(small.ns, small.etype, small.code, strict=True)):
        if c is None or e < 0:
            continue
        if start <= t < cutoff:
            window.append(i)
        elif cutoff <= t < end and e in _TARGETS:
            targets.setdefault(small.user[i], set()).add(c)
    n = len(customers)
    row = {c: i for i, c in enumerate(customers.tolist())}
    codes = np.full((n, length), None, dtype=object)
    brands = np.full((n, length), None, dtype=object)
    etypes = np.full((n, length), -1, dtype=np.int8)
    n_events = np.zeros(n, dtype=np.int32)
    for user, events in _ordered(small, window).items():
        r = row.get(user)
        if r is None:
            continue
        n_events[r] = len(events)
        last = events[-length:]
        cols = slice(length - len(last), length)
        codes[r, cols] = [small.code[i] for i in last]
        brands[r, cols] = [small.brand[i] for i in last]
        etypes[r, cols] = [small.etype[i] for i in last]
    seen = [
        (row[u], c, b)
        for u, c, b in dict.fromkeys((small.user[i], small.code[i], small.brand[i]) for i in window)
        if u in row
    ]
    return CategoryHistories(
        np.asarray(customers),
        codes,
        etypes,
        brands,
        n_events,
        pd.DataFrame(
            {
                "row": np.array([s[0] for s in seen], dtype=np.int64),
                "code": np.array([s[1] for s in seen], dtype=object),
                "brand": np.array([s[2] for s in seen], dtype=object),
            }
        ),
        [frozenset(targets.get(c, ())) for c in row],
    )


def _ordered(small: SmallChunk, window: list[int]) -> dict[str, list[int]]:
    """Each customer's window rows in the general path's order: time, event type, then the
    hashes of code and brand, then chunk order."""
    ns, etype = small.ns, small.etype
    ranked = sorted(window, key=lambda i: (ns[i], etype[i]))  # stable: chunk order on ties
    ties = any((ns[a], etype[a]) == (ns[b], etype[b]) for a, b in pairwise(ranked))
    if ties:  # rare in real data: the same second and type; hash only then
        frame = pd.DataFrame(
            {
                "code": np.array([small.code[i] for i in window], dtype=object),
                "brand": np.array([small.brand[i] for i in window], dtype=object),
            }
        )
        hashes = zip(sort_hash(frame["code"]), sort_hash(frame["brand"]), strict=True)
        key = dict(zip(window, hashes, strict=True))
        ranked = sorted(window, key=lambda i: (ns[i], etype[i], *key[i]))
    out: dict[str, list[int]] = {}
    for i in ranked:
        out.setdefault(small.user[i], []).append(i)
    return out
