"""Task next-products' model and data: the retailer-private product table (never in the
shared part), the content-only path of new products, the centralised masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedmarket.config import RunConfig
from fedmarket.data.product_vocab import Catalogue
from fedmarket.errors import ConfigError
from fedmarket.models import build_model, split_private
from fedmarket.recommend.loss import MASKED, SampledBPRLoss
from fedmarket.recommend.products import ProductSplit, catalogue_option, pooled

VOCAB = {
    "items": ["a.x", "b.y"],
    "n_known_items": 2,
    "tokens": ["<unk>", "a", "a.x", "b", "b.y", "brand:z"],
}
# 3 products: two known (private rows 0, 1), one new (content only)
CAT = Catalogue(np.array(["p0", "p1", "p2"]), 2, np.array([[1, 2, 5], [3, 4, 0], [1, 2, 0]]))


def model(catalogue=None, **kw) -> torch.nn.Module:
    return build_model(
        "gru-ncf", 5, task="next-products", seed=0, vocabulary=VOCAB, catalogue=catalogue, **kw
    )


def history(partition: int = 0) -> torch.Tensor:
    # two events: item a.x bought as product 0, item b.y viewed as product 2 (new)
    x = np.array([[[0, 3, 5, 0, partition], [1, 0, 0, 2, partition]]], dtype=np.float32)
    return torch.from_numpy(x)


def test_the_private_table_is_apart_from_what_is_shared():
    net = model(catalogue_option(CAT, 0))
    shared, private = split_private("gru-ncf", "next-products", net.state_dict())
    assert list(private) == ["products.weight"]
    assert private["products.weight"].shape == (3, 32)  # 2 known + the no-row row
    assert not private["products.weight"].any()  # zero: a product starts at its content
    # the server's model (no catalogue) is exactly the shared part
    assert list(model().state_dict()) == list(shared)
    assert split_private("gru-ncf", "next-categories", net.state_dict())[1] == {}


def test_a_new_product_is_content_only_and_a_known_one_uses_its_row():
    net = model(catalogue_option(CAT, 0)).eval()
    before = net(history()).detach()
    with torch.no_grad():
        net.products.weight[2] = 5.0  # the no-row row: padding and new products
    np.testing.assert_allclose(net(history()).detach(), before, atol=1e-6)
    with torch.no_grad():
        net.products.weight[1] = 1.0  # product 1's row: only product 1's score moves
    after = net(history()).detach()
    assert after[0, 1] != pytest.approx(float(before[0, 1]))
    # product 0's score moves only through the customer state, not through product 1's row
    assert after.shape == (1, 3)


def test_the_shared_model_alone_ranks_no_products():
    with pytest.raises(ConfigError, match="catalogue"):
        model()(history())


def test_centralised_scores_other_retailers_products_as_masked():
    two = Catalogue(np.array(["q0", "q1"]), 1, np.array([[3, 4, 0], [1, 2, 5]]))
    splits = {
        0: ProductSplit(history(0).numpy(), np.array([[1, 0, 0]], np.float32), np.array([2]),
                        np.array([0], np.int32)),
        1: ProductSplit(history(1).numpy()[:, :, :] * [1, 1, 1, 0, 1],
                        np.array([[0, 1]], np.float32), np.array([2]), np.array([1], np.int32)),
    }  # fmt: skip
    pool = pooled(splits, {0: CAT, 1: two})
    assert pool.offsets == {0: (0, 3), 1: (3, 5)}
    assert pool.catalogue["private"].tolist() == [0, 1, -1, 2, -1]
    assert pool.split.y_products.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
    assert pool.split.X[1, :, 3].tolist() == [3, 3]  # product 0 of retailer 1 -> column 3
    scores = model(pool.catalogue)(torch.from_numpy(pool.split.X)).detach()
    assert (scores[0, 3:] == MASKED).all() and (scores[1, :3] == MASKED).all()
    assert (scores[0, :3] > MASKED).all() and (scores[1, 3:] > MASKED).all()


def test_bpr_never_draws_a_masked_item_as_a_negative():
    torch.manual_seed(0)
    score = torch.tensor([[2.0, 1.0, MASKED, MASKED]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    loss = SampledBPRLoss("none", n_negatives=50)(score, target)
    # the only valid negative is item 1: the loss is softplus(-(2 - 1))
    expected = float(torch.nn.functional.softplus(torch.tensor(-1.0)))
    assert loss.detach().item() == pytest.approx(expected)


def test_the_config_refuses_next_products_with_another_model_or_personalisation():
    with pytest.raises(ConfigError, match="gru-ncf"):
        RunConfig.from_mapping({"task": "next-products", "model": "lstm"})
    with pytest.raises(ConfigError, match="product table stays"):
        RunConfig.from_mapping(
            {"task": "next-products", "model": "gru-ncf", "personalisation": "fedper"}
        )
    assert RunConfig.from_mapping({"task": "next-products", "model": "gru-ncf"}).task


def test_data_without_catalogues_is_refused_with_how_to_make_them():
    from fedmarket.errors import DataError
    from fedmarket.recommend.products import check_products

    with pytest.raises(DataError, match="--partition natural"):
        check_products({"recommend": dict(VOCAB)})
    assert check_products({"recommend": {**VOCAB, "products": {"partitions": {}}}}) == {
        "partitions": {}
    }
