from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fedmarket.data import store
from fedmarket.errors import ConfigError
from fedmarket.scoring.run_model import load_run_model
from fedmarket.training import predict


def test_federated_model_scores_like_the_checkpoint(scoring_run: Path, tiny_data: Path) -> None:
    run = load_run_model(scoring_run)
    assert run.source == "federated" and run.round == 2
    test = store.load_split(tiny_data, 0, "test")
    expected = predict(run.net, np.asarray(test.X), run.task)
    assert np.array_equal(run.predict(np.asarray(test.X)), expected)
    assert run.input_shape == np.asarray(test.X).shape[1:]


def test_centralised_model_is_the_reference(scoring_run: Path, tiny_data: Path) -> None:
    fed, cen = load_run_model(scoring_run), load_run_model(scoring_run, "centralised")
    X = np.asarray(store.load_split(tiny_data, 1, "test").X)
    assert cen.round is None
    assert not np.allclose(fed.predict(X), cen.predict(X))


def test_bad_source_and_unfinished_run(scoring_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choose one of federated, centralised"):
        load_run_model(scoring_run, "pooled")
    run = tmp_path / "run"
    shutil.copytree(scoring_run, run)
    (run / "checkpoints" / "latest.json").unlink()
    with pytest.raises(ConfigError, match="no committed round"):
        load_run_model(run)
    shutil.rmtree(run / "centralised")
    with pytest.raises(ConfigError, match=r"no centralised/model\.pt"):
        load_run_model(run, "centralised")


def test_wrong_input_shape_is_refused(scoring_run: Path) -> None:
    run = load_run_model(scoring_run)
    with pytest.raises(ConfigError, match="steps"):
        run.predict(np.zeros((2, 3, 4), np.float32))


@pytest.mark.parametrize("rows", [1, 3, 50])
def test_few_rows_path_equals_training_predict(scoring_run: Path, rows: int) -> None:
    """The service's direct inference_mode call gives exactly training.predict's scores."""
    run = load_run_model(scoring_run)
    rng = np.random.default_rng(rows)
    X = rng.normal(size=(rows, *run.input_shape)).astype(np.float32)
    got = run.predict(X, calibrated=False)
    assert got.dtype == np.float64 and got.shape == (rows,)
    assert np.array_equal(got, predict(run.net, X, run.task))
    assert not run.net.training
    assert np.array_equal(run.predict(X[:0], calibrated=False), np.zeros(0))


def test_a_recommendation_run_is_refused_with_what_is_scored(
    scoring_run: Path, tmp_path: Path
) -> None:
    import json

    run = tmp_path / "run"
    shutil.copytree(scoring_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(
        json.dumps({**config, "task": "next-categories", "model": "gru-ncf"})
    )
    with pytest.raises(ConfigError, match="ranks items for each customer"):
        load_run_model(run)


def _moved_data(run_dir: Path, tmp_path: Path, task: str | None = None) -> Path:
    """A copy of ``run_dir`` whose config.json's data-dir names a directory that is not there."""
    import json

    run = tmp_path / run_dir.name
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    config["data-dir"] = str(tmp_path / "moved")
    if task is not None:
        config |= {"task": task, "model": "gru-ncf"}
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_both_loaders_say_the_same_when_the_prepared_data_is_gone(
    scoring_run: Path, rec_run: Path, tmp_path: Path
) -> None:
    """One wording for both loaders: what (the data-dir is not there), where (the run, the
    path), why it is needed and how to fix it."""
    from fedmarket.scoring.rec_model import load_rec_model

    for load, run, holds in [
        (load_run_model, scoring_run, "the window and normalisation"),
        (load_rec_model, rec_run, "the window and the vocabulary"),
    ]:
        copy = _moved_data(run, tmp_path / load.__name__)
        with pytest.raises(ConfigError) as info:
            load(copy)
        assert str(info.value) == (
            f"{copy}: the run's prepared data {tmp_path / load.__name__ / 'moved'} "
            f"(config.json's data-dir) is not there; its manifest holds {holds} the model "
            "needs. Load the run where that directory is, or copy the prepared data there"
        )


def test_the_task_and_the_source_are_checked_before_the_data(
    scoring_run: Path, tmp_path: Path
) -> None:
    run = _moved_data(scoring_run, tmp_path)
    with pytest.raises(ConfigError, match="choose one of federated, centralised"):
        load_run_model(run, "pooled")
    ranking = _moved_data(scoring_run, tmp_path / "ranking", task="next-categories")
    with pytest.raises(ConfigError, match="ranks items for each customer"):
        load_run_model(ranking)


def test_a_next_products_run_is_refused_with_what_to_use_instead(tmp_path):
    from fedmarket.config import RunConfig
    from fedmarket.rundir import RunDir

    RunDir(tmp_path).write_config(
        RunConfig.from_mapping({"task": "next-products", "model": "gru-ncf"})
    )
    from fedmarket.scoring.rec_model import load_rec_model

    for load in (load_run_model, load_rec_model):
        with pytest.raises(ConfigError, match="next-products run ranks each retailer"):
            load(tmp_path)


def test_score_and_serve_refuse_a_next_products_run_before_their_options(tmp_path: Path) -> None:
    """The options of the README's recommender examples (--top-k, --retailer) were judged
    first, against the wrong kind of run ("this run scores customers")."""
    from typer.testing import CliRunner

    from fedmarket.cli import app
    from fedmarket.config import RunConfig
    from fedmarket.rundir import RunDir

    RunDir(tmp_path).write_config(
        RunConfig.from_mapping({"task": "next-products", "model": "gru-ncf"})
    )
    for args in (
        ["score", str(tmp_path), "--raw", str(tmp_path), "--top-k", "10", "--out", "x.csv"],
        ["score", str(tmp_path), "--raw", str(tmp_path), "--out", "x.csv"],
        ["serve", str(tmp_path), "--retailer", "retailer_01"],
    ):
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 2, (args, done.output)
        assert "next-products run ranks each retailer" in done.output, (args, done.output)
