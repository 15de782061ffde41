from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import event_pass, store
from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.errors import ConfigError, DataError
from fedmarket.scoring.featurise import (
    NoEventInWindow,
    default_as_of,
    featurise_as_of,
    featurise_export,
    featurise_frames,
)
from fedmarket.scoring.run_model import load_run_model
from tests.conftest import TINY_PREPARE


def _prepared_by_pseudonym(data_dir: Path, pid: int) -> tuple[dict[str, int], np.ndarray]:
    parts = [store.load_split(data_dir, pid, s) for s in store.SPLITS]
    customers = np.concatenate([np.asarray(p.customer) for p in parts])
    X = np.concatenate([np.asarray(p.X) for p in parts])
    return {str(c): i for i, c in enumerate(customers)}, X


def test_scoring_at_the_runs_cutoff_rebuilds_the_prepared_inputs(
    scoring_run: Path, tiny_raw: Path, tiny_data: Path
) -> None:
    run = load_run_model(scoring_run)
    inputs = featurise_export(run, tiny_raw, as_of=run.window.cutoff)
    manifest = store.read_manifest(tiny_data)
    assert [i.retailer for i in inputs] == sorted(manifest["retailers"])
    pseudo = Pseudonymiser(TINY_PREPARE["pseudonym_key"])
    for pid, found in enumerate(inputs):
        index, X = _prepared_by_pseudonym(tiny_data, pid)
        names = pseudo.map(pd.Series(found.customer, dtype="string")).to_numpy(str)
        assert sorted(names) == sorted(index)  # the same customers, no more, no fewer
        rows = np.array([index[n] for n in names])
        np.testing.assert_allclose(found.X, X[rows], atol=1e-6)
        assert found.window.cutoff == run.window.cutoff


def test_default_as_of_is_the_midnight_after_the_last_event(
    scoring_run: Path, tiny_raw: Path
) -> None:
    run = load_run_model(scoring_run)
    (first, *_) = featurise_export(run, tiny_raw)
    last = first.last_event
    assert first.window.cutoff == last.normalize() + pd.Timedelta(days=1)
    assert not first.horizon_covered


def test_default_as_of_is_made_from_the_latest_event_prepare_uses(
    scoring_run: Path, tiny_raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring and `data prepare` take the data's end from the one ``latest_event``."""
    real, seen = event_pass.latest_event, []

    def spy(exports, mapping, chunksize, **kw):
        seen.append((sorted(exports), real(exports, mapping, chunksize, **kw)))
        return seen[-1][1]

    monkeypatch.setattr(event_pass, "latest_event", spy)
    inputs = featurise_export(load_run_model(scoring_run), tiny_raw)
    assert [retailers for retailers, _ in seen] == [[i.retailer] for i in inputs]
    for found, (_, last) in zip(inputs, seen, strict=True):
        assert found.window.cutoff == default_as_of(last)


def test_an_export_with_no_valid_event_is_refused(scoring_run: Path, tmp_path: Path) -> None:
    shop = tmp_path / "raw" / "shop"
    shop.mkdir(parents=True)
    (shop / "events.csv").write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"
        "user_session\n2019-10-01 00:00:00,view,1,2,,,9.5,7,s1\n"
    )
    with pytest.raises(DataError, match="retailer shop: no valid event in "):
        featurise_export(load_run_model(scoring_run), tmp_path / "raw")


def test_as_of_must_be_a_date_at_midnight(scoring_run: Path, tiny_raw: Path) -> None:
    run = load_run_model(scoring_run)
    with pytest.raises(ConfigError, match="not a date"):
        featurise_export(run, tiny_raw, as_of="soon")
    with pytest.raises(ConfigError, match="not a midnight"):
        featurise_export(run, tiny_raw, as_of="2020-01-01T05:00Z")


def test_customers_scored_at_their_own_dates_as_when_scored_alone(
    scoring_run: Path, tiny_raw: Path
) -> None:
    run = load_run_model(scoring_run)
    exports = loaders.find_exports(tiny_raw, None)
    retailer = sorted(exports)[0]
    frames = loaders.iter_events(exports[retailer][0], report=DropReport(), retailer_id=retailer)
    events = pd.concat(list(frames))
    busiest = events["user_id"].value_counts().index[:3]
    cutoff = run.window.cutoff.value
    day = pd.Timedelta(days=1).value
    as_of = np.array([cutoff, cutoff - 3 * day, cutoff], dtype=np.int64)
    frames = []
    for k, who in enumerate(busiest):  # customers renamed 0, 1, 2 (their place in as_of)
        mine = events[(events["user_id"] == who) & (events["event_time"].array.asi8 < as_of[k])]
        frames.append(mine.assign(user_id=pd.array([str(k)] * len(mine), dtype="string")))
    rows = pd.concat(frames, ignore_index=True)
    who = rows["user_id"].astype(np.int64).to_numpy()
    X = featurise_as_of(run, rows, who, as_of, retailer=retailer)
    for k, frame in enumerate(frames):
        window = run.window_at(pd.Timestamp(int(as_of[k]), unit="ns", tz="UTC"))
        alone = featurise_frames(run, [frame], window, retailer=retailer)
        np.testing.assert_array_equal(X[k], alone.X[0])
    late = as_of.copy()
    late[1] = cutoff + 400 * day  # no event of customer 1 in that window
    with pytest.raises(NoEventInWindow, match="no event in the model's window") as refused:
        featurise_as_of(run, rows, who, late, retailer=retailer)
    assert refused.value.customer == 1 and refused.value.window.cutoff.value == late[1]
