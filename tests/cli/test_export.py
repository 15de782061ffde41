"""`fedmarket export` through the typer app: what it writes and prints, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.output import cli, ok, one_error_line
from tests.scoring.conftest import make_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scoring_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tiny_data, tmp_path_factory.mktemp("export") / "run", centralised={})


def test_export_writes_the_model_and_card_and_prints_the_check(
    scoring_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    text = ok(cli("export", scoring_run, "--format", "torchscript", "--out", out))
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "model_card.json", "model_card.md"]
    card = json.loads((out / "model_card.json").read_text())
    diff = card["export"]["verification"]["max_abs_diff"]
    assert diff <= 1e-5
    assert f"Wrote {out / 'model.pt'}" in text and "RAW features" in text
    assert f"Checked on {card['export']['verification']['customers']:,} test customers" in text
    assert f"{diff:.2g}" in text
    again = ok(
        cli(
            "export",
            scoring_run,
            "--format",
            "torchscript",
            "--out",
            out,
            "--overwrite",
            "--model-source",
            "centralised",
        )
    )
    assert "Wrote" in again
    assert json.loads((out / "model_card.json").read_text())["model"]["source"] == "centralised"


def test_export_refusals_are_one_line(scoring_run: Path, tmp_path: Path) -> None:
    line = one_error_line(cli("export", scoring_run, "--format", "onx", "--out", tmp_path / "o"))
    assert "unknown export format 'onx'; did you mean 'onnx'?" in line
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    line = one_error_line(cli("export", scoring_run, "--out", tmp_path / "full"))
    assert "pass --overwrite" in line
    line = one_error_line(
        cli("export", scoring_run, "--out", tmp_path / "o", "--model-source", "pooled")
    )
    assert "choose one of federated, centralised" in line
    assert not (tmp_path / "o").exists()
