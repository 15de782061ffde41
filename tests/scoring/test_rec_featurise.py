"""One customer's events featurised alone (the service's few-rows paths: ``few_rows``,
``few_categories``, ``RecModel.scores``' direct call) against the same customer in the whole
export (``fedmarket score``'s general paths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import few_categories, few_rows
from fedmarket.data.features import FeatureWindow
from fedmarket.scoring.featurise import retailer_frames
from fedmarket.scoring.rec_featurise import (
    RecInputs,
    _bought,
    _window_purchases,
    featurise_rec_export,
    featurise_rec_frames,
)
from fedmarket.scoring.rec_model import RecModel, load_rec_model
from fedmarket.scoring.rec_rank import rank_inputs
from fedmarket.training import predict
from tests.data.test_few_categories import CODES, CUTOFFS, events

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(rec_run: Path) -> RecModel:
    return load_rec_model(rec_run)


@pytest.fixture(scope="module")
def export(model: RecModel, tiny_raw: Path) -> tuple[pd.DataFrame, RecInputs]:
    """The first retailer's validated events at its default as-of, and all its customers'
    inputs as `fedmarket score` makes them (one chunk of ~19,000 events: the general paths)."""
    walk = retailer_frames(
        tiny_raw, model.window_at, mapping=None, as_of=None, chunksize=500_000, strict=False
    )
    retailer, window, frames, _ = next(walk)  # read before the walk moves on
    events = pd.concat(list(frames), ignore_index=True)
    (whole,) = [
        i for i in featurise_rec_export(model, tiny_raw, bought=True) if i.retailer == retailer
    ]
    assert whole.window == window
    assert len(events) > few_rows.SMALL_ROWS and few_categories.read(events) is None
    return events, whole


def test_one_customer_alone_is_its_row_of_the_whole_export(
    model: RecModel, export: tuple[pd.DataFrame, RecInputs]
) -> None:
    """40 seeded customers: the same model input, window event count and window purchases,
    exactly, and the same ranking (scores to 1e-6: one row against a batch of rows)."""
    events, whole = export
    row = {str(c): i for i, c in enumerate(whole.customer)}
    rng = np.random.default_rng(0)
    picked = rng.choice(whole.customer, size=40, replace=False)
    assert max(len(events[events["user_id"] == c]) for c in picked) > 1
    assert whole.bought[[row[str(c)] for c in picked]].nnz > 0  # some bought in the window
    batch = rank_inputs(model, whole, k=10)
    for who in picked:
        rows = events[events["user_id"] == who]
        assert few_categories.read(rows) is not None  # the few-rows path is what is tested
        alone = featurise_rec_frames(
            model, [rows], whole.window, retailer=whole.retailer, bought=True
        )
        i = row[str(who)]
        assert [str(c) for c in alone.customer] == [str(who)]
        np.testing.assert_array_equal(alone.X[0], whole.X[i])
        assert alone.n_events[0] == whole.n_events[i]
        np.testing.assert_array_equal(alone.bought.toarray()[0], whole.bought.toarray()[i])
        ranked = rank_inputs(model, alone, k=10)
        np.testing.assert_array_equal(ranked.item[0], batch.item[i])
        np.testing.assert_allclose(ranked.score[0], batch.score[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("n", [1, 5, 300])
def test_direct_model_call_is_predicts(model: RecModel, n: int) -> None:
    """``RecModel.scores`` calls the net itself for the service's few rows: exactly what
    ``training.predict`` (the evaluation's call) gives for the same inputs."""
    rng = np.random.default_rng(n)
    X = np.stack(
        [
            rng.integers(-1, len(model.items), (n, model.history_length)),
            rng.integers(-1, 4, (n, model.history_length)),
            rng.integers(0, 5, (n, model.history_length)),
        ],
        axis=-1,
    ).astype(np.float32)
    want = predict(model.net, X, model.task, device="cpu")
    np.testing.assert_array_equal(model.scores(X), want)
    assert not model.net.training


@pytest.mark.parametrize("n", [1, 30, 241, 4096])
def test_window_purchases_of_a_few_rows_are_the_general_paths(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeded random frames (edges of the window, missing codes, every type): the same
    bought matrix from the plain-lists reading as from the pandas one."""
    rng = np.random.default_rng(n)
    df = events(rng, n)
    who = np.array([*sorted(set(df["user_id"].astype(str))), "stranger"], dtype=object)
    items = tuple(c for c in CODES if c is not None)[:3]  # one code is no item
    for cutoff in CUTOFFS:
        window = FeatureWindow(cutoff)
        few = _bought([_window_purchases(df, window)], who, items)
        with monkeypatch.context() as m:
            m.setattr(few_rows, "SMALL_ROWS", -1)  # every frame is "many rows"
            general = _bought([_window_purchases(df, window)], who, items)
        np.testing.assert_array_equal(few.toarray(), general.toarray())
        assert few.dtype == general.dtype == bool
    assert general.nnz > 0 or n < 30  # something bought (but in the tiniest frames)
