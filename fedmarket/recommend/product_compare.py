"""Task ``next-products``' comparison: every model and baseline on each retailer's own test
customers and catalogue, pooled over retailers, for all, warm and cold customers and for
new products (first seen after the cut-off, or only in test windows: no private row).

- ``GRU+NCF (federated)``: the run's global (shared) weights with each retailer's own product
  table, as the retailer holds them (in simulation the tables are read from each client's
  state-dir, where the client keeps them; nothing of them went to the server).
- ``GRU+NCF (federated, no product table)``: the same shared weights with an all-zero table:
  content only, what a retailer without a table (or a new product) gets.
- ``GRU+NCF / GRU-only / NCF-only (centralised)``: one model trained on every retailer's
  training customers pooled, holding every retailer's table side by side (each customer
  ranks its own retailer's products only: ``fedmarket.recommend.products.pooled``), the
  same parameters as the federation's and the same training settings and DP.
- per retailer: popularity, co-occurrence kNN, implicit ALS (``fedmarket.recommend.baselines``
  on the products as items), fitted on that retailer's training customers only.

Every personalised model goes through the cold-start path (the retailer's popularity for a
customer with no category event in the window). Pooled HR/NDCG/MRR are means over every
retailer's test customers with a target (the per-retailer rankings side by side, padded
with never-ranked columns); coverage@10 is the share of all retailers' products in some
customer's top 10 at its retailer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.data.product_vocab import Catalogue, read_catalogue
from fedmarket.models import build_model
from fedmarket.privacy.config import PrivacySettings
from fedmarket.recommend import baselines
from fedmarket.recommend.data import vocabulary_entry
from fedmarket.recommend.evaluate import SEGMENTS, comparison, segments
from fedmarket.recommend.experiment import ABLATIONS, Comparison
from fedmarket.recommend.metrics import K, ranks
from fedmarket.recommend.products import (
    N_FEATURES,
    ProductSplit,
    catalogue_option,
    check_products,
    load_product_split,
    partition_dir,
    pooled,
)
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit, predict

TASK = "next-products"
FEDERATED = "GRU+NCF (federated)"
SHARED_ONLY = "GRU+NCF (federated, no product table)"
_BASELINES = ("popularity (retailer)", "co-occurrence kNN", "ALS (implicit)")
_PAD = -1.0e9  # a padded column's score: ranked after every real product

Scores = dict[str, dict[int, np.ndarray]]  # model -> partition -> [N_p, P_p]


def _score(net: torch.nn.Module, weights: Mapping[str, torch.Tensor], X: np.ndarray) -> np.ndarray:
    net.load_state_dict({**net.state_dict(), **weights}, strict=True)
    return predict(net, X, get_task(TASK), device="cpu")


def compare_products(
    data_dir: Path,
    train_cfg: TrainConfig,
    *,
    privacy: PrivacySettings | None = None,
    hparams: dict[str, Any] | None = None,
    fernet: Fernet | None = None,
    federated: dict[str, torch.Tensor] | None = None,
    private_tables: Mapping[int, Mapping[str, torch.Tensor]] | None = None,
    modes: tuple[str, ...] = tuple(ABLATIONS),
    on_model: Callable[[str], None] | None = None,
) -> Comparison:
    """The comparison (see the module docstring); ``federated``: the run's shared weights,
    ``private_tables``: partition -> that client's kept table (absent: no federated row with
    tables, only the content-only one)."""
    started = time.perf_counter()
    manifest = store.read_manifest(data_dir)
    check_products(manifest)
    vocabulary = vocabulary_entry(manifest)
    pids = store.partition_ids(manifest)
    cats = {p: read_catalogue(partition_dir(data_dir, p), fernet) for p in pids}
    train = {p: load_product_split(data_dir, p, "train", fernet) for p in pids}
    test = {p: load_product_split(data_dir, p, "test", fernet) for p in pids}
    hp = {k: v for k, v in (hparams or {}).items() if k not in ("mode", "vocabulary", "catalogue")}

    def model(catalogue: dict, mode: str = "gru-ncf", dp: bool = False) -> torch.nn.Module:
        return build_model(
            "gru-ncf", N_FEATURES, task=TASK, dp=dp, seed=train_cfg.seed,
            vocabulary=vocabulary, catalogue=catalogue, mode=mode, **hp,
        )  # fmt: skip

    scores: Scores = {}
    if federated is not None:
        for p in pids:
            net = model(catalogue_option(cats[p], p))
            scores.setdefault(SHARED_ONLY, {})[p] = _score(net, federated, test[p].X)
            table = (private_tables or {}).get(p)
            if table is not None:
                weights = {**federated, **table}
                scores.setdefault(FEDERATED, {})[p] = _score(net, weights, test[p].X)
        if FEDERATED in scores and len(scores[FEDERATED]) < len(pids):
            del scores[FEDERATED]  # a federated row needs every retailer's table
    epsilon = None
    if modes:
        pool = pooled({p: train[p].with_targets() for p in pids}, cats)
        pool_test = pooled(test, cats)
        for mode in modes:
            if on_model is not None:
                on_model(ABLATIONS[mode])
            net = model(pool.catalogue, mode, dp=privacy is not None)
            result = fit(net, pool.split, get_task(TASK), train_cfg, privacy=privacy)
            epsilon = result.epsilon if mode == "gru-ncf" else epsilon
            full = _score(model(pool.catalogue, mode), result.state_dict, pool_test.split.X)
            name = f"{ABLATIONS[mode]} (centralised)"
            for p in pids:
                lo, hi = pool_test.offsets[p]
                scores.setdefault(name, {})[p] = full[pool_test.split.partition == p, lo:hi]
    personalised = list(scores)
    for p in pids:
        tr, te = train[p].as_items(), test[p].as_items()
        fallback = baselines.retailer_popularity(tr, te)
        for name in personalised:
            scores[name][p] = baselines.with_cold_start(scores[name][p], fallback, te)
        for name in _BASELINES:
            scores.setdefault(name, {})[p] = baselines.BASELINES[name](tr, te)
    rows = product_rows(test, cats, scores)
    n_train = sum(len(train[p].with_targets()) for p in pids)
    notes = {
        "new_products": new_product_hits(test, cats, scores),
        "catalogues": {str(p): {"products": len(c), "known": c.n_known} for p, c in cats.items()},
    }
    return Comparison(
        rows, n_train, sum(len(t) for t in test.values()), epsilon,
        time.perf_counter() - started, notes, TASK,
    )  # fmt: skip


def product_rows(
    test: Mapping[int, ProductSplit], cats: Mapping[int, Catalogue], scores: Scores
) -> list[dict[str, Any]]:
    """The comparison rows (``fedmarket.recommend.evaluate``'s layout) pooled over retailers."""
    pids = list(test)
    width = max(len(cats[p]) for p in pids)
    y = np.concatenate([_pad(test[p].y_products, width, 0.0) for p in pids])
    joined = ProductSplit(
        np.zeros((len(y), 1, 1), np.float32),
        y,
        np.concatenate([test[p].n_events for p in pids]),
        np.concatenate([test[p].partition for p in pids]),
    )
    padded = {n: np.concatenate([_pad(s[p], width, _PAD) for p in pids]) for n, s in scores.items()}
    rows = comparison(joined, padded)
    total = sum(len(cats[p]) for p in pids)
    for row in rows:
        covered = 0
        for p in pids:
            mask = segments(test[p])[row["customers"]]
            if mask.any():
                top = ranks(scores[row["model"]][p][mask]) <= K
                covered += int(top.any(axis=0).sum())
        row["coverage@10"] = covered / total if total else float("nan")
    return rows


def _pad(a: np.ndarray, width: int, value: float) -> np.ndarray:
    out = np.full((len(a), width), value, dtype=np.float64)
    out[:, : a.shape[1]] = a
    return out


def new_product_hits(
    test: Mapping[int, ProductSplit], cats: Mapping[int, Catalogue], scores: Scores
) -> dict[str, Any]:
    """Cold products: among test customers with a target that is a new product (no private
    row: not in any of its retailer's training customers' windows), the share whose top 10
    holds one of those new targets, per model (NaN where no customer has one)."""
    out: dict[str, Any] = {
        "products": int(sum(len(c) - c.n_known for c in cats.values())),
        "customers": 0,
    }
    hits: dict[str, int] = dict.fromkeys(scores, 0)
    for p, split in test.items():
        known = cats[p].n_known
        new = split.y_products[:, known:] > 0
        who = new.any(axis=1)
        out["customers"] += int(who.sum())
        for name, s in scores.items():
            if who.any():
                top = np.argsort(-s[p][who], axis=1, kind="stable")[:, :K]
                hit = (top >= known) & np.take_along_axis(split.y_products[who] > 0, top, axis=1)
                hits[name] += int(hit.any(axis=1).sum())
    for name in scores:
        out[name] = hits[name] / out["customers"] if out["customers"] else float("nan")
    return out


__all__ = ["FEDERATED", "SEGMENTS", "SHARED_ONLY", "compare_products", "product_rows"]
