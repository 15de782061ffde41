"""The GAN rows of the baselines table (fedmarket/generative/rows.py): on the classical rows'
features and customers, in the same table, skipped for counts, bad names refused."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from fedmarket.baselines import render_table, run_classical_baselines, write_results
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.generative.rows import (
    GENERATIVE_MODELS,
    check_generative_models,
    run_generative_baselines,
    sequence_features,
)
from fedmarket.generative.ssgan import GANConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = GANConfig(epochs=6, batch_size=64)


def split(n: int, seed: int) -> SplitArrays:
    """Counts-like aggregates; column 0 decides who buys (as tests/test_baselines.py)."""
    rng = np.random.default_rng(seed)
    agg = rng.poisson(3.0, size=(n, 4)).astype(np.float32)
    y = (agg[:, 0] >= 4).astype(np.float32)
    return SplitArrays(
        X=np.zeros((n, 1, 1), np.float32),
        agg=agg,
        y_purchase=y,
        y_count=y * 2,
        customer=np.array([f"c{i}" for i in range(n)]),
    )


@pytest.mark.parametrize("task", ["purchase", "churn"])
def test_every_generative_row_on_the_same_test_customers(task: str) -> None:
    train, test = split(300, 0), split(150, 1)
    seen: list[str] = []
    rows = run_generative_baselines(train, test, task=task, seed=0, cfg=QUICK, progress=seen.append)
    assert (
        [r.model for r in rows]
        == list(GENERATIVE_MODELS)
        == [
            "ssgan",
            "ssgan-seq",
            "gan-oversampled-logistic-regression",
            "gan-oversampled-gradient-boosting",
        ]
    )
    assert seen[:2] == ["ssgan (1/4)", "ssgan-seq (2/4)"]
    for row in rows:
        assert row.family == "generative" and row.notes and row.fit_seconds > 0
        assert row.metrics["n"] == 150 and row.prediction.shape == (150,)
        assert row.metrics["roc_auc"] > 0.8, row.model  # column 0 decides
        assert row.metrics["roc_auc_low"] <= row.metrics["roc_auc"] <= row.metrics["roc_auc_high"]
    # buyers are the minority (P(Poisson(3) >= 4) = 0.35); for churn the buyers are class 0
    minority = "1" if task == "purchase" else "0"
    assert f"GAN-generated rows of class {minority} " in rows[2].notes
    assert "5 inputs: the flattened event-feature sequence" in rows[1].notes  # 1 x 1 + 4


def test_rows_join_the_classical_table(tmp_path) -> None:
    train, test = split(200, 2), split(100, 3)
    rows = run_classical_baselines(
        train, test, task="purchase", seed=0, models=["logistic-regression"]
    )
    rows += run_generative_baselines(train, test, task="purchase", seed=0, cfg=QUICK)
    console = Console(width=200, record=True)
    console.print(render_table(rows, "purchase"))
    text = console.export_text()
    for name in ("logistic-regression", "generative", *GENERATIVE_MODELS):
        assert name in text
    rate = float(np.mean(test.y_purchase))
    assert f"base rate {rate:.1%} on the test customers" in text
    csv_path, _ = write_results(rows, tmp_path)
    assert csv_path.read_text().count("generative") == 4


def test_counts_are_skipped_with_a_note() -> None:
    rows = run_generative_baselines(split(50, 4), split(20, 5), task="purchase-count", seed=0)
    assert all(r.skipped and "counts" in r.notes for r in rows)


def test_same_seed_same_rows() -> None:
    train, test = split(150, 6), split(60, 7)
    a, b = (
        run_generative_baselines(train, test, task="purchase", seed=1, cfg=QUICK) for _ in range(2)
    )
    assert [r.metrics for r in a] == [r.metrics for r in b]


def sequence_split(n: int, seed: int) -> SplitArrays:
    """Only the sequence decides: feature 2 at step 3 of X; the aggregates are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 3)).astype(np.float32)
    y = (x[:, 3, 2] > 0.5).astype(np.float32)
    return SplitArrays(
        X=x,
        agg=rng.poisson(3.0, size=(n, 4)).astype(np.float32),
        y_purchase=y,
        y_count=y,
        customer=np.array([f"c{i}" for i in range(n)]),
    )


def test_the_seq_row_reads_the_sequence() -> None:
    train, test = sequence_split(400, 10), sequence_split(200, 11)
    rows = run_generative_baselines(
        train, test, task="purchase", seed=0, models=["ssgan", "ssgan-seq"], cfg=QUICK
    )
    auc = {r.model: r.metrics["roc_auc"] for r in rows}
    assert auc["ssgan-seq"] > 0.85 and 0.35 < auc["ssgan"] < 0.65, auc
    assert "19 inputs" in rows[1].notes  # 5 steps x 3 features + 4 aggregates


def test_sequence_features_are_the_flat_sequence_then_the_log_aggregates() -> None:
    part = split(3, 12)
    x = sequence_features(part, where="train")
    assert x.shape == (3, 1 + 4)
    np.testing.assert_array_equal(x[:, 0], 0.0)
    np.testing.assert_allclose(x[:, 1:], np.log1p(part.agg))
    bad = SplitArrays(
        X=np.full((3, 2, 1), np.nan, np.float32),
        agg=part.agg,
        y_purchase=part.y_purchase,
        y_count=part.y_count,
        customer=part.customer,
    )
    with pytest.raises(DataError, match=r"train\.X holds NaN"):
        sequence_features(bad, where="train")


def test_an_epsilon_adds_the_dp_twin_of_each_gan_classifier_chosen() -> None:
    train, test = sequence_split(200, 13), sequence_split(80, 14)
    rows = run_generative_baselines(
        train, test, task="purchase", seed=0, models="ssgan-seq", cfg=QUICK, epsilon=8.0
    )
    assert [r.model for r in rows] == ["ssgan-seq", "ssgan-seq-dp"]
    assert 0 < rows[1].metrics["epsilon"] <= 8.0 and rows[1].metrics["delta"] == 1 / 2000
    assert rows[1].notes.startswith("ssgan-seq with DP-SGD") and "19 inputs" in rows[1].notes


def test_bad_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown generative model 'sgan'; did you mean 'ssgan'"):
        check_generative_models(["sgan"])
    with pytest.raises(ConfigError, match=r"'ssgan-sq'; did you mean 'ssgan-seq'"):
        check_generative_models("ssgan,ssgan-sq")
    with pytest.raises(ConfigError, match=r"'ssgan-seq-dp' is not chosen by name.*--gan-epsilon"):
        check_generative_models(["ssgan-seq-dp"])
    assert check_generative_models(["ssgan", "ssgan"]) == ["ssgan"]
    assert check_generative_models(" ssgan-seq, ssgan ,") == ["ssgan-seq", "ssgan"]
    with pytest.raises(ConfigError, match="unknown task"):
        run_generative_baselines(split(50, 8), split(20, 9), task="chrun", seed=0)
