"""Task ``next-products``' data: each retailer's own product catalogue and, per split, each
customer's product history and the products it carts or buys in the horizon.

Products are a retailer's own: the catalogue is built at prepare, at the retailer, from that
retailer's events only, and its files stay in the retailer's partition (never in the
manifest, never in a model update). Product ids are keyed pseudonyms (HMAC with the
retailer's pseudonym key, ``fedmarket.data.protect.pseudonyms``) of ``<retailer>/<product_id>``,
so the same product id at two retailers is two unrelated products.

The same windows as every label bound the data (``fedmarket.data.categories``): the history
is window events only, the targets horizon events only, and the catalogue's *known* products
are those in TRAINING customers' windows (like the category vocabulary). Every other product
of the retailer's events (in a test customer's window, or only in a horizon: first seen after
the cut-off) is *new*: it has no row in the private embedding table and is described by its
content only, its category's prefix tokens and its brand token from the shared vocabulary.

Layout::

    partitions/<i>/catalogue.npz: product str [P] (pseudonyms, known first), n_known int [1],
        content int64 [P, D + 1] (category prefix tokens, 0-padded to D, then the brand token)
    partitions/<i>/<split>/products.npz: hist_product int32 [N, L] (-1: padding or no
        product), ptarget_indptr int64 [N + 1], ptarget_indices int32 [nnz]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from cryptography.fernet import Fernet

from fedmarket.data.categories import CategoryHistories
from fedmarket.data.category_vocab import Vocabulary, prefixes, read_npz, take_csr, write_npz
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.errors import DataError

CATALOGUE_NAME = "catalogue.npz"
PRODUCTS_NAME = "products.npz"
_SPLIT_ARRAYS = ("hist_product", "ptarget_indptr", "ptarget_indices")


@dataclass(frozen=True)
class Catalogue:
    """One retailer's products: rows ``< n_known`` have a private embedding, the rest are new
    (content only). ``content[p]``: product p's category prefix tokens then its brand token."""

    product: np.ndarray  # str [P]
    n_known: int
    content: np.ndarray  # int64 [P, D + 1]

    def __len__(self) -> int:
        return len(self.product)

    @staticmethod
    def build(
        histories: CategoryHistories,
        is_test: np.ndarray,
        vocab: Vocabulary,
        pseudonym: dict[str, str],
    ) -> Catalogue:
        """The catalogue of ONE retailer's ``histories`` (rows in the retailer's order);
        ``pseudonym`` maps each raw product id of the retailer to its keyed pseudonym."""
        described = _described(histories)
        train_rows = np.flatnonzero(~np.asarray(is_test, dtype=bool))
        in_train = described["row"].isin(train_rows)
        known = sorted({pseudonym[p] for p in described.loc[in_train, "product"]})
        everything = {pseudonym[p] for p in described["product"]}
        for t in histories.product_targets or []:
            everything.update(pseudonym[p] for p in t)
        new = sorted(everything - set(known))
        first = described.sort_values(["product", "code", "brand"], na_position="last")
        first = first.drop_duplicates("product")
        by_pseudonym = {
            pseudonym[p]: (c, b)
            for p, c, b in zip(first["product"], first["code"], first["brand"], strict=True)
        }
        token = {t: i for i, t in enumerate(vocab.tokens)}
        depth = max((len(prefixes(c)) for c in vocab.items), default=1)
        products = [*known, *new]
        content = np.zeros((len(products), depth + 1), dtype=np.int64)
        for row, product in enumerate(products):
            code, brand = by_pseudonym.get(product, (None, None))
            for col, part in enumerate(prefixes(code)[:depth] if code else []):
                content[row, col] = token.get(part, 0)
            content[row, depth] = token.get(f"brand:{brand}", 0) if brand else 0
        return Catalogue(np.array(products, dtype=str), len(known), content)


def _described(histories: CategoryHistories) -> pd.DataFrame:
    if histories.described is None or histories.products is None:
        raise DataError(
            "these category histories carry no product ids (built before next-products "
            "support); re-run `fedmarket data prepare`"
        )
    return histories.described


def pseudonyms(retailer: str, histories: CategoryHistories, keyed: Pseudonymiser) -> dict:
    """raw product id -> keyed pseudonym of ``<retailer>/<product_id>`` for every product of
    one retailer's ``histories`` (the retailer's key: its products cannot be looked up
    without it, and two retailers' ids never collide)."""
    raw = set(_described(histories)["product"])
    for t in histories.product_targets or []:
        raw.update(t)
    raw_sorted = sorted(raw)
    mapped = keyed.map(pd.Series([f"{retailer}/{p}" for p in raw_sorted], dtype=object))
    return dict(zip(raw_sorted, mapped.astype(str).tolist(), strict=True))


def encode(
    histories: CategoryHistories, catalogue: Catalogue, pseudonym: dict[str, str]
) -> dict[str, np.ndarray]:
    """The ``products.npz`` arrays of one retailer's ``histories`` (all its rows)."""
    index = {p: i for i, p in enumerate(catalogue.product.tolist())}
    _described(histories)  # a DataError for histories without product ids
    products = histories.products
    hist = np.array(
        [
            [index.get(pseudonym.get(p, ""), -1) if p is not None else -1 for p in row]
            for row in products
        ],
        dtype=np.int32,
    ).reshape(histories.products.shape)
    lists = [sorted(index[pseudonym[p]] for p in t) for t in histories.product_targets or []]
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in lists])]).astype(np.int64)
    indices = np.array([i for t in lists for i in t], dtype=np.int32)
    return {"hist_product": hist, "ptarget_indptr": indptr, "ptarget_indices": indices}


def take(arrays: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``index`` of ``products.npz`` arrays (the CSR targets re-packed)."""
    index = np.asarray(index, dtype=np.int64)
    indptr, indices = take_csr(arrays["ptarget_indptr"], arrays["ptarget_indices"], index)
    return {
        "hist_product": arrays["hist_product"][index],
        "ptarget_indptr": indptr,
        "ptarget_indices": indices,
    }


_NEEDS = (
    "task next-products needs each retailer's product files, written by `fedmarket data "
    "prepare` with --partition natural (one partition per retailer) on events with product_id "
    "and category_code"
)


def _read(path: Path, fernet: Fernet | None, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    return read_npz(path, fernet, keys, _NEEDS)


def write_catalogue(partition_dir: Path, catalogue: Catalogue, fernet: Fernet | None) -> None:
    arrays = {
        "product": catalogue.product,
        "n_known": np.array([catalogue.n_known], dtype=np.int64),
        "content": catalogue.content,
    }
    write_npz(Path(partition_dir) / CATALOGUE_NAME, arrays, fernet)


def read_catalogue(partition_dir: Path, fernet: Fernet | None = None) -> Catalogue:
    a = _read(Path(partition_dir) / CATALOGUE_NAME, fernet, ("product", "n_known", "content"))
    return Catalogue(a["product"], int(a["n_known"][0]), a["content"].astype(np.int64))


def write_products(split_dir: Path, arrays: dict[str, np.ndarray], fernet: Fernet | None) -> None:
    write_npz(Path(split_dir) / PRODUCTS_NAME, arrays, fernet)


def read_products(split_dir: Path, fernet: Fernet | None = None) -> dict[str, np.ndarray]:
    return _read(Path(split_dir) / PRODUCTS_NAME, fernet, _SPLIT_ARRAYS)


def has_products(partition_dir: Path) -> bool:
    path = Path(partition_dir) / CATALOGUE_NAME
    return path.exists() or path.with_name(path.name + ".enc").exists()
