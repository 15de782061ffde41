"""Ranking metrics of a recommendation: HR@k, NDCG@k, MRR and catalogue coverage.

``scores`` is ``[N, V]`` (higher = recommend first), ``relevant`` the ``[N, V]`` 0/1 targets.
Ties are broken by item index (lower first), so a constant model ranks items in catalogue
order, deterministically. HR, NDCG and MRR average over customers with at least one relevant
item (the others have nothing to hit); coverage is the share of the catalogue that appears in
anyone's top k, over every customer given.

- HR@k: 1 if any relevant item is in the top k.
- NDCG@k: sum over relevant items in the top k of 1 / log2(rank + 1), divided by the best
  possible value, sum_{i=1}^{min(|relevant|, k)} 1 / log2(i + 1).
- MRR: 1 / rank of the first relevant item (over the whole ranking, not cut at k).
"""

from __future__ import annotations

import math

import numpy as np

from fedmarket.errors import DataError

K = 10
RANKING_KEYS: tuple[str, ...] = ("hr@10", "ndcg@10", "mrr", "coverage@10", "n_customers")


def ranks(scores: np.ndarray) -> np.ndarray:
    """int64 [N, V]: the 1-based rank of each item for each customer (ties by item index)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")
    out = np.empty_like(order)
    rows = np.arange(order.shape[0])[:, None]
    out[rows, order] = np.arange(1, order.shape[1] + 1)
    return out


def ranking_metrics(relevant: object, scores: object) -> dict[str, float]:
    """HR@10, NDCG@10, MRR, coverage@10 and the number of customers with a relevant item."""
    k = K
    rel = np.asarray(relevant) > 0
    s = np.asarray(scores, dtype=np.float64)
    if rel.ndim != 2 or rel.shape != s.shape:
        raise DataError(
            f"ranking metrics need [customers, items] targets and scores of one shape, "
            f"got {rel.shape} and {s.shape}"
        )
    nan = dict.fromkeys(RANKING_KEYS, math.nan) | {"n_customers": 0.0}
    if not s.size or not np.isfinite(s).all():
        return nan
    r = ranks(s)
    coverage = len(np.unique(np.nonzero(r <= k)[1])) / s.shape[1]
    has = rel.any(axis=1)
    if not has.any():
        return nan | {"coverage@10": coverage}
    rel, r = rel[has], r[has]
    hit = rel & (r <= k)
    gain = np.where(hit, 1.0 / np.log2(r + 1.0), 0.0).sum(axis=1)
    ideal_n = np.minimum(rel.sum(axis=1), k)
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[ideal_n - 1]
    first = np.where(rel, r, np.iinfo(np.int64).max).min(axis=1)
    return {
        "hr@10": float(hit.any(axis=1).mean()),
        "ndcg@10": float((gain / ideal).mean()),
        "mrr": float((1.0 / first).mean()),
        "coverage@10": float(coverage),
        "n_customers": float(has.sum()),
    }
