"""Classical baselines on small synthetic splits: sanity of the fit, every model, the outputs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from rich.console import Console

from fedmarket.baselines import (
    CLASSICAL_MODELS,
    ResultRow,
    aggregate_features,
    model_names,
    render_notes,
    render_table,
    run_classical_baselines,
    write_results,
)
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.tasks import get_task

LIFT_KEYS = ("lift_at_1", "lift_at_5", "lift_at_10", "lift_at_20")


def make_split(n: int, rng: np.random.Generator, *, informative: bool = True) -> SplitArrays:
    """Counts-like aggregates; with ``informative`` column 0 decides who buys."""
    agg = rng.poisson(3.0, size=(n, 4)).astype(np.float32)
    if informative:
        y = (agg[:, 0] >= 3).astype(np.float32)
    else:
        y = (rng.random(n) < 0.4).astype(np.float32)
    count = (y * (1 + agg[:, 0] // 2)).astype(np.float32)
    return SplitArrays(
        X=np.zeros((n, 2, 1), np.float32),
        agg=agg,
        y_purchase=y,
        y_count=count,
        customer=np.array([f"c{i}" for i in range(n)]),
    )


def test_logistic_regression_separable_vs_random() -> None:
    rng = np.random.default_rng(0)
    train, test = make_split(600, rng), make_split(400, rng)
    (row,) = run_classical_baselines(
        train, test, task="purchase", seed=0, models=["logistic-regression"]
    )
    assert row.metrics["roc_auc"] > 0.99
    assert row.metrics["lift_at_10"] == pytest.approx(1 / row.metrics["positive_rate"])
    noise_train = make_split(600, rng, informative=False)
    noise_test = make_split(2000, rng, informative=False)
    (noise,) = run_classical_baselines(
        noise_train, noise_test, task="purchase", seed=0, models=["logistic-regression"]
    )
    assert noise.metrics["roc_auc"] == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("task", ["purchase", "purchase-count", "churn"])
def test_every_registered_model_runs(task: str) -> None:
    rng = np.random.default_rng(1)
    train, test = make_split(150, rng), make_split(60, rng)
    messages: list[str] = []
    rows = run_classical_baselines(train, test, task=task, seed=0, progress=messages.append)
    assert [r.model for r in rows] == model_names(task)
    assert len(messages) == len(rows) and messages[0].endswith(f"(1/{len(rows)})")
    keys = (*get_task(task).metric_keys, *LIFT_KEYS)
    for row in rows:
        assert row.family == "classical" and row.notes
        if row.skipped:
            assert task == "purchase-count" and row.model == "naive-bayes"
            assert "no regression form" in row.notes
            continue
        assert tuple(row.metrics) == keys
        assert row.metrics["n"] == 60 and row.fit_seconds >= 0
        if task in ("purchase", "churn"):
            assert row.metrics["roc_auc"] > 0.65, row.model  # easy, but 150 rows stop the MLP early
        else:
            assert row.metrics["rmse"] < np.std(test.y_count), row.model  # beats the mean


def test_classifiers_include_gradient_boosting_nb_knn_mlp() -> None:
    for task in ("purchase", "churn", "churn-inactive"):
        assert {"gradient-boosting", "naive-bayes", "knn", "mlp"} <= set(model_names(task))
    assert "gradient-boosting" in model_names("purchase-count")


def test_churn_is_purchase_turned_around() -> None:
    """On churn the classifiers see the churn label (1 - y_purchase): the same ranking
    turned around, so ROC-AUC is the same and the base rate is 1 minus the purchase one."""
    rng = np.random.default_rng(4)
    train, test = make_split(300, rng), make_split(200, rng)
    (buy,) = run_classical_baselines(train, test, task="purchase", seed=0, models=["naive-bayes"])
    (churn,) = run_classical_baselines(train, test, task="churn", seed=0, models=["naive-bayes"])
    assert churn.metrics["roc_auc"] == pytest.approx(buy.metrics["roc_auc"], abs=1e-9)
    assert churn.metrics["positive_rate"] == pytest.approx(1 - buy.metrics["positive_rate"])
    np.testing.assert_allclose(churn.prediction, 1 - buy.prediction, atol=1e-9)


def test_seed_makes_results_repeatable() -> None:
    rng = np.random.default_rng(2)
    train, test = make_split(150, rng), make_split(60, rng)
    runs = [
        run_classical_baselines(
            train, test, task="purchase", seed=5, models=["random-forest", "mlp"]
        )
        for _ in range(2)
    ]
    assert [r.metrics for r in runs[0]] == [r.metrics for r in runs[1]]


def test_bad_model_name_lists_known_ones() -> None:
    rng = np.random.default_rng(3)
    split = make_split(50, rng)
    with pytest.raises(ConfigError, match=r"xgboost.*known: logistic-regression, decision-tree"):
        run_classical_baselines(split, split, task="purchase", seed=0, models=["xgboost"])
    with pytest.raises(ConfigError, match="poisson-regression"):
        run_classical_baselines(
            split, split, task="purchase", seed=0, models=["poisson-regression"]
        )
    with pytest.raises(ConfigError, match="unknown task"):
        run_classical_baselines(split, split, task="chrun", seed=0)


def test_bad_data() -> None:
    rng = np.random.default_rng(4)
    split = make_split(50, rng)
    one_class = SplitArrays(
        split.X, split.agg, np.zeros(50, np.float32), split.y_count, split.customer
    )
    with pytest.raises(DataError, match="single class"):
        run_classical_baselines(one_class, split, task="purchase", seed=0)
    agg = split.agg.copy()
    agg[7, 2] = np.nan
    broken = SplitArrays(split.X, agg, split.y_purchase, split.y_count, split.customer)
    with pytest.raises(DataError, match=r"train\.agg.*row 7, column 2"):
        run_classical_baselines(broken, split, task="purchase", seed=0)
    narrow = SplitArrays(split.X, split.agg[:, :3], split.y_purchase, split.y_count, split.customer)
    with pytest.raises(DataError, match=r"4 features but test\.agg has 3"):
        run_classical_baselines(split, narrow, task="purchase", seed=0)
    negative = SplitArrays(split.X, split.agg, split.y_purchase, -split.y_count, split.customer)
    with pytest.raises(DataError, match="y_count"):
        run_classical_baselines(split, negative, task="purchase-count", seed=0)


def test_aggregate_features() -> None:
    e = math.e - 1
    np.testing.assert_allclose(aggregate_features(np.array([[0.0, e, -e]])), [[0.0, 1.0, -1.0]])
    with pytest.raises(DataError, match="2-D"):
        aggregate_features(np.zeros(3))
    with pytest.raises(DataError, match=r"got \(0, 4\)"):
        aggregate_features(np.zeros((0, 4)))
    assert set(CLASSICAL_MODELS["purchase"]) >= {"svm", "naive-bayes", "knn", "mlp"}


ROWS = [
    ResultRow("logistic-regression", "classical", {"roc_auc": 0.75, "lift_at_10": 2.5}, 0.5, "lr"),
    ResultRow("cnn-lstm", "sequence", {"roc_auc": 0.8, "pr_auc": math.nan}, 12.0, "seq"),
    ResultRow("naive-bayes", "classical", {}, 0.0, "skipped: no form"),
]


def test_write_results_csv_and_json(tmp_path) -> None:
    csv_path, json_path = write_results(ROWS, tmp_path / "out", stem="cmp")
    assert (csv_path.name, json_path.name) == ("cmp.csv", "cmp.json")
    with csv_path.open() as fh:
        reader = csv.DictReader(fh)
        records = list(reader)
    assert reader.fieldnames == [
        "model",
        "family",
        "roc_auc",
        "lift_at_10",
        "pr_auc",
        "fit_seconds",
        "notes",
    ]
    assert records[0] == {
        "model": "logistic-regression",
        "family": "classical",
        "roc_auc": "0.75",
        "lift_at_10": "2.5",
        "pr_auc": "",
        "fit_seconds": "0.5",
        "notes": "lr",
    }
    assert records[1]["pr_auc"] == "" and records[1]["family"] == "sequence"
    assert records[2]["roc_auc"] == "" and records[2]["notes"] == "skipped: no form"
    payload = json.loads(json_path.read_text())
    assert payload[1] == {
        "model": "cnn-lstm",
        "family": "sequence",
        "metrics": {"roc_auc": 0.8, "pr_auc": None},
        "fit_seconds": 12.0,
        "notes": "seq",
        "caution": None,  # these rows have no counts to judge the test set by
    }
    assert payload[2]["metrics"] == {}


def test_render_table() -> None:
    table = render_table(ROWS, "purchase")
    assert [c.header for c in table.columns][:2] == ["model", "roc_auc"]
    assert table.row_count == 3 + 3  # a heading row each time the family changes
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "cnn-lstm" in text and "0.800" in text and "n/a" in text
    assert "higher is better" in text
    assert [c.header for c in table.columns][-1] == "lift@10%"
    notes = render_notes(ROWS)
    assert notes.splitlines()[0].startswith("1. ") and "seq" in notes


def test_notes_stay_out_of_the_table_so_an_80_column_terminal_shows_one_line_per_model():
    rows = [
        ResultRow(
            name,
            "customer-base",
            {"roc_auc": 0.7, "roc_auc_low": 0.6, "roc_auc_high": 0.8},
            0.2,
            "a long note " * 20,
        )
        for name in ("bg-nbd", "bg-nbd federated")
    ]
    console = Console(record=True, width=80)
    console.print(render_table(rows, "purchase"))
    text = console.export_text()
    body = [line for line in text.splitlines() if "bg-nbd" in line]
    assert len(body) == 2 and "a long note" not in text
    assert [line.strip() for line in text.splitlines()].count("customer-base") == 1


def test_each_row_is_handed_over_as_it_finishes_and_written_whole(tmp_path) -> None:
    """``on_row`` sees every row in order, before the next model is fitted, so the CLI can
    keep finished models on disk; ``write_results`` leaves no temporary file behind."""
    rng = np.random.default_rng(0)
    train, test = make_split(300, rng), make_split(200, rng)
    names = ["logistic-regression", "decision-tree", "naive-bayes"]
    seen: list[ResultRow] = []

    def keep(row: ResultRow) -> None:
        seen.append(row)
        write_results(seen, tmp_path)

    rows = run_classical_baselines(train, test, task="purchase", seed=0, models=names, on_row=keep)
    assert [r.model for r in seen] == names == [r.model for r in rows]
    with open(tmp_path / "baselines.csv", newline="") as handle:
        assert [r["model"] for r in csv.DictReader(handle)] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baselines.csv", "baselines.json"]


def test_table_and_files_show_intervals_and_warn_on_a_small_test_set(tmp_path) -> None:
    metrics = {
        "roc_auc": 0.8123,
        "roc_auc_low": 0.7912,
        "roc_auc_high": 0.8334,
        "pr_auc": 0.41,
        "pr_auc_low": 0.2,
        "pr_auc_high": 0.65,
        "n_positive": 7,
        "n_negative": 300,
    }
    rows = [ResultRow("logistic-regression", "classical", metrics, 0.5, "lr")]
    console = Console(record=True, width=250)
    console.print(render_table(rows, "purchase"))
    text = " ".join(console.export_text().split())
    # each interval sits under its value
    assert "0.812 0.410" in text and "(0.791-0.833) (0.200-0.650)" in text
    assert "Caution: the test set has only 7 buyers (fewer than 30)" in text
    assert "do not rank models on it." in text
    csv_path, json_path = write_results(rows, tmp_path)
    with csv_path.open() as fh:
        record = next(csv.DictReader(fh))
    assert (record["roc_auc_low"], record["n_positive"]) == ("0.7912", "7")
    (payload,) = json.loads(json_path.read_text())
    assert payload["caution"].startswith("the test set has only 7 buyers")
    big = [ResultRow("lr", "classical", {**metrics, "n_positive": 70}, 0.5, "lr")]
    assert render_table(big, "purchase").caption is None


def test_count_table_shows_correlation_and_tracking_error() -> None:
    rng = np.random.default_rng(6)
    train, test = make_split(300, rng), make_split(200, rng)
    (row,) = run_classical_baselines(
        train, test, task="purchase-count", seed=0, models=["poisson-regression"]
    )
    m = row.metrics
    assert m["spearman_low"] < m["spearman"] < m["spearman_high"]
    assert m["tracking_error"] == pytest.approx(m["total_predicted"] / m["total_actual"] - 1)
    table = render_table([row], "purchase-count")
    headers = [c.header for c in table.columns]
    assert {"spearman", "total err"} <= set(headers)
    console = Console(record=True, width=250)
    console.print(table)
    text = console.export_text()
    assert f"{m['spearman']:.3f}" in text
    assert f"({m['spearman_low']:.3f}-{m['spearman_high']:.3f})" in text
