"""Task next-categories' data: histories and targets on hand-built event logs, no leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.categories import CategoryHistoryBuilder
from fedmarket.data.category_vocab import Vocabulary, encode, prefixes, take
from fedmarket.data.features import FeatureWindow
from fedmarket.data.ingest.schema import EVENT_COLUMNS

CUTOFF = pd.Timestamp("2019-11-15", tz="UTC")
WINDOW = FeatureWindow(cutoff=CUTOFF, window_days=14, step_days=7, horizon_days=7)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Validated events from (day offset from the cut-off, type, user, code, brand)."""
    day, etype, user, code, brand = (list(c) for c in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "event_time": CUTOFF + pd.to_timedelta(day, unit="D"),
            "event_type": etype,
            "product_id": np.arange(len(rows), dtype=np.int64),
            "category_id": np.arange(len(rows), dtype=np.int64),
            "category_code": code,
            "brand": brand,
            "price": 1.0,
            "user_id": user,
            "user_session": "s",
        }
    ).astype(EVENT_COLUMNS)


BASE = [
    (-10, "view", "a", "electronics.smartphone", "apple"),
    (-3, "cart", "a", "electronics.audio.headphone", "sony"),
    (-1.5, "view", "a", "apparel.shoes", None),
    (-2, "purchase", "b", "kids.toys", "lego"),
    (-1, "view", "b", None, None),  # no category: no item
    (1, "cart", "a", "kids.toys", "lego"),  # horizon targets
    (2, "purchase", "a", "electronics.smartphone", "apple"),
    (3, "view", "a", "sport.ski", "head"),  # a view is no target
    (6.9, "purchase", "b", "furniture.bedroom.bed", "ikea"),
]


def build(rows: list[tuple], length: int = 2, chunks: int = 1):
    builder = CategoryHistoryBuilder(WINDOW, length)
    events = frame(rows)
    for part in np.array_split(np.arange(len(events)), chunks):
        builder.add(events.iloc[part])
    return builder.finish(np.array(["a", "b", "c"]))


def test_history_is_the_last_events_in_time_order_and_targets_the_horizon_carts_and_buys():
    h = build(BASE)
    assert h.codes[0].tolist() == ["electronics.audio.headphone", "apparel.shoes"]
    assert h.etypes[0].tolist() == [1, 0]
    assert h.brands[0].tolist() == ["sony", None]
    assert h.codes[1].tolist() == [None, "kids.toys"]  # left-padded
    assert h.etypes[1].tolist() == [-1, 3]
    assert h.codes[2].tolist() == [None, None]  # customer c: nothing
    assert h.n_events.tolist() == [3, 1, 0]  # all window events with a code, not only the last L
    assert h.targets == [
        frozenset({"kids.toys", "electronics.smartphone"}),
        frozenset({"furniture.bedroom.bed"}),
        frozenset(),
    ]


def test_chunking_and_order_change_nothing():
    one = build(BASE)
    many = build(list(reversed(BASE)), chunks=4)
    assert (one.codes == many.codes).all() and (one.etypes == many.etypes).all()
    assert one.targets == many.targets and one.n_events.tolist() == many.n_events.tolist()
    assert _seen(one) == _seen(many) and len(_seen(one)) == 4  # a: 3 (code, brand), b: 1


@pytest.mark.parametrize(
    "extra",
    [
        (7, "purchase", "a", "sport.bicycle", "trek"),  # at the horizon's end: after it
        (30, "cart", "b", "sport.bicycle", "trek"),
        (-14.01, "purchase", "a", "sport.bicycle", "trek"),  # before the window start
        (-40, "cart", "b", "sport.ski", "head"),
    ],
)
def test_events_outside_window_and_horizon_change_nothing(extra):
    before, after = build(BASE), build([*BASE, extra])
    assert (before.codes == after.codes).all() and before.targets == after.targets
    assert _seen(before) == _seen(after) and before.n_events.tolist() == after.n_events.tolist()


def _seen(h) -> list:
    return sorted(map(tuple, h.seen.astype(str).to_numpy().tolist()))


def test_the_history_never_sees_the_horizon():
    horizon_only = [r for r in BASE if r[0] >= 0]
    h = build([*horizon_only, (0, "view", "c", "sport.ski", "head")])
    assert (h.etypes == -1).all() and h.n_events.tolist() == [0, 0, 0]
    assert h.targets[0] == frozenset({"kids.toys", "electronics.smartphone"})


def test_vocabulary_comes_from_training_customers_and_new_items_have_content():
    h = build(BASE)
    vocab = Vocabulary.build(h, is_test=np.array([False, True, True]))  # only a trains
    known = ("apparel.shoes", "electronics.audio.headphone", "electronics.smartphone")
    assert vocab.items[: vocab.n_known] == known
    assert vocab.items[vocab.n_known :] == ("furniture.bedroom.bed", "kids.toys")  # new items
    assert "brand:lego" not in vocab.tokens  # b's brand: a test customer's
    assert "brand:sony" in vocab.tokens and "electronics" in vocab.tokens
    content = vocab.content()
    token = {t: i for i, t in enumerate(vocab.tokens)}
    assert content[1].tolist() == [
        token["electronics"],
        token["electronics.audio"],
        token["electronics.audio.headphone"],
    ]
    assert content[vocab.items.index("kids.toys")].tolist() == [0, 0, 0]  # nothing known
    arrays = encode(h, vocab)
    assert arrays["hist_item"][0].tolist() == [1, 0]
    assert arrays["hist_item"][1].tolist() == [-1, vocab.items.index("kids.toys")]
    assert arrays["hist_brand"][0].tolist() == [token["brand:sony"], 0]
    assert arrays["hist_brand"][1].tolist() == [0, 0]  # lego is unknown
    sub = take(arrays, np.array([1, 0]))
    assert sub["target_indptr"].tolist() == [0, 1, 3]
    assert sorted(sub["target_indices"][1:].tolist()) == sorted(
        [vocab.items.index("kids.toys"), vocab.items.index("electronics.smartphone")]
    )


def test_prefixes():
    assert prefixes("a.b.c") == ["a", "a.b", "a.b.c"] and prefixes("a") == ["a"]


def test_bad_history_length():
    from fedmarket.errors import ConfigError

    with pytest.raises(ConfigError, match="history-length"):
        CategoryHistoryBuilder(WINDOW, 0)


def test_prepare_writes_recs_next_to_the_splits(tiny_data):
    from fedmarket.data import store
    from fedmarket.data.category_vocab import MANIFEST_KEY, read_recs

    manifest = store.read_manifest(tiny_data)
    entry = manifest[MANIFEST_KEY]
    assert entry["n_known_items"] > 10 and entry["history_length"] == 20
    for p in store.partition_ids(manifest):
        for split in store.SPLITS:
            recs = read_recs(store.split_dir(tiny_data, p, split))
            arrays = store.load_split(tiny_data, p, split)
            assert len(recs["hist_item"]) == len(arrays) == len(recs["target_indptr"]) - 1
            assert recs["hist_item"].max() < len(entry["items"])


def test_encrypted_recs_need_the_key_and_match_the_plain_ones(tiny_data, tiny_encrypted):
    from fedmarket.data import store
    from fedmarket.data.category_vocab import read_recs
    from fedmarket.data.protect import keys
    from fedmarket.errors import DataError

    fernet = keys.fernet_from_key(tiny_encrypted.key_text.encode())
    directory = store.split_dir(tiny_encrypted.data, 0, "train")
    with pytest.raises(DataError, match="encrypted"):
        read_recs(directory)
    plain = read_recs(store.split_dir(tiny_data, 0, "train"))
    for name, value in read_recs(directory, fernet).items():
        np.testing.assert_array_equal(value, plain[name], err_msg=name)
