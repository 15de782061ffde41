"""A recommendation run's top-k categories from a retailer's raw export: at the run's cut-off,
the inputs are the prepared ``recs.npz`` rows and the lists are what the run's evaluation
ranks (the same HR@10), cold customers go through the evaluation's cold-start path, and
``exclude_bought`` leaves out the window's purchases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import store
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.recommend import baselines
from fedmarket.recommend.data import RecSplit, load_rec_partitions, load_rec_split
from fedmarket.recommend.experiment import score_with
from fedmarket.recommend.metrics import ranking_metrics
from fedmarket.rundir import RunDir
from fedmarket.scoring.rec_featurise import RecInputs, featurise_rec_export
from fedmarket.scoring.rec_model import RecModel, load_rec_model
from fedmarket.scoring.rec_rank import rank_inputs, ranked_rows, summarise
from tests.conftest import TINY_PREPARE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(rec_run: Path) -> RecModel:
    return load_rec_model(rec_run)


@pytest.fixture(scope="module")
def at_cutoff(model: RecModel, tiny_raw: Path) -> list[RecInputs]:
    return featurise_rec_export(model, tiny_raw, as_of=model.window.cutoff, bought=True)


def _test_rows(inputs: RecInputs, data: Path, partition: int) -> np.ndarray:
    """The rows of ``inputs`` that are the partition's test customers, in the split's order."""
    raw = pd.Series(inputs.customer, dtype="string")
    pseudonyms = Pseudonymiser(TINY_PREPARE["pseudonym_key"]).map(raw).astype(str).to_numpy()
    where = {p: i for i, p in enumerate(pseudonyms)}
    test = store.load_split(data, partition, "test")
    return np.array([where[str(p)] for p in np.asarray(test.customer)])


def test_inputs_at_the_cutoff_are_the_prepared_rows(
    at_cutoff: list[RecInputs], tiny_data: Path
) -> None:
    manifest = store.read_manifest(tiny_data)
    for pid, entry in zip(store.partition_ids(manifest), manifest["partitions"], strict=True):
        (inputs,) = [i for i in at_cutoff if i.retailer == entry["retailer"]]
        for split in store.SPLITS:
            prepared = load_rec_split(tiny_data, pid, split)
            n = manifest["partitions"][pid][split]["n"]
            assert len(prepared) == n
        test = load_rec_split(tiny_data, pid, "test")
        rows = _test_rows(inputs, tiny_data, pid)
        assert np.array_equal(inputs.X[rows], test.X)
        assert np.array_equal(inputs.n_events[rows], test.n_events)
        n_all = sum(manifest["partitions"][pid][s]["n"] for s in store.SPLITS)
        assert len(inputs) == n_all and inputs.unseen_events == 0


def test_the_lists_are_the_runs_evaluation_with_its_hr_at_10(
    model: RecModel, at_cutoff: list[RecInputs], rec_run: Path, tiny_data: Path
) -> None:
    # the evaluation (recommend.experiment.compare): pooled test customers, the federated
    # weights, the retailer's popularity for a customer without history
    train = RecSplit.concat(load_rec_partitions(tiny_data, "train"))
    test = RecSplit.concat(load_rec_partitions(tiny_data, "test"))
    weights = RunDir(rec_run).latest_checkpoint()[1]
    vocabulary = model.manifest["recommend"]
    expected = baselines.with_cold_start(
        score_with(weights, vocabulary, test), baselines.retailer_popularity(train, test), test
    )
    manifest = store.read_manifest(tiny_data)
    parts, hits = [], []
    for pid in store.partition_ids(manifest):
        retailer = manifest["partitions"][pid]["retailer"]
        (inputs,) = [i for i in at_cutoff if i.retailer == retailer]
        rows = _test_rows(inputs, tiny_data, pid)
        ranked = rank_inputs(model, inputs, k=10)
        parts.append((ranked.item[rows], ranked.score[rows], ranked.cold[rows]))
        table = ranked_rows(model, inputs, ranked)
        assert list(table.columns) == [
            "retailer", "customer_id", "rank", "category", "score", "cold", "as_of"
        ]  # fmt: skip
        hits.append(table)
    item = np.concatenate([p[0] for p in parts])
    score = np.concatenate([p[1] for p in parts])
    cold = np.concatenate([p[2] for p in parts])
    top = np.argsort(-expected, axis=1, kind="stable")[:, :10]
    assert np.array_equal(item, top)
    np.testing.assert_allclose(score, np.take_along_axis(expected, top, axis=1), atol=1e-6)
    assert np.array_equal(cold, test.n_events < 3)
    # HR@10 from the lists: a customer with a target is a hit when one is in its list
    relevant = test.y_categories > 0
    listed = np.zeros_like(relevant)
    np.put_along_axis(listed, item, True, axis=1)
    has = relevant.any(axis=1)
    hr = (relevant & listed).any(axis=1)[has].mean()
    assert hr == ranking_metrics(test.y_categories, expected)["hr@10"]


def test_cold_customers_get_their_retailers_popularity(model: RecModel, tiny_raw: Path) -> None:
    from fedmarket.data.ingest import loaders
    from fedmarket.data.ingest.validate import DropReport
    from fedmarket.scoring.rec_featurise import featurise_rec_frames

    exports = loaders.find_exports(tiny_raw, None)
    retailer = sorted(exports)[0]
    (path,) = exports[retailer]
    events = pd.concat(
        loaders.iter_events(path, report=DropReport(), retailer_id=retailer), ignore_index=True
    )
    who = events["user_id"].iloc[0]
    events.loc[events["user_id"] == who, "category_code"] = None  # no item in its history
    inputs = featurise_rec_frames(model, [events], model.window, retailer=retailer)
    ranked = rank_inputs(model, inputs, k=5)
    (i,) = np.flatnonzero(inputs.customer == who)
    assert inputs.n_events[i] == 0 and ranked.cold[i]
    popularity = model.cold_start(retailer)
    assert np.array_equal(ranked.item[i], np.argsort(-popularity, kind="stable")[:5])
    assert np.array_equal(ranked.score[i], np.sort(popularity)[::-1][:5])
    assert not np.array_equal(popularity, model.cold_start("a newcomer"))
    assert np.array_equal(model.cold_start("a newcomer"), model.popularity[""])
    summary = summarise(model, inputs, ranked)
    assert summary.customers == len(inputs) and summary.cold == int((inputs.n_events < 3).sum())
    assert summary.cold >= 1 and 0 < summary.coverage <= 1
    assert summary.categories == len(model.items)


def test_exclude_bought_leaves_out_the_windows_purchases(
    model: RecModel, at_cutoff: list[RecInputs], tiny_raw: Path
) -> None:
    from fedmarket.errors import ConfigError

    inputs = at_cutoff[0]
    k = len(model.items)
    every = rank_inputs(model, inputs, k=k)
    fresh = rank_inputs(model, inputs, k=k, exclude_bought=True)
    bought = inputs.bought.toarray()
    assert bought.any()
    for i in range(len(inputs)):
        kept = [j for j in every.item[i] if not bought[i, j]]
        got = fresh.item[i][fresh.item[i] >= 0]
        assert list(got) == kept
        assert np.isnan(fresh.score[i][len(kept) :]).all()
    assert len(ranked_rows(model, inputs, fresh)) == len(inputs) * k - int(bought.sum())
    (plain,) = featurise_rec_export(model, tiny_raw, as_of=model.window.cutoff)[:1]
    assert plain.bought is None and np.array_equal(plain.X, inputs.X)
    with pytest.raises(ConfigError, match="bought=True"):
        rank_inputs(model, plain, exclude_bought=True)


def test_centralised_and_bad_input(
    rec_run: Path,
    model: RecModel,
    scoring_run: Path,
) -> None:
    from fedmarket.errors import ConfigError

    central = load_rec_model(rec_run, "centralised")
    assert central.round is None and model.round == 2
    X = np.zeros((2, model.history_length, 3), np.float32)
    X[..., :2] = -1  # padding: no item, no event type, no brand
    X[1, -1] = (0, 2, 0)  # one purchase of the first item
    assert not np.allclose(central.scores(X), model.scores(X))
    with pytest.raises(ConfigError, match="recommender input has shape"):
        model.scores(np.zeros((2, 3, 3)))
    with pytest.raises(ConfigError, match="choose one of"):
        load_rec_model(rec_run, "pooled")
    with pytest.raises(ConfigError, match="scores customers, not categories"):
        load_rec_model(scoring_run)
    with pytest.raises(ConfigError, match="--top-k"):
        rank_inputs(model, RecInputs.__new__(RecInputs), k=0)


def test_weights_that_do_not_fit_the_model_are_refused(rec_run: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    from fedmarket.errors import ConfigError

    run = tmp_path / "run"
    shutil.copytree(rec_run, run)
    files = RunDir(run)
    path = files.checkpoint(2)
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["content"] = torch.zeros(3)  # as an older version saved it
    torch.save(blob, path)
    with pytest.raises(ConfigError, match=r"round-0002\.pt: the weights do not fit"):
        load_rec_model(run)
