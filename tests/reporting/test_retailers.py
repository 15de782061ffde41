"""The report's per-retailer section: a table, a sentence per retailer, and the retailers
for whom joining does not pay named (the hand-made set of tests/value/test_per_retailer.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedmarket.config import RunConfig
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.reporting.markdown import to_markdown
from fedmarket.reporting.retailers import (
    not_paying_sentence,
    retailer_blocks,
    retailer_sentence,
    retailer_summary,
    retailer_table,
)
from fedmarket.reporting.run_report import report_blocks
from fedmarket.rundir import RunDir
from fedmarket.value.per_retailer import compare_retailers, retailers_block
from tests.reporting.test_markdown import summary as run_summary
from tests.value.test_per_retailer import FED0, FED1, LOC0, LOC1, predictions

NAMES = {0: "retailer_00", 1: "retailer_01"}


def block(local: bool = True) -> dict:
    rows = compare_retailers(
        predictions(FED0, FED1), predictions(LOC0, LOC1) if local else None, names=NAMES
    )
    return retailers_block(rows, "purchase", local_only="trained" if local else "off: x")


def test_a_sentence_per_retailer_in_words():
    paying, losing = block()["rows"]
    assert retailer_sentence(paying, "roc_auc", True) == (
        "retailer_00 (5 test customers, 40% buyers): joining raises ROC-AUC from 0.667 to "
        "1.000 (0.333 (-0.320 to 0.987) paired), within noise (the paired interval includes "
        "0); it raises lift at 10% from 0.0 to 2.5."
    )
    assert retailer_sentence(losing, "roc_auc", True) == (
        "retailer_01 (4 test customers, 50% buyers): joining does not pay: it lowers ROC-AUC "
        "from 1.000 to 0.250 (-0.750 (-1.443 to -0.057) paired); it lowers lift at 10% from "
        "2.0 to 0.0."
    )


def test_the_table_and_the_retailer_joining_does_not_pay_are_in_the_report():
    text = to_markdown(retailer_blocks({"retailers": block()}))
    assert text.startswith("## Does joining pay for each retailer?")
    assert (
        "| retailer | test customers | base rate | ROC-AUC local-only | ROC-AUC federated | "
        "difference (95% CI) | lift at 10% local-only | lift at 10% federated |"
    ) in text
    assert "| retailer_01 | 4 | 50% | 1.000 | 0.250 | -0.750 (" in text
    assert "| 2.0 | 0.0 |" in text
    assert (
        "Joining does not pay, on ROC-AUC, for: retailer_01. Beyond noise (the paired "
        "interval excludes 0): a loss for retailer_01."
    ) in text


def test_without_local_only_models_the_table_shows_the_federated_model():
    text = to_markdown(retailer_blocks({"retailers": block(local=False)}))
    assert (
        "| retailer | test customers | base rate | ROC-AUC federated | lift at 10% federated |"
        in text
    )
    assert "No local-only models in this run (off: x): with local-only-models = true" in text
    assert "does not pay" not in text
    assert retailer_blocks({"retailers": None}) == []
    failed = to_markdown(retailer_blocks({"retailers": {"failed": "damaged file"}}))
    assert "Not measured: damaged file." in failed


def test_the_report_leads_with_the_retailers():
    text = to_markdown(report_blocks({**run_summary(), "retailers": block()}, []))
    assert text.index("## Does joining pay for each retailer?") < text.index("## In short")
    assert (
        "- Per retailer: joining pays 1 of 2 retailers on ROC-AUC (each on its own test "
        "customers, against a model trained on its data alone); it does not pay retailer_01."
    ) in text
    alone = to_markdown(report_blocks({**run_summary(), "retailers": block(local=False)}, []))
    assert "Per retailer: joining pays" not in alone


def test_the_summary_block_is_read_from_the_run_directory(tmp_path):
    files = RunDir(tmp_path)
    cfg = RunConfig.from_mapping({"data-dir": str(tmp_path / "gone")})
    assert retailer_summary(files, cfg, "trained") is None  # no federated scores
    write_predictions(files.test_scores, predictions(FED0, FED1))
    write_predictions(files.local_only_scores, predictions(LOC0, LOC1))
    files.local_only_metrics.write_text(
        json.dumps({"models": [{"partition": 0, "n_train": 20}, {"partition": 1, "n_train": 16}]})
    )
    got = retailer_summary(files, cfg, "trained")
    assert got["not_paying"] == ["partition 1"]  # the data moved: partitions by number
    assert [r["local_model"]["n_train"] for r in got["rows"]] == [20, 16]
    assert got["local_privacy"].startswith("the same client-DP budget")
    central = retailer_summary(files, cfg.replace(dp="central"), "trained")
    assert central["local_privacy"].startswith("no DP: a retailer's own model never leaves it")
    text = to_markdown(retailer_blocks({"retailers": central}))
    assert "with the same training and no DP: a retailer's own model never leaves it" in text
    off = retailer_summary(files, cfg, "off: the run setting local-only-models = false")
    assert off["not_paying"] == [] and off["rows"][0]["local_only"] is None
    other = Predictions("purchase", "m", np.array([0]), np.array(["x"]), np.ones(1), np.ones(1))
    write_predictions(files.local_only_scores, other)
    assert "differ in" in retailer_summary(files, cfg, "trained")["failed"]


def test_the_short_table_leaves_out_the_lift_columns():
    header, rows = retailer_table(block(), short=True)
    assert header == [
        "retailer",
        "test customers",
        "base rate",
        "ROC-AUC local-only",
        "ROC-AUC federated",
        "difference (95% CI)",
    ]
    assert rows[0][:5] == ["retailer_00", "5", "40%", "0.667", "1.000"]
    assert not_paying_sentence(block(local=False)) is None
    everyone = not_paying_sentence({**block(), "not_paying": [], "clearly_not_paying": []})
    assert everyone == (
        "Joining pays every retailer on ROC-AUC. Beyond noise (the paired interval excludes "
        "0): no retailer, either way."
    )


def test_the_gain_figure_puts_each_retailer_against_its_size_and_base_rate():
    from fedmarket.reporting.figures import retailer_gains

    got = block()
    for row, n_train in zip(got["rows"], (20, 16), strict=True):
        row["local_model"] = {"n_train": n_train}
    figure = retailer_gains(got)
    by_size, by_rate = figure.axes
    # errorbar draws the points as the first line after the zero line
    x, y = by_size.get_lines()[1].get_data()
    assert list(x) == [20, 16] and list(y) == pytest.approx([1 - 4 / 6, 0.25 - 1])
    assert list(by_rate.get_lines()[1].get_data()[0]) == pytest.approx([40.0, 50.0])
    assert by_size.get_xlabel() == "training customers at the retailer"
    assert [t.get_text() for t in by_size.texts] == ["retailer_00", "retailer_01"]
    assert retailer_gains(block(local=False)) is None
    assert retailer_gains(None) is None


def test_the_personalised_model_gets_a_column_and_a_sentence_each(tmp_path):
    files = RunDir(tmp_path)
    cfg = RunConfig.from_mapping({"data-dir": str(tmp_path / "gone"), "personalisation": "ditto"})
    write_predictions(files.test_scores, predictions(FED0, FED1))
    write_predictions(files.local_only_scores, predictions(LOC0, LOC1))
    write_predictions(files.personal_scores, predictions(FED0, LOC1))
    got = retailer_summary(files, cfg, "trained")
    assert got["personal"] == "ditto"
    text = to_markdown(retailer_blocks({"retailers": got}))
    assert (
        "| lift at 10% local-only | lift at 10% federated | ROC-AUC personalised | "
        "personalised difference (95% CI) |"
    ) in text
    assert "| partition 1 | 4 | 50% | 1.000 | 0.250 | -0.750 (" in text
    assert "| 2.0 | 0.0 | 1.000 | 0.000 (0.000-0.000) |" in text
    assert (
        "it lowers lift at 10% from 2.0 to 0.0. Its personalised model (ditto) gives ROC-AUC "
        "1.000 and lift at 10% 2.0: 0.000 (0.000-0.000) against local-only."
    ) in text
    assert "Every personal step is charged to the retailer's own privacy budget" in text
    # a run without personalisation ignores a stray file; dp='none' claims no budget
    assert "personal" not in retailer_summary(files, cfg.replace(personalisation="none"), "trained")
    plain = retailer_summary(files, cfg.replace(dp="none"), "trained")
    assert "privacy budget" not in to_markdown(retailer_blocks({"retailers": plain}))
