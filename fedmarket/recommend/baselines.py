"""What the recommender must beat, scored on the same test customers: ``[N, V]`` scores.

All are fitted on the TRAINING customers only (their window histories and horizon targets).

- ``global_popularity``: how many training customers carted or bought each item in their
  horizon, the same list for everyone.
- ``retailer_popularity``: the same count within the customer's own partition (retailer);
  falls back to the global count where a partition has no training customer with a target.
  This is also the cold-start path of every model for a customer with no history
  (``with_cold_start``).
- ``cooccurrence_knn``: item-item cosine similarity of the training customers' item sets
  (window history and horizon targets together); a customer's score for an item is the summed
  similarity to the items of its history. Item kNN as in Sarwar et al. (2001).
- ``implicit_als``: implicit-feedback matrix factorisation (Hu, Koren & Volinsky, 2008) from
  the maintained ``implicit`` library (extra ``recommend``): trained on the training
  customers' item counts (history events and targets); a test customer's factors are solved
  from its history (``recalculate_user``), so no test target is seen.

A tiny global-popularity term breaks ties in the personalised baselines, so an item no
history points to is ranked by popularity rather than by catalogue order.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fedmarket.errors import ConfigError
from fedmarket.recommend.data import RecSplit

_TIE = 1e-6


def history_counts(split: RecSplit, n_items: int) -> sp.csr_matrix:
    """float32 [N, V]: how often each item occurs in each customer's history."""
    items = split.X[..., 0].astype(np.int64)
    rows = np.repeat(np.arange(len(split)), items.shape[1])
    flat = items.reshape(-1)
    keep = flat >= 0
    data = np.ones(int(keep.sum()), dtype=np.float32)
    shape = (len(split), n_items)
    return sp.csr_matrix((data, (rows[keep], flat[keep])), shape=shape)


def _popularity(train: RecSplit) -> np.ndarray:
    counts = train.y_categories.sum(axis=0).astype(np.float64)
    return counts / max(counts.max(), 1.0)


def global_popularity(train: RecSplit, test: RecSplit) -> np.ndarray:
    return np.tile(_popularity(train), (len(test), 1))


def retailer_popularity(train: RecSplit, test: RecSplit) -> np.ndarray:
    overall = _popularity(train)
    out = np.empty((len(test), train.y_categories.shape[1]))
    for partition in np.unique(test.partition):
        mine = train.y_categories[train.partition == partition]
        counts = mine.sum(axis=0).astype(np.float64)
        rows = test.partition == partition
        if counts.max(initial=0.0) == 0:
            out[rows] = overall
        else:
            out[rows] = counts / counts.max() + _TIE * overall
    return out


def cooccurrence_knn(train: RecSplit, test: RecSplit) -> np.ndarray:
    n_items = train.y_categories.shape[1]
    sets = (history_counts(train, n_items) > 0).astype(np.float64)
    sets = ((sets + sp.csr_matrix(train.y_categories)) > 0).astype(np.float64)
    co = (sets.T @ sets).toarray()
    norms = np.sqrt(np.diag(co))
    sim = co / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(sim, 1.0)  # an item is most like itself: history repeats count
    scores = (history_counts(test, n_items) > 0).astype(np.float64) @ sim
    return np.asarray(scores) + _TIE * _popularity(train)


def implicit_als(
    train: RecSplit, test: RecSplit, *, factors: int = 16, iterations: int = 15, seed: int = 0
) -> np.ndarray:
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:  # pragma: no cover - the extra is part of dev
        raise ConfigError(
            "the ALS baseline needs the 'implicit' package: pip install 'fedmarket[recommend]'"
        ) from None
    n_items = train.y_categories.shape[1]
    user_items = (history_counts(train, n_items) + sp.csr_matrix(train.y_categories)).tocsr()
    model = AlternatingLeastSquares(
        factors=factors, iterations=iterations, random_state=seed, calculate_training_loss=False
    )
    model.fit(user_items.astype(np.float32), show_progress=False)
    history = history_counts(test, n_items).astype(np.float32)
    user_factors = model.recalculate_user(np.arange(len(test)), history)
    scores = np.asarray(user_factors) @ np.asarray(model.item_factors).T
    return scores + _TIE * _popularity(train)


BASELINES = {
    "popularity (global)": global_popularity,
    "popularity (retailer)": retailer_popularity,
    "co-occurrence kNN": cooccurrence_knn,
    "ALS (implicit)": implicit_als,
}


def with_cold_start(scores: np.ndarray, fallback: np.ndarray, test: RecSplit) -> np.ndarray:
    """``scores`` with the rows of customers without any history replaced by ``fallback``
    (the retailer's popularity): the cold-start path, what is known about a new customer."""
    empty = test.n_events == 0
    out = np.array(scores, dtype=np.float64, copy=True)
    out[empty] = fallback[empty]
    return out
