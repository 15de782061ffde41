"""Per-customer step sequences, aggregates and horizon labels from one retailer's events.

Time is cut at ``cutoff``: features come only from the feature window
``[cutoff - window_days, cutoff)`` and labels only from the horizon
``[cutoff, cutoff + horizon_days)``, so nothing the model is asked to predict leaks into
its inputs. Events before the window or after the horizon are ignored. Customers are those
with at least one event in the window: a customer first seen after the cutoff is unknown
at prediction time, so has no row.

Retailers hold tens of millions of events, so :class:`SequenceBuilder` reads chunks and
keeps only per-(customer, step) accumulators, per-customer first times, and deduplicated
(customer, step, session), (customer, step, category) and (customer, day) keys: memory grows
with customers x steps, not with events (dense accumulators: about 400 bytes per customer at
8 steps, plus a pseudonym -> row dict).

``y_count`` counts the horizon's purchases in one of ``COUNT_UNITS``: ``transactions`` (purchase
events), ``customer-days`` (distinct UTC days with a purchase: the unit of the customer-base
literature, BG/NBD and Pareto/NBD, where several order lines of one day are one transaction) or
``periods`` (distinct step-length periods of the horizon with a purchase, counted from the
cut-off; the last one may be shorter). ``y_active`` is 1 when the customer has any event (a
view, a cart, a removal or a purchase) in the horizon: the churn tasks read it (``churn`` =
no purchase in the horizon, ``churn-inactive`` = no event at all; every customer kept is
active in the feature window by construction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedmarket.checks import integer
from fedmarket.data import few_rows
from fedmarket.data.ingest.schema import EVENT_TYPES, RETAILER_COLUMN
from fedmarket.errors import ConfigError, DataError

# Per step, per customer (X[:, t, :]): event counts by type; spend = sum of purchase
# prices; sessions / distinct_categories = distinct non-missing user_session / category_id;
# mean_viewed_price = mean price of views (0 without views); days_since_last_* = days from
# the step's end back to the latest such event since the window start, or
# window_days + step_days ("never in window") when there is none yet; cart_to_view =
# carts / max(views, 1). Prices are summed as integer micro-units (rounded to 1e-6).
FEATURE_NAMES: tuple[str, ...] = (
    "views",
    "carts",
    "removes",
    "purchases",
    "spend",
    "sessions",
    "distinct_categories",
    "mean_viewed_price",
    "days_since_last_purchase",
    "days_since_last_event",
    "cart_to_view",
)
# Per customer over the whole window (agg), for classical baselines: recency_days = days
# from the last event to the cutoff; purchase_recency_days likewise for purchases (or
# window_days + step_days); frequency = purchases; monetary = spend; sessions, active_days
# (distinct UTC days) and distinct_categories are distinct over the window, not step sums;
# conversion_rate = purchases / max(views, 1); first_event_days = days from the first event
# in the window to the cutoff (the customer's age in the window, BG/NBD's T);
# first_purchase_days likewise for purchases (window_days + step_days when none);
# purchase_days = distinct UTC days with a purchase (repeat purchases in day units, x + 1).
AGGREGATE_NAMES: tuple[str, ...] = (
    "recency_days",
    "purchase_recency_days",
    "frequency",
    "monetary",
    "views",
    "carts",
    "removes",
    "sessions",
    "active_days",
    "distinct_categories",
    "conversion_rate",
    "first_event_days",
    "first_purchase_days",
    "purchase_days",
)
COUNT_UNITS: tuple[str, ...] = ("transactions", "customer-days", "periods")
USED_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "price",
    "user_id",
    "user_session",
    "category_id",
)

_DAY_NS = 86_400 * 10**9
_MICRO = 1_000_000  # money is summed as integer micro-units so chunk order cannot change a bit
_PURCHASE = EVENT_TYPES.index("purchase")
_VIEW = EVENT_TYPES.index("view")
_NONE = -1  # "no event yet" in the last-time accumulators (offsets are >= 0)
_NEVER = np.iinfo(np.int64).max  # "no event yet" in the first-time accumulators
_EVENT_TYPES_ARROW = pa.array(EVENT_TYPES, pa.large_string())


@dataclass(frozen=True)
class FeatureWindow:
    """Where the feature window, its steps and the label horizon lie in time.

    ``cutoff`` is a tz-aware midnight, converted to UTC; step ``t`` covers
    ``[cutoff - window + t*step, cutoff - window + (t+1)*step)``.
    """

    cutoff: pd.Timestamp
    window_days: int = 56
    step_days: int = 2
    horizon_days: int = 7

    def __post_init__(self) -> None:
        window = integer("--window-days", self.window_days, at_least=1, numpy=True)
        step = integer("--step-days", self.step_days, at_least=1, numpy=True)
        integer("--horizon-days", self.horizon_days, at_least=1, numpy=True)
        if window % step:
            raise ConfigError(
                f"--window-days ({window}) must be a multiple of --step-days ({step}); "
                f"e.g. --window-days {(window // step + 1) * step}"
            )
        try:
            cutoff = pd.Timestamp(self.cutoff)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--cutoff {self.cutoff!r} is not a date/time") from exc
        if cutoff.tzinfo is None:
            raise ConfigError(
                f"--cutoff {cutoff} has no time zone; give a UTC midnight such as 2019-11-24T00:00Z"
            )
        cutoff = cutoff.tz_convert("UTC")
        if cutoff != cutoff.normalize():
            raise ConfigError(
                f"--cutoff {cutoff} is not a UTC midnight; steps and labels are whole UTC days, "
                f"use e.g. {cutoff.normalize().isoformat()}"
            )
        object.__setattr__(self, "cutoff", cutoff)

    @property
    def n_steps(self) -> int:
        return self.window_days // self.step_days

    @property
    def start(self) -> pd.Timestamp:
        return self.cutoff - pd.Timedelta(days=self.window_days)

    @property
    def horizon_end(self) -> pd.Timestamp:
        return self.cutoff + pd.Timedelta(days=self.horizon_days)

    @property
    def never_days(self) -> float:
        """The days-since value meaning "not in the window": above any real value."""
        return float(self.window_days + self.step_days)

    def to_manifest(self) -> dict[str, Any]:
        """The ``window`` entry of manifest.json."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "window_days": self.window_days,
            "step_days": self.step_days,
            "horizon_days": self.horizon_days,
            "n_steps": self.n_steps,
        }


def default_cutoff(last_event_time: pd.Timestamp, horizon_days: int) -> pd.Timestamp:
    """The latest cutoff whose whole horizon is covered: midnight of (last day + 1 - horizon)."""
    horizon = integer("--horizon-days", horizon_days, at_least=1, numpy=True)
    last = pd.Timestamp(last_event_time)
    if last.tzinfo is None:
        raise DataError(f"last event time {last} has no time zone; event_time must be tz-aware UTC")
    day = last.tz_convert("UTC").normalize()
    return day + pd.Timedelta(days=1 - horizon)


@dataclass(frozen=True)
class CustomerFeatures:
    """Row i of every array is customer ``customer[i]``; ``X`` is raw (untransformed)."""

    customer: np.ndarray
    X: np.ndarray
    agg: np.ndarray
    y_purchase: np.ndarray
    y_count: np.ndarray
    y_active: np.ndarray

    def __len__(self) -> int:
        return len(self.customer)


def _utc_ns(times: pd.Series) -> np.ndarray:
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        raise DataError(
            f"event_time has dtype {times.dtype}; it must be tz-aware UTC "
            f"(validate and load events with fedmarket's loaders first)"
        )
    if times.dtype.unit == "ns":  # the validator's unit: the stored values are UTC already
        return times.array.asi8
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _event_codes(types: pd.Series) -> np.ndarray:
    if isinstance(types.dtype, pd.StringDtype) and types.dtype.storage == "pyarrow":
        # the validator's dtype: one Arrow kernel, no pandas hash table to set up
        arrow = pa.array(types.array)
        found = pc.index_in(arrow, value_set=_EVENT_TYPES_ARROW)
        codes = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        found, uniques = pd.factorize(types)  # map the few distinct values, not every row
        known = pd.Index(EVENT_TYPES).get_indexer(uniques)
        codes = np.where(found < 0, -1, known[found]).astype(np.int64)
    if (codes < 0).any():
        bad = types[codes < 0]
        raise DataError(
            f"event_type {bad.iloc[0]!r} (row {bad.index[0]}) is not one of "
            f"{', '.join(EVENT_TYPES)}; validate the events first"
        )
    return codes


def _no_missing(values: pd.Series, column: str) -> None:
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{column} is missing in row {values.index[missing][0]}; validate the events first"
        )


def _no_missing_array(values: Any, index: pd.Index, column: str) -> None:
    missing = np.asarray(pd.isna(values), dtype=bool)
    if missing.any():
        raise DataError(
            f"{column} is missing in row {index[missing][0]}; validate the events first"
        )


def _float32_stack(columns: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """Columns side by side on a new last axis, written straight into float32."""
    first = columns[names[0]]
    out = np.empty((*first.shape, len(names)), np.float32)
    for i, name in enumerate(names):
        out[..., i] = columns[name]
    return out


# Below this many pairs a sort finds the distinct ones faster than pandas' hash table, whose
# set-up costs about a millisecond per call: the scoring service builds one customer at a time.
_SMALL_PAIRS = 4096


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs, in no particular order."""
    if len(a) > _SMALL_PAIRS:
        kept = pd.DataFrame({"a": a, "b": b}).drop_duplicates()
        return kept["a"].to_numpy(), kept["b"].to_numpy()
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[new], b[new]


def _session_keys(sessions: Any) -> tuple[np.ndarray, np.ndarray]:
    """(non-missing, a 64-bit key per non-missing session) for counting distinct sessions.

    Integer sessions (``Pseudonymiser.tokens``, what ``data prepare`` gives) are their own
    keys; text (pseudonyms, raw ids) is hashed, as ``hash_pandas_object`` would without the
    Series. The two kinds must not meet in one builder: a session's key would differ.
    """
    has = ~np.asarray(pd.isna(sessions), dtype=bool)
    present = sessions[has]
    if isinstance(present, pd.arrays.IntegerArray) or (
        isinstance(present, np.ndarray) and present.dtype.kind in "iu"
    ):
        return has, np.asarray(present, dtype=np.int64)
    if len(present) and isinstance(present[0], int | np.integer):  # few_rows' object array
        return has, np.array(present.tolist(), dtype=np.int64)
    # hashing the distinct values first only pays on many rows (its table costs ~0.2 ms)
    hashed = pd.util.hash_array(present, categorize=len(present) > _SMALL_PAIRS)
    return has, hashed.view(np.int64)


class _KeySet:
    """Deduplicated integer key pairs, compacted whenever the pending rows pile up."""

    def __init__(self, compact_rows: int = 4_000_000) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending = 0  # rows added since the last compaction
        self._compacted = 0  # rows the last compaction kept
        self._compact_rows = compact_rows

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        part = _unique_pairs(np.asarray(a, np.int64), np.asarray(b, np.int64))
        self._parts.append(part)
        self._pending += len(part[0])
        # Waiting for as many new rows as already kept keeps the total work linear.
        if self._pending > max(self._compact_rows, self._compacted):
            self._parts = [self.pairs()]
            self._pending, self._compacted = 0, len(self._parts[0][0])

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every distinct pair added, as (a, b) arrays."""
        if not self._parts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if len(self._parts) == 1:
            return self._parts[0]
        return _unique_pairs(
            np.concatenate([p[0] for p in self._parts]),
            np.concatenate([p[1] for p in self._parts]),
        )


def check_count_unit(unit: str) -> str:
    """``unit`` if it is one of ``COUNT_UNITS``; ConfigError naming them otherwise."""
    if unit not in COUNT_UNITS:
        raise ConfigError(
            f"--count-unit {unit!r} is unknown; use one of {', '.join(COUNT_UNITS)} "
            "(what y_count counts in the horizon)"
        )
    return unit


class SequenceBuilder:
    """Streams event chunks (any order, any size) into :class:`CustomerFeatures`.

    A chunk of up to ``few_rows.SMALL_ROWS`` events in the validator's dtypes (the scoring
    service's one customer) is read as plain arrays (``few_rows.read``) instead of through
    pandas and Arrow calls whose fixed cost outweighs a few rows' work; both readings feed the
    same accumulators (``_fold``), so the features are defined once.
    """

    def __init__(self, window: FeatureWindow, count_unit: str = "transactions") -> None:
        self.window = window
        self.count_unit = check_count_unit(count_unit)
        self._cutoff = window.cutoff.as_unit("ns").value  # a midnight: days are exact
        self._start = self._cutoff - window.window_days * _DAY_NS
        self._horizon_end = self._cutoff + window.horizon_days * _DAY_NS
        self.last_ns: int | None = None  # the latest event_time added, in or out of the window
        self._step_ns = window.step_days * _DAY_NS
        self._ids: dict[str, int] = {}  # pseudonym -> dense id, in order of first sight
        self._counts = np.zeros((0, window.n_steps, len(EVENT_TYPES)), np.int64)
        self._money = np.zeros((0, window.n_steps, 2), np.int64)  # spend, viewed price sum
        self._last = np.zeros((0, window.n_steps, 2), np.int64)  # last event, last purchase
        self._first = np.zeros((0, 2), np.int64)  # first event, first purchase in the window
        self._labels = np.zeros(0, np.int64)
        self._active = np.zeros(0, np.int64)  # events of any type in the horizon
        self._sessions = _KeySet()  # (id * T + step, session hash)
        self._categories = _KeySet()  # (id * T + step, category_id)
        self._days = _KeySet()  # (id, day in window)
        self._purchase_days = _KeySet()  # (id, day in window) of purchases
        self._label_days = _KeySet()  # (id, day in horizon) of purchases; units other than
        # transactions only
        self._retailer: object | None = None

    def add(self, chunk: pd.DataFrame) -> None:
        """Fold one chunk of validated events into the accumulators."""
        missing = [c for c in USED_COLUMNS if c not in chunk.columns]
        if missing:
            raise DataError(
                f"event chunk lacks column(s) {', '.join(missing)}; expected the "
                f"REES46 event schema (fedmarket.data.ingest.schema.EVENT_COLUMNS)"
            )
        small = few_rows.read(chunk)  # a few rows as plain arrays (the scoring service)
        if small is not None:
            self._add_small(small)
            return
        ns = _utc_ns(chunk["event_time"])
        codes = _event_codes(chunk["event_type"])
        in_window = (ns >= self._start) & (ns < self._cutoff)
        in_horizon = (ns >= self._cutoff) & (ns < self._horizon_end)
        keep = in_window | in_horizon
        users = chunk["user_id"][keep]
        _no_missing(users, "user_id")
        # the window's columns as arrays: a frame's .loc costs more than 30 events' work
        rows = {c: chunk[c].array[in_window] for c in ("price", "user_session", "category_id")}
        _no_missing_array(rows["price"], chunk.index[in_window], "price")
        self._check_retailer(chunk)  # every check passed: only now change any state
        self._see(ns)
        if keep.any():
            self._fold(self._register(users), ns, codes, in_window, in_horizon, rows)

    def _add_small(self, a: few_rows.EventArrays) -> None:
        """``add`` for a chunk ``few_rows.read`` could read (checked there)."""
        ns = a.ns
        in_window = (ns >= self._start) & (ns < self._cutoff)
        in_horizon = (ns >= self._cutoff) & (ns < self._horizon_end)
        keep = in_window | in_horizon
        self._check_retailers(a.retailers)
        self._see(ns)
        if not keep.any():
            return
        table = self._ids  # dense ids in order of first sight, as ``_register`` gives them
        kept = [u for u, k in zip(a.user, keep.tolist(), strict=True) if k]
        ids = np.array([table.setdefault(u, len(table)) for u in kept], dtype=np.int64)
        self._grow(len(table))
        rows = {
            "price": a.price[in_window],
            "user_session": a.session[in_window],
            "category_id": a.category[in_window],
        }
        self._fold(ids, ns, a.codes, in_window, in_horizon, rows)

    def _see(self, ns: np.ndarray) -> None:
        if len(ns):
            latest = int(ns.max())
            self.last_ns = latest if self.last_ns is None else max(self.last_ns, latest)

    def _fold(
        self,
        ids: np.ndarray,
        ns: np.ndarray,
        codes: np.ndarray,
        in_window: np.ndarray,
        in_horizon: np.ndarray,
        rows: dict[str, Any],
    ) -> None:
        """The kept rows' dense ``ids`` and the window's ``rows`` into the accumulators."""
        window_rows = in_window[in_window | in_horizon]
        bought = codes[in_horizon] == _PURCHASE
        horizon_ids = ids[~window_rows]
        np.add.at(self._active, horizon_ids, 1)
        self._add_labels(horizon_ids[bought], ns[in_horizon][bought])
        self._add_window(rows, ids[window_rows], ns[in_window], codes[in_window])

    def _check_retailer(self, chunk: pd.DataFrame) -> None:
        if RETAILER_COLUMN not in chunk.columns or chunk.empty:
            return
        column = chunk[RETAILER_COLUMN]
        if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
            seen = set(pc.unique(pa.array(column.array)).drop_null().to_pylist())
        else:
            seen = set(column.dropna().unique())
        self._check_retailers(seen)

    def _check_retailers(self, seen: set[Any]) -> None:
        """One retailer per builder: ``seen`` (a chunk's retailer ids) and any earlier one."""
        seen = set(seen)
        if self._retailer is not None:
            seen.add(self._retailer)
        if len(seen) > 1:
            raise DataError(
                f"events of several retailers ({sorted(map(str, seen))}) were given "
                f"to one SequenceBuilder; build features per retailer"
            )
        if seen:
            self._retailer = seen.pop()

    def _register(self, users: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(users)
        # No library keeps a growing string -> int table across calls; a dict does it in C.
        table = self._ids
        new_ids = (table.setdefault(u, len(table)) for u in uniques.tolist())
        dense = np.fromiter(new_ids, np.int64, len(uniques))
        self._grow(len(table))
        return dense[codes]

    def _grow(self, n: int) -> None:
        if n <= len(self._labels):
            return
        # doubling keeps the copies linear; no floor, so one customer (the scoring service)
        # does not allocate and fill accumulators for a thousand
        size = max(n, 2 * len(self._labels))

        def grown(a: np.ndarray, fill: int) -> np.ndarray:
            out = np.full((size, *a.shape[1:]), fill, a.dtype)
            out[: len(a)] = a
            return out

        self._counts, self._money = grown(self._counts, 0), grown(self._money, 0)
        self._last, self._labels = grown(self._last, _NONE), grown(self._labels, 0)
        self._active = grown(self._active, 0)
        self._first = grown(self._first, _NEVER)

    def _add_labels(self, ids: np.ndarray, ns: np.ndarray) -> None:
        np.add.at(self._labels, ids, 1)
        if self.count_unit != "transactions":
            self._label_days.add(ids, (ns - self._cutoff) // _DAY_NS)

    def _add_window(
        self, rows: dict[str, Any], ids: np.ndarray, ns: np.ndarray, codes: np.ndarray
    ) -> None:
        n_steps = self.window.n_steps
        offset = ns - self._start
        cell = ids * n_steps + offset // self._step_ns
        np.add.at(self._counts.reshape(-1), cell * len(EVENT_TYPES) + codes, 1)
        price = np.asarray(rows["price"], dtype=np.float64)
        micro = np.rint(price * _MICRO).astype(np.int64)
        money = self._money.reshape(-1)
        bought, viewed = codes == _PURCHASE, codes == _VIEW
        np.add.at(money, cell[bought] * 2, micro[bought])
        np.add.at(money, cell[viewed] * 2 + 1, micro[viewed])
        last = self._last.reshape(-1)
        np.maximum.at(last, cell * 2, offset)
        np.maximum.at(last, cell[bought] * 2 + 1, offset[bought])
        first = self._first.reshape(-1)
        np.minimum.at(first, ids * 2, offset)
        np.minimum.at(first, ids[bought] * 2 + 1, offset[bought])
        has, keys = _session_keys(rows["user_session"])
        self._sessions.add(cell[has], keys)  # 64-bit keys: a collision is ~N^2/2^65 unlikely
        category = rows["category_id"]
        has = ~np.asarray(pd.isna(category), dtype=bool)
        self._categories.add(cell[has], np.asarray(category[has], dtype=np.int64))
        self._days.add(ids, offset // _DAY_NS)
        self._purchase_days.add(ids[bought], offset[bought] // _DAY_NS)

    def finish(self) -> CustomerFeatures:
        """Dense arrays for every customer seen in the window, sorted by pseudonym."""
        n = len(self._ids)
        active = (self._last[:n, :, 0] != _NONE).any(axis=1)
        if not active.any():
            w = self.window
            raise DataError(
                f"no customer has an event in the feature window [{w.start}, "
                f"{w.cutoff}); check --cutoff and --window-days against the data"
            )
        names = np.array(list(self._ids), dtype=str)
        keep = np.flatnonzero(active)
        order = keep[np.argsort(names[keep], kind="stable")]
        y_count = self._counts_in_unit(n)[order].astype(np.float32)
        return CustomerFeatures(
            customer=names[order],
            X=self._sequences(order),
            agg=self._aggregates(order),
            y_purchase=(y_count > 0).astype(np.float32),
            y_count=y_count,
            y_active=(self._active[:n][order] > 0).astype(np.float32),
        )

    def _counts_in_unit(self, n: int) -> np.ndarray:
        """Horizon purchases per customer in ``count_unit`` (see the module docstring)."""
        if self.count_unit == "transactions":
            return self._labels[:n]
        ids, days = self._label_days.pairs()
        if self.count_unit == "periods":
            days = days // self.window.step_days
        return np.bincount(_unique_pairs(ids, days)[0], minlength=n)

    def _distinct(self, keys: _KeySet, n_rows: int, divide: int) -> np.ndarray:
        """How many distinct second keys each first key (divided by ``divide``) has."""
        a, b = keys.pairs()
        first = a // divide
        if divide > 1:  # merge steps: distinct over the whole window, not summed per step
            first = _unique_pairs(first, b)[0]
        return np.bincount(first, minlength=n_rows)

    def _sequences(self, order: np.ndarray) -> np.ndarray:
        n_steps, n = self.window.n_steps, len(self._ids)
        counts, money = self._counts[order], self._money[order].astype(np.float64) / _MICRO
        per_cell = n * n_steps
        sessions = self._distinct(self._sessions, per_cell, 1).reshape(n, n_steps)[order]
        categories = self._distinct(self._categories, per_cell, 1).reshape(n, n_steps)[order]
        views, carts = counts[..., _VIEW], counts[..., EVENT_TYPES.index("cart")]
        step_end = np.arange(1, n_steps + 1, dtype=np.int64) * self._step_ns
        columns = {
            "views": views,
            "carts": carts,
            "removes": counts[..., EVENT_TYPES.index("remove_from_cart")],
            "purchases": counts[..., _PURCHASE],
            "spend": money[..., 0],
            "sessions": sessions,
            "distinct_categories": categories,
            "mean_viewed_price": money[..., 1] / np.maximum(views, 1),
            "days_since_last_purchase": self._days_since(self._last[order, :, 1], step_end),
            "days_since_last_event": self._days_since(self._last[order, :, 0], step_end),
            "cart_to_view": carts / np.maximum(views, 1),
        }
        return _float32_stack(columns, FEATURE_NAMES)

    def _days_since(self, last: np.ndarray, step_end: np.ndarray) -> np.ndarray:
        """Days from each step's end back to the latest event so far (cap if none yet)."""
        so_far = np.maximum.accumulate(last, axis=1)
        days = (step_end - so_far) / _DAY_NS
        return np.where(so_far == _NONE, self.window.never_days, days)

    def _aggregates(self, order: np.ndarray) -> np.ndarray:
        n_steps, n = self.window.n_steps, len(self._ids)
        totals = self._counts[order].sum(axis=1)
        last = self._last[order].max(axis=1)
        first = self._first[order]
        end = self.window.window_days * _DAY_NS
        never = self.window.never_days
        purchases, views = totals[:, _PURCHASE], totals[:, _VIEW]
        columns = {
            "recency_days": (end - last[:, 0]) / _DAY_NS,
            "purchase_recency_days": np.where(
                last[:, 1] == _NONE, self.window.never_days, (end - last[:, 1]) / _DAY_NS
            ),
            "frequency": purchases,
            "monetary": self._money[order, :, 0].sum(axis=1) / _MICRO,
            "views": views,
            "carts": totals[:, EVENT_TYPES.index("cart")],
            "removes": totals[:, EVENT_TYPES.index("remove_from_cart")],
            "sessions": self._distinct(self._sessions, n, n_steps)[order],
            "active_days": self._distinct(self._days, n, 1)[order],
            "distinct_categories": self._distinct(self._categories, n, n_steps)[order],
            "conversion_rate": purchases / np.maximum(views, 1),
            "first_event_days": (end - first[:, 0]) / _DAY_NS,
            "first_purchase_days": np.where(
                first[:, 1] == _NEVER, never, (end - first[:, 1]) / _DAY_NS
            ),
            "purchase_days": self._distinct(self._purchase_days, n, 1)[order],
        }
        return _float32_stack(columns, AGGREGATE_NAMES)
