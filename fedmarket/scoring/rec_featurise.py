"""New customers' events turned into a recommender's inputs, with the code `data prepare` runs.

`data prepare` writes a customer's ``recs.npz`` row with ``CategoryHistoryBuilder`` (its last
``history_length`` window events with a category code, each with its type and brand) for the
customers ``SequenceBuilder`` finds active in the window, encoded under the vocabulary by
``category_vocab.encode``. Scoring runs the same three, in the run's window moved to the
scoring date and under the RUN's vocabulary: a category the run never saw is read as
``encode`` reads it, as no item (index -1, its event type and brand still counted), and
``unseen_events`` says how many history events that was.

Also kept, when asked (``bought=True``): which categories each customer bought in the window
(purchase events, the whole window rather than the last ``history_length`` events), for
``--exclude-bought``; a tenth of the cost of one customer's request in the service.

As for propensity scoring (``fedmarket.scoring.featurise``), the retailer's own ids are used:
pseudonyms would change neither a history nor its order (each customer's events are ordered
by time, type, category and brand).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fedmarket.data import categories, category_vocab, features, few_rows
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.data.ingest.validate import DropReport
from fedmarket.errors import DataError
from fedmarket.recommend.data import encode_inputs
from fedmarket.scoring.featurise import Advance, retailer_frames
from fedmarket.scoring.rec_model import RecModel

Pairs = tuple[list[Any], list[Any]]  # (customer, category code) of window purchases


@dataclass(frozen=True)
class RecInputs:
    """Row i of every array is customer ``customer[i]`` (the id as the events spell it)."""

    retailer: str
    customer: np.ndarray
    X: np.ndarray  # float32 [N, L, 3]: the model's input (encode_inputs of recs.npz arrays)
    n_events: np.ndarray  # int32 [N]: window events with a category code
    bought: sp.csr_matrix | None  # bool [N, V]: categories bought in the window (if asked)
    window: features.FeatureWindow
    unseen_events: int  # history events whose category is not in the run's vocabulary
    drops: DropReport = field(default_factory=DropReport)

    def __len__(self) -> int:
        return len(self.customer)

    def take(self, index: np.ndarray) -> RecInputs:
        """Rows ``index`` of every per-customer array, in that order."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            customer=self.customer[index],
            X=self.X[index],
            n_events=self.n_events[index],
            bought=None if self.bought is None else self.bought[index],
        )


def featurise_rec_frames(
    model: RecModel,
    frames: Iterable[pd.DataFrame],
    window: features.FeatureWindow,
    *,
    retailer: str,
    drops: DropReport | None = None,
    advance: Advance | None = None,
    bought: bool = False,
) -> RecInputs:
    """Validated event frames (``validate_events`` output) of one retailer -> inputs;
    ``bought``: with the categories each customer bought in the window."""
    customers = features.SequenceBuilder(window, str(model.manifest.get("labels", {}).get(
        "count_unit", "transactions")))  # fmt: skip
    histories = categories.CategoryHistoryBuilder(window, model.history_length, few_rows=True)
    purchases: list[Pairs] = []
    n_events = 0
    for frame in frames:
        if not len(frame):
            continue
        customers.add(frame)
        histories.add(frame)
        if bought:
            purchases.append(_window_purchases(frame, window))
        n_events += len(frame)
        if advance is not None:
            advance(len(frame))
    if n_events == 0:
        raise DataError(f"retailer {retailer}: no valid event to score (see the dropped rows)")
    who = customers.finish().customer
    found = histories.finish(who)
    categories.check_lengths(found, len(who), retailer)
    arrays = category_vocab.encode(found, model.vocabulary)
    unseen = (arrays["hist_item"] < 0) & (arrays["hist_type"] >= 0)
    return RecInputs(
        retailer=retailer,
        customer=np.asarray(who),
        X=encode_inputs(arrays),
        n_events=arrays["n_events"],
        bought=_bought(purchases, who, model.vocabulary.items) if bought else None,
        window=window,
        unseen_events=int(unseen.sum()),
        drops=drops if drops is not None else DropReport(),
    )


def featurise_rec_export(
    model: RecModel,
    raw: Path,
    *,
    mapping: ExportMapping | None = None,
    as_of: object | None = None,
    chunksize: int = 500_000,
    strict: bool = False,
    advance: Advance | None = None,
    bought: bool = False,
) -> list[RecInputs]:
    """Every retailer's customers in ``raw`` (a file or directory, as `data prepare` reads),
    as of ``as_of`` (default: the midnight after the retailer's last event)."""
    return [
        featurise_rec_frames(
            model,
            frames,
            window,
            retailer=retailer,
            drops=drops,
            advance=advance,
            bought=bought,
        )
        for retailer, window, frames, drops in retailer_frames(
            raw, model.window_at, mapping=mapping, as_of=as_of, chunksize=chunksize, strict=strict
        )
    ]


def _window_purchases(frame: pd.DataFrame, window: features.FeatureWindow) -> Pairs:
    """(user, code) of the frame's purchases with a category code in the window."""
    if "category_code" not in frame.columns:
        return [], []
    t = frame["event_time"]
    if len(frame) <= few_rows.SMALL_ROWS and isinstance(t.dtype, pd.DatetimeTZDtype):
        # a few rows (the service's one customer): plain lists, not pandas' fixed costs
        ns = t.array.as_unit("ns").asi8.tolist()
        lo, hi = window.start.as_unit("ns").value, window.cutoff.as_unit("ns").value
        kinds = few_rows.values(frame["event_type"])
        codes = few_rows.values(frame["category_code"])
        users = few_rows.values(frame["user_id"])
        keep = [
            i
            for i, (k, c, n) in enumerate(zip(kinds, codes, ns, strict=True))
            if k == "purchase" and c is not None and lo <= n < hi
        ]
        return [users[i] for i in keep], [codes[i] for i in keep]
    keep = (
        (frame["event_type"].astype(object) == "purchase").to_numpy()
        & frame["category_code"].notna().to_numpy()
        & ((t >= window.start) & (t < window.cutoff)).to_numpy()
    )
    rows = frame.loc[keep]
    pairs = pd.DataFrame(
        {
            "user": rows["user_id"].astype(object).to_numpy(),
            "code": rows["category_code"].astype(object).to_numpy(),
        }
    ).drop_duplicates()
    return pairs["user"].tolist(), pairs["code"].tolist()


def _bought(purchases: list[Pairs], customers: np.ndarray, items: tuple[str, ...]) -> sp.csr_matrix:
    """bool [customers, items]: True where the customer bought the item in the window."""
    row = {c: i for i, c in enumerate(np.asarray(customers, dtype=object).tolist())}
    col = {c: j for j, c in enumerate(items)}
    cells = sorted(
        {
            (row[u], col[c])
            for users, codes in purchases
            for u, c in zip(users, codes, strict=True)
            if u in row and c in col
        }
    )
    shape = (len(customers), len(items))
    if not cells:
        return sp.csr_matrix(shape, dtype=bool)
    r, c = np.array(cells, dtype=np.int64).T
    return sp.csr_matrix((np.ones(len(cells), dtype=bool), (r, c)), shape=shape)
