"""`fedmarket score` from Python: the targeting list of a tiny run's retailers, its rows, its
ids, its agreement with the run's own predictions, and what it never writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import store
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.errors import ConfigError
from fedmarket.experiments.score import (
    PSEUDONYM_ID,
    RAW_ID,
    ScoreOptions,
    check_out,
    output_format,
    reliability_path,
    run_score,
)
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.rundir import RunDir
from fedmarket.scoring.run_model import load_run_model
from fedmarket.scoring.targeting import SelectionRule
from tests.conftest import TINY_PREPARE, files_holding
from tests.scoring.conftest import scoring_run  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_with_scores(
    scoring_run: Path,  # noqa: F811
    tiny_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """``scoring_run`` with its per-customer test predictions (RUN/test_scores.csv)."""
    out = tmp_path_factory.mktemp("scored") / "run"
    shutil.copytree(scoring_run, out)
    run = load_run_model(out)
    test = store.load_pooled(tiny_data, "test")
    score = run.predict(np.asarray(test.X))
    pred = Predictions.pooled(tiny_data, test, task="purchase", model="cnn-lstm", score=score)
    write_predictions(RunDir(out).test_scores, pred)
    return out


def _listing(directory: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in directory.rglob("*")}


def test_one_row_per_customer_with_raw_ids_in_csv_and_parquet(
    run_with_scores: Path, tiny_raw: Path, tmp_path: Path
) -> None:
    before = _listing(run_with_scores)
    rule = SelectionRule(top_fraction=0.2)
    for name in ("t.csv", "t.parquet"):
        out = tmp_path / name
        result = run_score(ScoreOptions(run_dir=run_with_scores, out=out, rule=rule, raw=tiny_raw))
        frame = (
            pd.read_csv(out, dtype={RAW_ID: str})
            if name.endswith("csv")
            else (pd.read_parquet(out))
        )
        assert list(frame.columns) == [
            "retailer",
            RAW_ID,
            "propensity",
            "decile",
            "selected",
            "holdout",
            "rank",
            "as_of",
        ]
        for retailer, part in frame.groupby("retailer"):
            # the customers of the export with an event in the window (as data prepare)
            cutoff = pd.Timestamp(result.as_of[retailer], tz="UTC")
            window = cutoff - pd.Timedelta(days=TINY_PREPARE["window_days"])
            users = set()
            for f in (tiny_raw / retailer).iterdir():
                if f.suffix != ".parquet":
                    continue
                events = pd.read_parquet(f)
                t = pd.to_datetime(events["event_time"], utc=True)
                users |= set(events.loc[(t >= window) & (t < cutoff), "user_id"].astype(str))
            assert set(part[RAW_ID]) == users and part[RAW_ID].is_unique
            assert part["selected"].sum() == int(np.ceil(round(0.2 * len(part), 9)))
        assert result.rows == len(frame) and result.id_column == RAW_ID
        assert reliability_path(out).is_file() and result.calibration is not None
    assert _listing(run_with_scores) == before  # nothing written into the run directory
    ids = pd.read_parquet(tmp_path / "t.parquet")[RAW_ID].astype(str).tolist()
    assert files_holding(run_with_scores, [i.encode() for i in ids[:50]]) == []


def test_scores_at_the_cutoff_equal_the_runs_predictions_on_prepared_inputs(
    run_with_scores: Path, tiny_raw: Path, tiny_data: Path, tmp_path: Path
) -> None:
    run = load_run_model(run_with_scores)
    out = tmp_path / "t.csv"
    run_score(
        ScoreOptions(
            run_dir=run_with_scores,
            out=out,
            rule=SelectionRule(top_n=5),
            raw=tiny_raw,
            as_of=f"{run.window.cutoff:%Y-%m-%d}",
        )
    )
    frame = pd.read_csv(out, dtype={RAW_ID: str})
    pseudo = Pseudonymiser(TINY_PREPARE["pseudonym_key"])
    manifest = store.read_manifest(tiny_data)
    for pid, entry in enumerate(manifest["partitions"]):
        part = frame[frame["retailer"] == entry["retailer"]]
        names = pseudo.map(part[RAW_ID].astype("string")).to_numpy(str)
        prepared = store.SplitArrays.concat(
            [store.load_split(tiny_data, pid, s) for s in store.SPLITS]
        )
        scores = run.predict(np.asarray(prepared.X))
        expected = dict(zip(np.asarray(prepared.customer).astype(str), scores, strict=True))
        np.testing.assert_allclose(
            part["propensity"].to_numpy(), [expected[n] for n in names], atol=1e-6
        )


def test_prepared_partition_with_and_without_the_key(
    run_with_scores: Path, tiny_raw: Path, tiny_data: Path, tmp_path: Path
) -> None:
    rule = SelectionRule(top_fraction=0.5)
    base = {"run_dir": run_with_scores, "rule": rule, "data": tiny_data, "partition": 1}
    plain = run_score(ScoreOptions(out=tmp_path / "p.csv", **base))
    assert plain.id_column == PSEUDONYM_ID
    pseud = pd.read_csv(tmp_path / "p.csv", dtype={PSEUDONYM_ID: str})
    key = TINY_PREPARE["pseudonym_key"]
    resolved = run_score(
        ScoreOptions(out=tmp_path / "r.csv", raw=tiny_raw, pseudonym_key=key, **base)
    )
    assert resolved.id_column == RAW_ID
    raw = pd.read_csv(tmp_path / "r.csv", dtype={RAW_ID: str})
    back = Pseudonymiser(key).map(raw[RAW_ID].astype("string")).to_numpy(str)
    assert sorted(back) == sorted(pseud[PSEUDONYM_ID])  # the same customers
    by_pseudonym = dict(zip(pseud[PSEUDONYM_ID], pseud["propensity"], strict=True))
    np.testing.assert_allclose(raw["propensity"], [by_pseudonym[b] for b in back])


def test_calibrate_on_the_partitions_training_customers(
    run_with_scores: Path, tiny_data: Path, tmp_path: Path
) -> None:
    result = run_score(
        ScoreOptions(
            run_dir=run_with_scores,
            out=tmp_path / "c.csv",
            rule=SelectionRule(top_n=3),
            data=tiny_data,
            partition=0,
            calibrate="platt",
        )
    )
    assert result.calibrator is not None and result.calibrator.method == "platt"
    assert result.calibration is not None and result.calibration.after is not None
    frame = pd.read_csv(tmp_path / "c.csv")
    train = store.load_split(tiny_data, 0, "train")
    # Platt calibration matches the mean purchase rate of the customers it was fitted on
    run = load_run_model(run_with_scores)
    p = result.calibrator.apply(run.predict(np.asarray(train.X)))
    assert p.mean() == pytest.approx(np.asarray(train.y_purchase).mean(), abs=1e-3)
    assert len(frame) > 0


def test_output_checks(run_with_scores: Path, tmp_path: Path) -> None:
    assert output_format(Path("a.CSV"), None) == "csv"
    assert output_format(Path("a.txt"), "parquet") == "parquet"
    with pytest.raises(ConfigError, match="unknown format 'xlsx'"):
        output_format(Path("a.xlsx"), None)
    with pytest.raises(ConfigError, match="inside the run directory"):
        check_out(run_with_scores / "targets.csv", run_with_scores)
    with pytest.raises(ConfigError, match="a directory"):
        check_out(tmp_path, run_with_scores)


@pytest.fixture(scope="module")
def count_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished purchase-count run (Poisson) over ``tiny_data``, without Flower."""
    import torch  # noqa: F401  (the checkpoint)

    from fedmarket.config import RunConfig
    from fedmarket.models import build_model

    out = tmp_path_factory.mktemp("count") / "run"
    cfg = RunConfig.from_mapping(
        {"data-dir": str(tiny_data), "out-dir": str(out), "dp": "none", "task": "purchase-count"}
    )
    files = RunDir(out)
    out.mkdir(parents=True)
    files.write_config(cfg)
    n = store.n_features(store.read_manifest(tiny_data))
    model = build_model("cnn-lstm", n, task="purchase-count", seed=3)
    files.save_checkpoint(1, model.state_dict())
    files.latest_marker.write_text('{"round": 1, "path": "round-0001.pt"}')
    return out


def test_count_run_writes_expected_count_and_its_poisson_propensity(
    count_run: Path, tiny_raw: Path, tmp_path: Path
) -> None:
    out = tmp_path / "t.csv"
    result = run_score(
        ScoreOptions(
            run_dir=count_run,
            out=out,
            rule=SelectionRule(margin=10.0, contact_cost=2.0),
            raw=tiny_raw,
        )
    )
    frame = pd.read_csv(out, dtype={RAW_ID: str})
    assert result.task == "purchase-count" and "expected_count" in frame.columns
    np.testing.assert_allclose(frame["propensity"], 1 - np.exp(-frame["expected_count"]))
    # the profit rule reads the expected count: contact when 10 x count > 2
    np.testing.assert_array_equal(frame["selected"], frame["expected_count"] * 10 > 2)
    for name, s in result.summaries.items():
        part = frame[frame["retailer"] == name]
        chosen = part[part["selected"]]
        assert s.expected_purchases == pytest.approx(chosen["expected_count"].sum(), rel=1e-6)
        assert s.expected_profit == pytest.approx(
            (chosen["expected_count"] * 10 - 2).sum(), rel=1e-6
        )
    with pytest.raises(ConfigError, match="purchase counts"):
        run_score(
            ScoreOptions(
                run_dir=count_run,
                out=tmp_path / "c.csv",
                rule=SelectionRule(top_n=1),
                raw=tiny_raw / "retailer_00",
                calibrate="platt",
            )
        )


def test_calibrate_on_the_export_one_horizon_back(
    run_with_scores: Path, tiny_raw: Path, tmp_path: Path
) -> None:
    rule = SelectionRule(top_n=10)
    with pytest.raises(ConfigError, match="3 retailers"):
        run_score(
            ScoreOptions(
                run_dir=run_with_scores,
                out=tmp_path / "a.csv",
                rule=rule,
                raw=tiny_raw,
                calibrate="isotonic",
            )
        )
    result = run_score(
        ScoreOptions(
            run_dir=run_with_scores,
            out=tmp_path / "b.csv",
            rule=rule,
            raw=tiny_raw / "retailer_00",
            calibrate="isotonic",
        )
    )
    assert result.calibrator is not None and result.calibrator.method == "isotonic"
    assert result.calibration is not None and result.calibration.after is not None


def test_a_retailers_list_does_not_depend_on_the_other_retailers(
    run_with_scores: Path, tiny_raw: Path, tmp_path: Path
) -> None:
    rule = SelectionRule(top_fraction=0.3)
    common = {"run_dir": run_with_scores, "rule": rule, "holdout_fraction": 0.3, "seed": 4}
    run_score(ScoreOptions(out=tmp_path / "all.csv", raw=tiny_raw, **common))
    run_score(ScoreOptions(out=tmp_path / "one.csv", raw=tiny_raw / "retailer_01", **common))
    every = pd.read_csv(tmp_path / "all.csv", dtype={RAW_ID: str})
    one = pd.read_csv(tmp_path / "one.csv", dtype={RAW_ID: str})
    assert set(one["retailer"]) == {"retailer_01"}
    pd.testing.assert_frame_equal(
        every[every["retailer"] == "retailer_01"].reset_index(drop=True), one
    )
