"""Task ``next-products``' view of prepared data: one retailer's split, its catalogue as the
model's option, and the pooled form the centralised reference trains on.

A retailer's split (``ProductSplit``): ``X`` ``[N, L, 5]`` per event (category item, event
type, brand token, product row of the retailer's catalogue or -1, partition), the 0/1 targets
over the retailer's catalogue (``y_products``, what the task reads), the window's category
event count and the partition. Row i is row i of the split's other arrays (same customer).

The catalogue option (``catalogue_option``) gives the model each product's content tokens,
its private row (known products: rows 0..n_known-1 of the retailer's table; -1: new) and its
owner. The centralised reference (``pooled``) holds every retailer's catalogue side by side:
product and private rows shifted by the retailers before it, each customer scored on its own
retailer's products only (the model masks the others): per-retailer tables in one model, the
same parameters the federation has, trained on the pooled customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.data.category_vocab import read_recs
from fedmarket.data.product_vocab import Catalogue, read_catalogue, read_products
from fedmarket.errors import DataError
from fedmarket.recommend.data import RecSplit, encode_inputs, vocabulary_entry

N_FEATURES = 5


@dataclass(frozen=True)
class ProductSplit(RecSplit):
    """A ``RecSplit`` whose targets are the retailer's products (``y_categories`` holds them
    in the parent's layout; ``y_products`` is the name the task reads)."""

    @property
    def y_products(self) -> np.ndarray:
        return self.y_categories

    def as_items(self) -> RecSplit:
        """The products as the items of a plain ``RecSplit`` (item channel = product row):
        what the baselines (``fedmarket.recommend.baselines``) read."""
        return RecSplit(self.X[..., 3:4], self.y_categories, self.n_events, self.partition)


def partition_dir(data_dir: Path, partition: int) -> Path:
    return Path(data_dir) / "partitions" / str(int(partition))


def check_products(manifest: store.Manifest | dict[str, Any]) -> dict[str, Any]:
    """The manifest's product entry; DataError saying how to make it where there is none."""
    entry = vocabulary_entry(manifest).get("products")
    if not isinstance(entry, dict):
        raise DataError(
            "the prepared data has no product catalogues: task next-products ranks each "
            "retailer's own products, so prepare with `fedmarket data prepare --partition "
            "natural` (one partition per retailer) from events with product_id and "
            "category_code"
        )
    return entry


def catalogue_option(catalogue: Catalogue, partition: int) -> dict[str, np.ndarray]:
    """gru-ncf's ``catalogue=`` for one retailer (see the module docstring)."""
    n, known = len(catalogue), catalogue.n_known
    private = np.concatenate([np.arange(known), np.full(n - known, -1)]).astype(np.int64)
    return {
        "content": catalogue.content,
        "private": private,
        "owner": np.full(n, int(partition), dtype=np.int64),
    }


def load_product_split(
    data_dir: Path, partition: int, split: str, fernet: Fernet | None = None
) -> ProductSplit:
    """One split of one retailer for task next-products."""
    check_products(store.read_manifest(data_dir))
    directory = store.split_dir(data_dir, partition, split)
    recs, products = read_recs(directory, fernet), read_products(directory, fernet)
    n_items = len(read_catalogue(partition_dir(data_dir, partition), fernet))
    n = len(recs["hist_item"])
    if len(products["hist_product"]) != n:
        raise DataError(f"{directory}: recs.npz and products.npz differ in rows; re-run prepare")
    X = np.concatenate(
        [
            encode_inputs(recs),
            products["hist_product"][..., None].astype(np.float32),
            np.full((n, recs["hist_item"].shape[1], 1), partition, np.float32),
        ],
        axis=-1,
    )
    y = np.zeros((n, n_items), dtype=np.float32)
    ptr, ind = products["ptarget_indptr"], products["ptarget_indices"]
    y[np.repeat(np.arange(n), np.diff(ptr)), ind] = 1.0
    return ProductSplit(X, y, recs["n_events"].astype(np.int32), np.full(n, partition, np.int32))


_FIELDS = ("X", "y_categories", "n_events", "partition")


@dataclass(frozen=True)
class Pooled:
    """Every retailer's split side by side (the centralised reference's data)."""

    split: ProductSplit  # products shifted by ``offsets``; targets over all catalogues
    catalogue: dict[str, np.ndarray]  # the model's option for every retailer's products
    offsets: dict[int, tuple[int, int]]  # partition -> (first column, end column)


def pooled(splits: dict[int, ProductSplit], catalogues: dict[int, Catalogue]) -> Pooled:
    """``splits`` (partition -> split) joined with every retailer's catalogue side by side."""
    total = sum(len(c) for c in catalogues.values())
    parts, options, offsets = [], [], {}
    column, private = 0, 0
    for pid, split in splits.items():
        cat = catalogues[pid]
        option = catalogue_option(cat, pid)
        option["private"] = np.where(option["private"] >= 0, option["private"] + private, -1)
        X = split.X.copy()
        X[..., 3] = np.where(X[..., 3] >= 0, X[..., 3] + column, -1)
        y = np.zeros((len(split), total), dtype=np.float32)
        y[:, column : column + len(cat)] = split.y_categories
        parts.append(ProductSplit(X, y, split.n_events, split.partition))
        options.append(option)
        offsets[pid] = (column, column + len(cat))
        column, private = column + len(cat), private + cat.n_known
    joined = ProductSplit(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))
    catalogue = {k: np.concatenate([o[k] for o in options]) for k in options[0]}
    return Pooled(joined, catalogue, offsets)


def check_prepared_products(data_dir: Path, manifest: store.Manifest) -> None:
    """Before a next-products run starts: the manifest's product entry, every partition's
    catalogue and every split's ``products.npz`` (a DataError naming the first missing one)."""
    from fedmarket.data.product_vocab import PRODUCTS_NAME, has_products

    check_products(manifest)
    for pid in store.partition_ids(manifest):
        if not has_products(partition_dir(data_dir, pid)):
            raise DataError(
                f"{partition_dir(data_dir, pid)}: no product catalogue; re-run `fedmarket data "
                "prepare --partition natural` on events with product_id and category_code"
            )
        for split in store.SPLITS:
            path = store.split_dir(data_dir, pid, split) / PRODUCTS_NAME
            if not (path.exists() or path.with_name(path.name + ".enc").exists()):
                raise DataError(f"{path}: missing; re-run `fedmarket data prepare`")
