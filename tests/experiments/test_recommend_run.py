from fedmarket.experiments.recommend_run import _new_items


def test_new_items_in_words():
    none = _new_items({"customers": 0, "items": 0})
    assert "not measured" in none
    some = _new_items({"customers": 4, "items": 2, "GRU+NCF (federated)": 0.25})
    assert "of the 4 test customers" in some and "GRU+NCF (federated) 0.250" in some
