"""``fedmarket.compare``: the CLI's paired comparison as a typed result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fedmarket
from fedmarket.errors import ConfigError
from tests.cli.output import cli, ok


@pytest.fixture(scope="module")
def baselines(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-compare") / "base"
    ok(cli("baselines", "--data", tiny_data, "--out", out, "--sequence-models", ""))
    return out


def test_compare_is_the_compare_command(baselines: Path, tmp_path: Path) -> None:
    result = fedmarket.compare(
        baselines, baselines, a="logistic-regression", b="bg-nbd", metrics="roc_auc,pr_auc"
    )
    assert list(result.table["metric"]) == ["roc_auc", "pr_auc"]
    assert list(result.table["method"]) == ["delong", "bootstrap"]
    row = result.table.iloc[0]
    assert row["difference"] == pytest.approx(row["a"] - row["b"])
    assert row["low"] <= row["difference"] <= row["high"]
    assert result.customers == result.positives + result.negatives > 0
    out = tmp_path / "cmp.json"
    options = ["--a", "logistic-regression", "--b", "bg-nbd", "--metric", "roc_auc,pr_auc"]
    ok(cli("compare", baselines, baselines, *options, "--out", out))
    assert json.loads(out.read_text()) == result.record
    assert repr(result).startswith(f"Comparison(A - B on {result.customers:,} customers: roc_auc")


def test_compare_refuses_as_the_command_does(baselines: Path) -> None:
    with pytest.raises(ConfigError):
        fedmarket.compare(baselines, baselines, a="logistic-regression", b="logistic-regression")
