"""Task next-products' data: each retailer's catalogue, product histories and targets on
hand-built event logs; nothing outside the windows leaks in; ids keyed per retailer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import product_vocab
from fedmarket.data.categories import CategoryHistoryBuilder
from fedmarket.data.category_vocab import Vocabulary
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.errors import DataError
from tests.data.test_categories import WINDOW, frame

KEYED = Pseudonymiser(b"k" * 32)

# (day from the cut-off, type, user, code, brand, product)
ROWS = [
    (-10, "view", "a", "electronics.smartphone", "apple", 10),
    (-3, "cart", "a", "electronics.audio.headphone", "sony", 11),
    (-2, "purchase", "b", "kids.toys", "lego", 12),
    (-1, "view", "c", "sport.ski", "head", 13),  # c is a test customer: 13 is new
    (1, "cart", "a", "kids.toys", "lego", 12),  # horizon targets
    (2, "purchase", "a", "electronics.smartphone", "samsung", 14),  # first seen in horizon
    (3, "view", "a", "sport.ski", "head", 15),  # a view is no target
    (6.9, "purchase", "b", "electronics.smartphone", "apple", 10),
]
OUTSIDE = [
    (-20, "purchase", "a", "kids.toys", "lego", 99),  # before the window start
    (7.5, "purchase", "b", "kids.toys", "lego", 98),  # after the horizon
]
IS_TEST = np.array([False, False, True])


def events(rows: list[tuple]) -> pd.DataFrame:
    out = frame([r[:5] for r in rows])
    out["product_id"] = np.array([r[5] for r in rows], dtype=np.int64)
    return out


def build(rows: list[tuple]):
    builder = CategoryHistoryBuilder(WINDOW, 3)
    builder.add(events(rows))
    return builder.finish(np.array(["a", "b", "c"]))


def prepared(rows: list[tuple], retailer: str = "r1"):
    h = build(rows)
    vocab = Vocabulary.build(h, IS_TEST)
    keyed = product_vocab.pseudonyms(retailer, h, KEYED)
    catalogue = product_vocab.Catalogue.build(h, IS_TEST, vocab, keyed)
    return h, vocab, keyed, catalogue, product_vocab.encode(h, catalogue, keyed)


def test_targets_are_the_horizon_carts_and_buys_and_the_history_the_window_products():
    h = build(ROWS)
    assert h.products[0].tolist() == [None, "10", "11"]
    assert h.product_targets == [frozenset({"12", "14"}), frozenset({"10"}), frozenset()]


def test_nothing_outside_the_window_and_horizon_changes_the_data():
    _, _, _, cat, arrays = prepared(ROWS)
    _, _, _, cat2, arrays2 = prepared(ROWS + OUTSIDE)
    assert cat.product.tolist() == cat2.product.tolist()
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], arrays2[key])


def test_known_products_come_from_training_windows_and_the_rest_are_new():
    _, _, keyed, cat, arrays = prepared(ROWS)
    known = sorted(keyed[p] for p in ("10", "11", "12"))
    assert cat.product[: cat.n_known].tolist() == known
    # 13 is only in a test customer's window, 14 first seen in a horizon: new, content only
    assert sorted(cat.product[cat.n_known :].tolist()) == sorted([keyed["13"], keyed["14"]])
    row = {p: i for i, p in enumerate(cat.product.tolist())}
    ptr, ind = arrays["ptarget_indptr"], arrays["ptarget_indices"]
    assert sorted(ind[ptr[0] : ptr[1]].tolist()) == sorted([row[keyed["12"]], row[keyed["14"]]])
    assert arrays["hist_product"][0].tolist() == [-1, row[keyed["10"]], row[keyed["11"]]]


def test_a_new_product_is_described_by_its_category_and_brand_tokens():
    _, vocab, keyed, cat, _ = prepared(ROWS)
    tokens = {t: i for i, t in enumerate(vocab.tokens)}
    new = cat.content[cat.product.tolist().index(keyed["14"])]
    # electronics.smartphone is known; brand samsung is not (no training window has it)
    assert new.tolist() == [tokens["electronics"], tokens["electronics.smartphone"], 0, 0]


def test_product_pseudonyms_are_keyed_per_retailer():
    h = build(ROWS)
    one, two = (product_vocab.pseudonyms(r, h, KEYED) for r in ("r1", "r2"))
    assert one["10"] != two["10"] and len(one["10"]) == 64 and "10" not in one.values()
    assert one == product_vocab.pseudonyms("r1", h, KEYED)  # stable


def test_split_rows_and_files_round_trip(tmp_path):
    _, _, _, cat, arrays = prepared(ROWS)
    product_vocab.write_catalogue(tmp_path, cat, None)
    back = product_vocab.read_catalogue(tmp_path)
    assert back.product.tolist() == cat.product.tolist() and back.n_known == cat.n_known
    part = product_vocab.take(arrays, np.array([1]))
    assert part["ptarget_indptr"].tolist() == [0, 1]
    product_vocab.write_products(tmp_path, part, None)
    assert product_vocab.read_products(tmp_path)["hist_product"].shape == (1, 3)


def test_missing_files_say_how_to_make_them(tmp_path):
    with pytest.raises(DataError, match="--partition natural"):
        product_vocab.read_catalogue(tmp_path)


def test_prepare_writes_each_retailers_catalogue_and_the_manifest_only_their_sizes(tiny_data):
    from fedmarket.data import store
    from fedmarket.data.category_vocab import read_recs

    manifest = store.read_manifest(tiny_data)
    sizes = manifest["recommend"]["products"]["partitions"]
    text = (tiny_data / "manifest.json").read_text()
    products = []
    for pid in store.partition_ids(manifest):
        cat = product_vocab.read_catalogue(tiny_data / "partitions" / str(pid))
        assert sizes[str(pid)] == {"products": len(cat), "known": cat.n_known}
        assert not any(p in text for p in cat.product[:20])  # no product leaves in the manifest
        products.append(set(cat.product.tolist()))
        for split in store.SPLITS:
            directory = store.split_dir(tiny_data, pid, split)
            arrays = product_vocab.read_products(directory)
            recs = read_recs(directory)
            assert arrays["hist_product"].shape == recs["hist_item"].shape
            # a product only where the event has a category item (same events, same order)
            assert not ((arrays["hist_product"] >= 0) & (recs["hist_item"] < 0)).any()
            assert arrays["ptarget_indices"].max(initial=-1) < len(cat)
    assert not products[0] & products[1]  # keyed per retailer: no shared product id
