"""fedmarket.experiments.compare on directories written without training: which result a
directory holds, the strict join on (partition, customer), and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedmarket.errors import ConfigError, DataError
from fedmarket.experiments.compare import available, compare_runs
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.rundir import BASELINE_SCORES, RunDir

N = 120


def predictions(model: str, seed: int, *, task: str = "purchase", n: int = N) -> Predictions:
    """Model ``seed`` on the same n customers (labels from a fixed generator)."""
    y = (np.random.default_rng(0).random(n) < 0.35).astype(float)
    noise = np.random.default_rng(seed).normal(size=n)
    score = 1 / (1 + np.exp(-(y * (1 + seed % 3) + noise)))
    customers = np.array([f"{i:064x}" for i in range(n)])
    return Predictions(task, model, np.arange(n) % 3, customers, y, score)


def simulate_dir(root: Path, fed: Predictions, cen: Predictions) -> Path:
    files = RunDir(root / "sim")
    files.path.mkdir(parents=True)
    files.config.write_text("{}")  # a run directory: config.json is there
    write_predictions(files.test_scores, fed)
    write_predictions(files.centralised_scores, cen)
    return files.path


def baselines_dir(root: Path, *models: Predictions) -> Path:
    write_predictions(root / "base" / BASELINE_SCORES, list(models))
    return root / "base"


def centralised_dir(root: Path, cen: Predictions, name: str = "cen") -> Path:
    write_predictions(root / name / "test_scores.csv", cen)
    (root / name / "metrics.json").write_text("{}")
    return root / name


def test_federated_against_centralised_in_one_run(tmp_path: Path):
    fed, cen = predictions("cnn-lstm", 1), predictions("cnn-lstm", 2)
    run = simulate_dir(tmp_path, fed, cen)
    assert set(available(run)) == {"federated", "centralised"}
    result = compare_runs(run, run, kind_b="centralised", resamples=200)
    assert (result.a.kind, result.b.kind, result.task, result.n) == (
        "federated",
        "centralised",
        "purchase",
        N,
    )
    assert result.positives == int(fed.label.sum()) and result.negatives == N - result.positives
    [auc, pr, lift] = result.results
    assert [r.metric for r in result.results] == ["roc_auc", "pr_auc", "lift_at_10"]
    assert auc.a == pytest.approx(roc_auc_score(fed.label, fed.score))
    assert auc.difference == pytest.approx(auc.a - auc.b) and auc.method == "delong"
    assert pr.method == lift.method == "bootstrap" and pr.resamples <= 200
    assert not result.small_test and result.to_dict()["metrics"][0]["metric"] == "roc_auc"


def test_a_simulate_runs_bg_nbd_anchor_is_a_result_to_compare_with(tmp_path: Path):
    fed, anchor = predictions("cnn-lstm", 1), predictions("bg-nbd", 2)
    run = simulate_dir(tmp_path, fed, predictions("cnn-lstm", 3))
    write_predictions(RunDir(run).anchor_scores, anchor)
    assert set(available(run)) == {"federated", "centralised", "bg-nbd"}
    result = compare_runs(run, run, kind_a="federated", kind_b="bg-nbd", metrics=["roc_auc"])
    [auc] = result.results
    assert (result.a.kind, result.b.kind, result.b.predictions.model) == (
        "federated",
        "bg-nbd",
        "bg-nbd",
    )
    assert auc.a == pytest.approx(roc_auc_score(fed.label, fed.score))
    assert auc.b == pytest.approx(roc_auc_score(anchor.label, anchor.score))
    assert auc.difference == pytest.approx(auc.a - auc.b)
    assert result.b.path == RunDir(run).anchor_scores
    from fedmarket.cli.compare import KIND_HELP

    assert "bg-nbd (a simulate run's anchor)" in KIND_HELP


def test_a_simulate_runs_local_only_models_are_a_result_to_compare_with(tmp_path: Path):
    fed, local = predictions("cnn-lstm", 1), predictions("cnn-lstm", 2)
    run = simulate_dir(tmp_path, fed, predictions("cnn-lstm", 3))
    write_predictions(RunDir(run).local_only_scores, local)
    assert set(available(run)) == {"federated", "centralised", "local-only"}
    result = compare_runs(run, run, kind_b="local-only", metrics=["roc_auc"])
    [auc] = result.results
    assert (result.a.kind, result.b.kind, result.b.path) == (
        "federated",
        "local-only",
        RunDir(run).local_only_scores,
    )
    assert auc.b == pytest.approx(roc_auc_score(local.label, local.score))
    from fedmarket.cli.compare import KIND_HELP

    assert "local-only (each retailer's own model)" in KIND_HELP


def test_row_order_does_not_matter_and_the_seed_fixes_the_bootstrap(tmp_path: Path):
    run = simulate_dir(tmp_path, predictions("m", 1), predictions("m", 2))
    cen = predictions("m", 2)
    order = np.random.default_rng(1).permutation(N)
    shuffled = Predictions(
        "purchase",
        "m",
        cen.partition[order],
        cen.customer[order],
        cen.label[order],
        cen.score[order],
    )
    other = centralised_dir(tmp_path, shuffled)
    first = compare_runs(run, other, metrics=["pr_auc"], seed=4, resamples=200)
    same = compare_runs(run, run, kind_b="centralised", metrics=["pr_auc"], seed=4, resamples=200)
    assert first.results == same.results


def test_a_baselines_directory_needs_a_model_named(tmp_path: Path):
    base = baselines_dir(tmp_path, predictions("logistic-regression", 1), predictions("knn", 2))
    cen = centralised_dir(tmp_path, predictions("lstm", 3))
    with pytest.raises(ConfigError, match="several results; name one with --a: logistic-"):
        compare_runs(base, cen)
    with pytest.raises(ConfigError, match="holds no predictions of 'svm'; it holds: logistic"):
        compare_runs(base, cen, kind_a="svm")
    result = compare_runs(base, cen, kind_a="knn", metrics=["roc_auc"])
    assert (result.a.predictions.model, result.b.kind) == ("knn", "centralised")
    two = compare_runs(base, base, kind_a="knn", kind_b="logistic-regression", metrics=["roc_auc"])
    logistic = predictions("logistic-regression", 1)
    assert two.results[0].a == result.results[0].a  # knn, whatever it is compared with
    assert two.results[0].b == pytest.approx(roc_auc_score(logistic.label, logistic.score))


def test_different_customers_labels_or_tasks_are_refused(tmp_path: Path):
    run = simulate_dir(tmp_path, predictions("m", 1), predictions("m", 2))
    fewer = centralised_dir(tmp_path, predictions("m", 2, n=N - 7), "fewer")
    with pytest.raises(DataError) as refused:
        compare_runs(run, fewer, kind_a="federated")
    message = str(refused.value)
    assert f"{N - 7} in both, 7 only in A" in message and "0 only in B" in message
    assert "prepare the data once" in message
    flipped = predictions("m", 2)
    flipped.label[:5] = 1 - flipped.label[:5]
    with pytest.raises(DataError, match="disagree on the label of 5 of 120 customers"):
        compare_runs(run, centralised_dir(tmp_path, flipped, "flipped"))
    counts = centralised_dir(tmp_path, predictions("m", 2, task="purchase-count"), "counts")
    with pytest.raises(ConfigError, match=r"predicts purchase and B .* purchase-count"):
        compare_runs(run, counts)


def test_what_cannot_be_compared_is_said_before_anything_is_computed(tmp_path: Path):
    run = simulate_dir(tmp_path, predictions("m", 1), predictions("m", 2))
    with pytest.raises(ConfigError, match=r"the same result .* --a federated --b centralised"):
        compare_runs(run, run)
    with pytest.raises(ConfigError, match="not a metric of task 'purchase'"):
        compare_runs(run, run, kind_b="centralised", metrics=["rmse"])
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        compare_runs(run, run, kind_b="centralised", metrics=["auc"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no per-customer test predictions there"):
        compare_runs(tmp_path / "empty", run)
    with pytest.raises(ConfigError, match="no such run directory"):
        compare_runs(tmp_path / "nowhere", run)
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text("{}")
    (old / "test_scores.csv").write_text("y,score\n1,0.5\n0,0.2\n")
    with pytest.raises(ConfigError, match="older fedmarket"):
        compare_runs(old, run, kind_b="centralised")


def test_counts_have_their_own_default_metrics(tmp_path: Path):
    fed, cen = (predictions("m", seed, task="purchase-count") for seed in (1, 2))
    fed.label[:10] = 3.0  # some customers buy more than once
    cen.label[:10] = 3.0
    run = simulate_dir(tmp_path, fed, cen)
    result = compare_runs(run, run, kind_b="centralised", resamples=200)
    assert [r.metric for r in result.results] == ["rmse", "pearson", "lift_at_10"]
    rmse = result.results[0]
    assert rmse.a == pytest.approx(np.sqrt(np.mean((fed.label - fed.score) ** 2)))
    assert result.positives == int(np.count_nonzero(fed.label > 0))
