"""The GAN rows of the baselines table (fedmarket/generative/rows.py): on the classical rows'
features and customers, in the same table, skipped for counts, bad names refused."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from fedmarket.baselines import render_table, run_classical_baselines, write_results
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError
from fedmarket.generative.rows import (
    GENERATIVE_MODELS,
    check_generative_models,
    run_generative_baselines,
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
            "gan-oversampled-logistic-regression",
            "gan-oversampled-gradient-boosting",
        ]
    )
    assert seen[0] == "ssgan (1/3)"
    for row in rows:
        assert row.family == "generative" and row.notes and row.fit_seconds > 0
        assert row.metrics["n"] == 150 and row.prediction.shape == (150,)
        assert row.metrics["roc_auc"] > 0.8, row.model  # column 0 decides
        assert row.metrics["roc_auc_low"] <= row.metrics["roc_auc"] <= row.metrics["roc_auc_high"]
    # buyers are the minority (P(Poisson(3) >= 4) = 0.35); for churn the buyers are class 0
    minority = "1" if task == "purchase" else "0"
    assert f"GAN-generated rows of class {minority} " in rows[1].notes


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
    assert csv_path.read_text().count("generative") == 3


def test_counts_are_skipped_with_a_note() -> None:
    rows = run_generative_baselines(split(50, 4), split(20, 5), task="purchase-count", seed=0)
    assert all(r.skipped and "counts" in r.notes for r in rows)


def test_same_seed_same_rows() -> None:
    train, test = split(150, 6), split(60, 7)
    a, b = (
        run_generative_baselines(train, test, task="purchase", seed=1, cfg=QUICK) for _ in range(2)
    )
    assert [r.metrics for r in a] == [r.metrics for r in b]


def test_bad_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown generative model 'sgan'; did you mean 'ssgan'"):
        check_generative_models(["sgan"])
    assert check_generative_models(["ssgan", "ssgan"]) == ["ssgan"]
    with pytest.raises(ConfigError, match="unknown task"):
        run_generative_baselines(split(50, 8), split(20, 9), task="chrun", seed=0)
