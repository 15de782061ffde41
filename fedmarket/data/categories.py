"""The recommender's inputs and labels: each customer's category history and next categories.

Task ``next-categories`` asks, for each customer at the cut-off, which categories of the shared
``category_code`` taxonomy the customer will cart or buy in the horizon
``[cutoff, cutoff + horizon_days)``. Its input is the customer's last ``history_length``
window events that carry a category code, in time order, each with its event type and brand.
The same windows as the purchase labels (``fedmarket.data.features``) bound both: an event
before the window start or after the horizon changes nothing, and the history never sees the
horizon.

:class:`CategoryHistoryBuilder` streams a retailer's chunks next to the ``SequenceBuilder`` and
keeps only the last ``history_length`` events per customer, the (customer, category) and
(customer, brand) pairs of the window (for the vocabulary) and the horizon's target pairs:
memory grows with customers x ``history_length``, not with events.

The vocabulary (``fedmarket.data.category_vocab``) is built from training customers only, so a
category seen only in test windows or in a horizon is a *new item*, represented by its content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedmarket.checks import integer
from fedmarket.data import few_rows
from fedmarket.data.features import FeatureWindow
from fedmarket.data.ingest.schema import EVENT_TYPES
from fedmarket.errors import DataError

# The horizon events that make a category a target: an add-to-cart or a purchase.
TARGET_EVENTS: tuple[str, ...] = ("cart", "purchase")
_TARGET_CODES = np.array([EVENT_TYPES.index(e) for e in TARGET_EVENTS])


@dataclass(frozen=True)
class CategoryHistories:
    """Row i is customer ``customer[i]``: its history (oldest first, ``None``-padded at the
    front), event types (-1 for padding), brands, window event count and target categories."""

    customer: np.ndarray  # str [N]
    codes: np.ndarray  # object [N, L]: category_code or None
    etypes: np.ndarray  # int8 [N, L]: index into EVENT_TYPES, -1 = padding
    brands: np.ndarray  # object [N, L]: brand or None
    n_events: np.ndarray  # int32 [N]: window events with a category code (not only the last L)
    # every distinct (row, category, brand) of the window: what the vocabulary is built from
    seen: pd.DataFrame
    targets: list[frozenset[str]]  # categories carted or bought in the horizon
    # task next-products (within one retailer): each event's product_id as text (None where
    # the event has none), the products carted or bought in the horizon, and every product of
    # a window or horizon event with its category and brand (what describes a product)
    products: np.ndarray | None = None  # object [N, L]
    product_targets: list[frozenset[str]] | None = None
    described: pd.DataFrame | None = None  # product, code, brand, in_window_of (row or -1)

    def __len__(self) -> int:
        return len(self.customer)

    @staticmethod
    def concat(parts: list[CategoryHistories]) -> CategoryHistories:
        starts = np.cumsum([0, *(len(p) for p in parts[:-1])])
        return CategoryHistories(
            np.concatenate([p.customer for p in parts]),
            np.concatenate([p.codes for p in parts]),
            np.concatenate([p.etypes for p in parts]),
            np.concatenate([p.brands for p in parts]),
            np.concatenate([p.n_events for p in parts]),
            pd.concat(
                [
                    p.seen.assign(row=p.seen["row"] + offset)
                    for p, offset in zip(parts, starts, strict=True)
                ],
                ignore_index=True,
            ),
            [s for p in parts for s in p.targets],
            *_concat_products(parts, starts),
        )


def _concat_products(parts: list[CategoryHistories], starts: np.ndarray) -> tuple:
    """The next-products fields of ``parts`` joined (None where any part lacks them)."""
    if any(p.products is None or p.described is None for p in parts):
        return None, None, None
    described = pd.concat(
        [
            p.described.assign(row=np.where(p.described["row"] >= 0, p.described["row"] + o, -1))
            for p, o in zip(parts, starts, strict=True)
        ],
        ignore_index=True,
    )
    return (
        np.concatenate([p.products for p in parts]),
        [s for p in parts for s in (p.product_targets or [])],
        described,
    )


class CategoryHistoryBuilder:
    """Streams validated, pseudonymised event chunks (any order) into :class:`CategoryHistories`.

    A lone chunk of up to ``few_rows.SMALL_ROWS`` events (the scoring service's one customer)
    is kept until ``finish`` and folded there by ``few_categories`` in plain Python, which
    gives this class's result exactly without pandas' fixed cost per call; a second chunk sends
    it down the general path first.
    """

    def __init__(
        self, window: FeatureWindow, history_length: int = 20, few_rows: bool = False
    ) -> None:
        """``few_rows``: a lone small chunk may take the few-rows path, which builds the
        categories alone (no next-products fields): for scoring, not for ``data prepare``."""
        self.history_length = integer("--history-length", history_length, at_least=1)
        self._few_rows = few_rows
        self._start = window.start.as_unit("ns").value
        self._cutoff = window.cutoff.as_unit("ns").value
        self._horizon_end = window.horizon_end.as_unit("ns").value
        self._recent: pd.DataFrame | None = None
        self._counts: pd.Series = pd.Series(dtype=np.int64)
        self._seen: list[pd.DataFrame] = []
        self._targets: list[pd.DataFrame] = []
        # a lone chunk of a few rows (the scoring service's one customer), read at ``finish``
        # by ``few_categories`` unless another chunk comes; the caller must not change it
        self._pending: pd.DataFrame | None = None
        self._folded = False
        self._described: list[pd.DataFrame] = []

    def add(self, chunk: pd.DataFrame) -> None:
        """Fold one chunk in; rows without a category code are no item and are skipped."""
        if "category_code" not in chunk.columns or chunk.empty:
            return
        if (
            self._few_rows
            and not self._folded
            and self._pending is None
            and len(chunk) <= few_rows.SMALL_ROWS
        ):
            self._pending = chunk
            return
        self._flush()
        self._fold(chunk)

    def _flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._fold(pending)

    def _fold(self, chunk: pd.DataFrame) -> None:
        self._folded = True
        ns = chunk["event_time"].dt.tz_convert("UTC").dt.tz_localize(None)
        ns = ns.to_numpy(dtype="datetime64[ns]").view(np.int64)
        etype = pd.Index(EVENT_TYPES).get_indexer(chunk["event_type"].astype(object))
        has = chunk["category_code"].notna().to_numpy() & (etype >= 0)
        window = has & (ns >= self._start) & (ns < self._cutoff)
        horizon = (
            has & (ns >= self._cutoff) & (ns < self._horizon_end) & np.isin(etype, _TARGET_CODES)
        )
        keep = window | horizon
        if not keep.any():
            return
        rows = chunk.loc[keep]
        brand = rows["brand"] if "brand" in rows.columns else pd.Series(None, index=rows.index)
        frame = pd.DataFrame(
            {
                "user": rows["user_id"].astype(object).to_numpy(),
                "ns": ns[keep],
                "etype": etype[keep].astype(np.int8),
                "code": rows["category_code"].astype(object).to_numpy(),
                "brand": brand.astype(object).where(brand.notna(), None).to_numpy(),
                "product": _product_text(rows),
            }
        )
        in_window = window[keep]
        self._targets.append(frame.loc[~in_window, ["user", "code", "product"]].drop_duplicates())
        self._described.append(
            frame.loc[frame["product"].notna(), ["user", "product", "code", "brand"]]
            .assign(in_window=in_window[frame["product"].notna().to_numpy()])
            .drop_duplicates()
        )
        frame = frame[in_window]
        if frame.empty:
            return
        # a total order (customer, time, type, code, brand) on 64-bit hashes of the strings:
        # chunk order cannot change the history, and integers sort many times faster
        for column in ("user", "code", "brand", "product"):
            frame[f"h_{column}"] = sort_hash(frame[column])
        self._counts = self._counts.add(frame.groupby("user").size(), fill_value=0)
        self._seen.append(frame[["user", "code", "brand"]].drop_duplicates())
        both = (
            frame if self._recent is None else pd.concat([self._recent, frame], ignore_index=True)
        )
        both = both.sort_values(
            ["h_user", "ns", "etype", "h_code", "h_brand", "h_product"], kind="stable"
        )
        self._recent = both.groupby("h_user", sort=False).tail(self.history_length)

    def finish(self, customers: np.ndarray) -> CategoryHistories:
        """The histories of ``customers`` (the feature rows' pseudonyms, in their order)."""
        if self._pending is not None:
            from fedmarket.data import few_categories  # it builds on this module

            small = few_categories.read(self._pending)
            if small is not None:
                bounds = (self._start, self._cutoff, self._horizon_end)
                return few_categories.histories(small, bounds, self.history_length, customers)
            self._flush()
        n, length = len(customers), self.history_length
        row = pd.Series(np.arange(n), index=pd.Index(customers, dtype=object))
        codes = np.full((n, length), None, dtype=object)
        products = np.full((n, length), None, dtype=object)
        brands = np.full((n, length), None, dtype=object)
        etypes = np.full((n, length), -1, dtype=np.int8)
        recent = self._recent if self._recent is not None else pd.DataFrame({"user": []})
        recent = recent[recent["user"].isin(row.index)]
        if not recent.empty:
            rows = row.loc[recent["user"]].to_numpy()
            # position from the end: the latest event goes to column L - 1
            back = recent.groupby("h_user", sort=False).cumcount(ascending=False).to_numpy()
            cols = length - 1 - back
            codes[rows, cols] = recent["code"].to_numpy()
            products[rows, cols] = recent["product"].to_numpy()
            brand = recent["brand"]
            brands[rows, cols] = brand.astype(object).where(brand.notna(), None).to_numpy()
            etypes[rows, cols] = recent["etype"].to_numpy()
        n_events = self._counts.reindex(row.index, fill_value=0).to_numpy().astype(np.int32)
        seen = _concat(self._seen, ("user", "code", "brand")).drop_duplicates()
        seen = seen[seen["user"].isin(row.index)]
        seen = pd.DataFrame(
            {
                "row": row.loc[seen["user"]].to_numpy(),
                "code": seen["code"].to_numpy(),
                "brand": seen["brand"].to_numpy(),
            }
        )
        targets = _concat(self._targets, ("user", "code", "product"))
        return CategoryHistories(
            np.asarray(customers),
            codes,
            etypes,
            brands,
            n_events,
            seen,
            _sets(targets, "code", row),
            products,
            _sets(targets, "product", row),
            _described(self._described, row),
        )


def _product_text(rows: pd.DataFrame) -> np.ndarray:
    """Each row's product_id as text, None where the export has none."""
    if "product_id" not in rows.columns:
        return np.full(len(rows), None, dtype=object)
    ids = rows["product_id"]
    return (
        ids.astype(object)
        .where(ids.notna(), None)
        .map(lambda v: None if v is None else str(v))
        .to_numpy(dtype=object)
    )


def _described(parts: list[pd.DataFrame], row: pd.Series) -> pd.DataFrame:
    """Every product of the kept customers' events with its category and brand, and the row
    of a customer who has it in the WINDOW (-1 where only in a horizon): the catalogue's
    source. A product's description is its first (code, brand) in sorted order, so it does
    not depend on chunks."""
    frame = _concat(parts, ("user", "product", "code", "brand", "in_window"))
    frame = frame[frame["user"].isin(row.index)]
    return pd.DataFrame(
        {
            "product": frame["product"].to_numpy(dtype=object),
            "code": frame["code"].to_numpy(dtype=object),
            "brand": frame["brand"].to_numpy(dtype=object),
            "row": np.where(
                frame["in_window"].to_numpy(dtype=bool), row.loc[frame["user"]].to_numpy(), -1
            ).astype(np.int64),
        }
    )


def sort_hash(values: pd.Series) -> np.ndarray:
    """Stable 64-bit hashes (None hashes alike): a sort key that does not depend on chunks."""
    return pd.util.hash_pandas_object(values.astype(str), index=False).to_numpy()


def _concat(parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.concat(parts, ignore_index=True)


def _sets(pairs: pd.DataFrame, column: str, row: pd.Series) -> list[frozenset[str]]:
    """For each customer of ``row`` (pseudonym -> row), the distinct non-null ``column``."""
    out: list[frozenset[str]] = [frozenset()] * len(row)
    pairs = pairs[pairs[column].notna() & pairs["user"].isin(row.index)]
    sets = pairs.groupby("user", sort=False)[column].agg(frozenset)
    for index, values in zip(row.loc[sets.index].to_numpy(), sets.to_numpy(), strict=True):
        out[index] = values
    return out


def has_taxonomy(histories: list[CategoryHistories]) -> bool:
    """Whether any customer has a category-coded window event: without one there is no
    recommender data to write (an export without ``category_code``)."""
    return any(bool(h.n_events.sum()) for h in histories)


def check_lengths(histories: CategoryHistories, n: int, retailer: str) -> None:
    if len(histories) != n:
        raise DataError(
            f"retailer {retailer}: {len(histories)} category histories for {n} customers; "
            "this is a bug in fedmarket's data preparation, please report it"
        )
