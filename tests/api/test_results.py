"""The API's results: the numbers read first, and a repr short enough for a notebook."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from fedmarket.api.results import BaselinesResult, CentralisedRun, RunResult, number
from fedmarket.baselines import ResultRow
from fedmarket.centralised import CentralisedResult
from fedmarket.config import RunConfig
from fedmarket.errors import ConfigError
from fedmarket.reporting import build_summary

FED = {"roc_auc": 0.71, "pr_auc": 0.30, "f1": 0.1, "lift_at_10": 2.5, "n": 120}
CEN = {"roc_auc": 0.74, "pr_auc": 0.33, "f1": 0.2, "lift_at_10": 2.9, "n": 120}


def reference(test: dict, epsilon: float | None = None) -> CentralisedResult:
    return CentralisedResult(
        model="lstm",
        task="purchase",
        test=test,
        history=[{"epoch": 1, "train_loss": 0.6}, {"epoch": 2, "train_loss": 0.5}],
        n_train=480,
        n_test=120,
        epochs_run=2,
        best_epoch=2,
        wall_s=1.0,
        epsilon=epsilon,
    )


def summary(dp: str = "none", skipped: tuple[int, ...] = (), epsilon: float | None = None):
    """summary.json as simulate writes it (through the same function)."""
    federated = {
        "test": FED,
        "rounds": 2,
        "skipped_rounds": list(skipped),
        "participation": {"rounds_aggregated": {"0": 2}, "never": []},
        "epsilon": {"max": epsilon, "per_client": {"0": epsilon}, "unit": "customer"},
        "delta": 1e-4 if dp == "client" else None,
    }
    cfg = RunConfig.from_mapping({"dp": dp, "num-server-rounds": 2})
    return build_summary(cfg, federated, reference(CEN))


def test_run_result_reads_the_summary(tmp_path: Path):
    run = RunResult(tmp_path, summary("client", epsilon=3.2))
    assert (run.federated_test, run.centralised_test) == (FED, CEN)
    assert run.gap["roc_auc"] == pytest.approx(0.71 - 0.74)
    assert (run.epsilon, run.delta, run.problems) == (3.2, 1e-4, [])
    assert os.fspath(run) == str(tmp_path)
    assert run.report_html == tmp_path / "report.html"
    assert run.anchor_test is None  # a run without an anchor block (older, or none)
    anchor = {"model": "bg-nbd", "dp": False, "test": {"roc_auc": 0.69}}
    assert RunResult(tmp_path, run.summary | {"anchor": anchor}).anchor_test == {"roc_auc": 0.69}
    assert RunResult(tmp_path, run.summary | {"anchor": {"skipped": "a table"}}).anchor_test is None


def test_run_result_repr_is_one_short_line_with_the_headline_numbers(tmp_path: Path):
    text = repr(RunResult(tmp_path, summary()))
    assert text == (
        f"RunResult({str(tmp_path)!r}: roc_auc 0.7100 (centralised 0.7400, gap -0.0300), no DP)"
    )


def test_an_incomplete_run_says_so_in_its_repr_and_markdown(tmp_path: Path):
    run = RunResult(tmp_path, summary(skipped=(2,)))
    assert "INCOMPLETE: 1 problem(s)" in repr(run)
    markdown = run._repr_markdown_()
    assert "| roc_auc | 0.7100 | 0.7400 | -0.0300 |" in markdown
    assert "**incomplete:** round(s) 2 were not aggregated" in markdown


def test_the_markdown_table_shows_intervals_where_the_run_has_them(tmp_path: Path):
    s = summary()
    s["federated"]["test"] = {**FED, "roc_auc_low": 0.6512, "roc_auc_high": 0.7688}
    markdown = RunResult(tmp_path, s)._repr_markdown_()
    assert "| roc_auc | 0.710 (0.651-0.769) | 0.7400 | -0.0300 |" in markdown
    assert "roc_auc_low" not in markdown


def test_loading_a_directory_without_a_summary_says_what_to_do(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"no summary\.json there.*resume="):
        RunResult.load(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps(summary()))
    assert RunResult.load(tmp_path).federated_test == FED


def test_centralised_run_repr_and_history(tmp_path: Path):
    run = CentralisedRun(reference(CEN, epsilon=2.0), tmp_path / "c")
    assert repr(run) == (
        "CentralisedRun(lstm/purchase: roc_auc 0.7400 on 120 test customers, 2 epochs, "
        f"epsilon 2.000, out={str(tmp_path / 'c')!r})"
    )
    assert list(run.history["train_loss"]) == [0.6, 0.5]
    assert "| n | 120 |" in run._repr_markdown_()


def test_baselines_table_keeps_skipped_models_and_picks_the_best():
    rows = [
        ResultRow("logistic-regression", "classical", {"roc_auc": 0.70, "rmse": 1.0}, 0.1),
        ResultRow("naive-bayes", "classical", {}, 0.0, "skipped"),
        ResultRow("lstm", "sequence", {"roc_auc": 0.75}, 2.0, "1 epochs"),
    ]
    result = BaselinesResult.from_rows(rows, "purchase", {})
    assert list(result.table.columns) == [
        "model",
        "family",
        "roc_auc",
        "rmse",
        "fit_seconds",
        "notes",
    ]
    assert math.isnan(result.table.loc[1, "roc_auc"]) and result.best == "lstm"
    assert repr(result) == "BaselinesResult(purchase: 3 models, best lstm)"
    assert "<table" in result._repr_html_()


@pytest.mark.parametrize(
    ("value", "text"), [(None, "-"), (math.nan, "-"), (0.5, "0.5000"), (120, "120")]
)
def test_numbers_for_people(value: object, text: str):
    assert number(value) == text


def test_run_result_reads_each_retailers_value(tmp_path: Path):
    from tests.reporting.test_retailers import block

    run = RunResult(tmp_path, summary())
    assert (run.retailers, run.not_paying) == ([], [])  # a run without the block
    run = RunResult(tmp_path, summary() | {"retailers": block()})
    assert [(r["name"], r["pays"]) for r in run.retailers] == [
        ("retailer_00", True),
        ("retailer_01", False),
    ]
    assert run.not_paying == ["retailer_01"]
    assert RunResult(tmp_path, summary() | {"retailers": {"failed": "x"}}).retailers == []
