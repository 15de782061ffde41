"""next-products' pooled metrics on a hand-made case: two retailers, each customer ranked
over its own retailer's products; coverage over both catalogues; new products apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedmarket.data.product_vocab import Catalogue
from fedmarket.recommend.product_compare import new_product_hits, product_rows
from fedmarket.recommend.products import ProductSplit


def split(y: list[list[float]], n_events: list[int], partition: int) -> ProductSplit:
    n = len(y)
    return ProductSplit(
        np.zeros((n, 1, 5), np.float32),
        np.array(y, np.float32),
        np.array(n_events, np.int32),
        np.full(n, partition, np.int32),
    )


def catalogue(n: int, known: int) -> Catalogue:
    return Catalogue(np.array([f"p{i}" for i in range(n)]), known, np.zeros((n, 2), np.int64))


# retailer 0: 3 products (product 2 new); c0 warm wants 1, c1 cold wants the new product 2
# retailer 1: 12 products; c2 warm wants 0 (ranked 2nd), c3 warm has no target
TEST = {
    0: split([[0, 1, 0], [0, 0, 1]], [5, 1], 0),
    1: split([[1] + [0] * 11, [0] * 12], [4, 3], 1),
}
CATS = {0: catalogue(3, 2), 1: catalogue(12, 12)}
R1 = np.array([0.8, 0.9, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.1])
SCORES = {
    "m": {
        0: np.array([[0.9, 0.5, 0.1], [0.1, 0.2, 0.9]]),
        1: np.stack([R1, R1]),
    }
}


def test_pooled_metrics_are_means_over_each_retailers_own_rankings():
    rows = {r["customers"]: r for r in product_rows(TEST, CATS, SCORES)}
    ndcg2 = 1 / math.log2(3)  # the target at rank 2
    assert rows["all"]["hr@10"] == pytest.approx(1.0)
    assert rows["all"]["ndcg@10"] == pytest.approx((ndcg2 + 1 + ndcg2) / 3)
    assert rows["all"]["mrr"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert rows["all"]["n_customers"] == 3
    assert rows["warm"]["ndcg@10"] == pytest.approx(ndcg2)
    assert rows["warm"]["mrr"] == pytest.approx(0.5)
    assert rows["cold"]["mrr"] == pytest.approx(1.0) and rows["cold"]["n_customers"] == 1
    # coverage over both catalogues: retailer 0's 3 products and retailer 1's top 10
    assert rows["all"]["coverage@10"] == pytest.approx(13 / 15)
    assert rows["cold"]["coverage@10"] == pytest.approx(3 / 15)


def test_new_products_are_measured_apart():
    new = new_product_hits(TEST, CATS, SCORES)
    assert new["products"] == 1 and new["customers"] == 1 and new["m"] == 1.0
