"""`fedmarket compare` on tiny real results: a centralised model against the baselines, both
kinds of one simulate-like run directory, the refusal of different test customers, --out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from fedmarket.predictions import read_predictions
from fedmarket.rundir import BASELINE_SCORES, RunDir
from tests.cli.output import cli, ok, one_error_line
from tests.conftest import pseudonyms


@pytest.fixture(scope="module")
def results(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`fedmarket centralised` (lstm, one epoch) and `fedmarket baselines` (the classical
    models and lstm, one epoch) on the same prepared data."""
    root = tmp_path_factory.mktemp("compare")
    quick = ["--epochs", "1", "--seed", "1", "--threads", "1"]
    cen, base = root / "cen", root / "base"
    ok(cli("centralised", "--data", tiny_data, "--out", cen, "--model", "lstm", *quick))
    ok(cli("baselines", "--data", tiny_data, "--out", base, "--sequence-models", "lstm", *quick))
    return {"cen": cen, "base": base}


def test_every_baseline_keeps_its_prediction_per_pseudonymised_customer(
    results: dict[str, Path], tiny_data: Path
) -> None:
    table = {r["model"]: r for r in json.loads((results["base"] / "baselines.json").read_text())}
    models = read_predictions(results["base"] / BASELINE_SCORES)
    assert set(models) == {m for m, r in table.items() if r["metrics"]} and "lstm" in models
    known = pseudonyms(tiny_data)
    for name, p in models.items():
        assert p.task == "purchase" and set(p.customer) <= known
        auc = roc_auc_score(p.label, p.score)
        assert auc == pytest.approx(table[name]["metrics"]["roc_auc"], abs=1e-6), name
    cen = read_predictions(results["cen"] / "test_scores.csv")["lstm"]
    assert cen.customer.tolist() == models["lstm"].customer.tolist()


def test_a_centralised_model_against_a_baseline(results: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    printed = ok(
        cli(
            "compare",
            results["cen"],
            results["base"],
            "--b",
            "logistic-regression",
            "--out",
            out,
            "--bootstrap",
            "300",
        )
    )
    saved = json.loads(out.read_text())
    metrics = json.loads((results["cen"] / "metrics.json").read_text())["test"]
    table = {r["model"]: r for r in json.loads((results["base"] / "baselines.json").read_text())}
    [auc, pr, lift] = saved["metrics"]
    assert (saved["a"]["kind"], saved["b"]["kind"]) == ("centralised", "logistic-regression")
    assert auc["a"] == pytest.approx(metrics["roc_auc"], abs=1e-6)
    assert auc["b"] == pytest.approx(table["logistic-regression"]["metrics"]["roc_auc"], abs=1e-6)
    assert pr["b"] == pytest.approx(table["logistic-regression"]["metrics"]["pr_auc"], abs=1e-6)
    assert lift["metric"] == "lift_at_10" and lift["low"] <= lift["difference"] <= lift["high"]
    assert saved["customers"] == saved["positives"] + saved["negatives"] == metrics["n"]
    for word in ("roc_auc", "pr_auc", "lift_at_10", "95% interval", "p-value", "test customers"):
        assert word in printed
    assert f"{saved['customers']:,} test customers in both" in printed
    assert ("fewer than 30 buyers or non-buyers" in printed) == saved["small_test"]
    assert f"wrote {out}" in printed


def test_two_kinds_of_one_run_directory(results: dict[str, Path], tmp_path: Path) -> None:
    """A run directory whose federated and centralised scores are the same: a difference of
    0 with a degenerate interval, printed without NaN."""
    run = RunDir(tmp_path / "run")
    run.centralised.mkdir(parents=True)
    run.config.write_text("{}")
    for target in (run.test_scores, run.centralised_scores):
        shutil.copy(results["cen"] / "test_scores.csv", target)
    printed = ok(cli("compare", run.path, run.path, "--b", "centralised", "--metric", "roc_auc"))
    row = next(line for line in printed.splitlines() if "roc_auc" in line)
    assert "+0.0000 to +0.0000" in row and row.rstrip(" │").endswith("1") and "nan" not in printed
    line = one_error_line(cli("compare", run.path, run.path))
    assert "the same result" in line and "--a federated --b centralised" in line


def test_the_federated_model_against_the_runs_bg_nbd_anchor(
    results: dict[str, Path], tiny_data: Path, tmp_path: Path
) -> None:
    from fedmarket.anchors.in_run import fit_run_anchor
    from fedmarket.config import RunConfig

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config.write_text("{}")
    shutil.copy(results["cen"] / "test_scores.csv", run.test_scores)
    cfg = RunConfig.from_mapping({"data-dir": str(tiny_data), "dp": "none"})
    anchor = fit_run_anchor(cfg, run.anchor_scores)
    out = tmp_path / "cmp.json"
    args = ("--a", "federated", "--b", "bg-nbd", "--metric", "roc_auc", "--out", out)
    printed = ok(cli("compare", run.path, run.path, *args))
    [auc] = json.loads(out.read_text())["metrics"]
    assert auc["b"] == pytest.approx(anchor.test["roc_auc"], abs=1e-9)
    assert "B = bg-nbd" in " ".join(printed.split())


def test_different_test_customers_are_refused(results: dict[str, Path], tmp_path: Path) -> None:
    other = shutil.copytree(results["cen"], tmp_path / "other")
    lines = (other / "test_scores.csv").read_text().splitlines(keepends=True)
    (other / "test_scores.csv").write_text("".join(lines[:-4]))
    line = one_error_line(cli("compare", results["cen"], other))
    n = len(lines) - 1
    assert f"{n - 4} in both, 4 only in A" in line and "0 only in B" in line
    assert "prepare the data once" in line
    line = one_error_line(cli("compare", results["cen"], results["base"], "--metric", "rmse"))
    assert "name one with --b" in line  # several baselines, none named
    line = one_error_line(
        cli("compare", results["cen"], results["base"], "--b", "knn", "--metric", "rmse")
    )
    assert "--metric rmse: not a metric of task 'purchase'" in line


def test_compare_has_a_one_line_help() -> None:
    printed = ok(cli("--help"))
    assert "compare" in printed and "Paired difference of two results" in printed


def test_an_out_that_cannot_be_written_is_refused_first(
    results: dict[str, Path], tmp_path: Path
) -> None:
    line = one_error_line(cli("compare", results["cen"], results["cen"], "--out", tmp_path))
    assert "a directory; give a file name" in line
    (tmp_path / "file").write_text("")
    line = one_error_line(
        cli("compare", results["cen"], results["base"], "--out", tmp_path / "file" / "x.json")
    )
    assert "is a file, not a directory" in line
