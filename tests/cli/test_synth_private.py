"""`fedmarket synth-private` on the command line: bad input is one error line before any
training; a tiny run through a run directory writes in RUN_DIR/synthetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.output import cli, ok, one_error_line


def test_unknown_run_directory_is_one_error_line(tmp_path: Path) -> None:
    line = one_error_line(cli("synth-private", tmp_path / "no-such-run"))
    assert "not a fedmarket run directory" in line


def test_epsilon_must_be_positive(tiny_data: Path, tmp_path: Path) -> None:
    line = one_error_line(
        cli("synth-private", "--data", tiny_data, "--out", tmp_path, "--epsilon", "0")
    )
    assert "epsilon" in line
    assert not any(tmp_path.iterdir())  # nothing written


def test_an_earlier_table_is_refused_before_training(tiny_data: Path, tmp_path: Path) -> None:
    table = tmp_path / "synthetic_customers.parquet"
    table.write_bytes(b"earlier")
    line = one_error_line(cli("synth-private", "--data", tiny_data, "--out", tmp_path))
    assert "already holds synthetic_customers.parquet" in line and "--overwrite" in line
    assert table.read_bytes() == b"earlier"  # untouched


def test_data_needs_out(tiny_data: Path) -> None:
    assert "--out" in one_error_line(cli("synth-private", "--data", tiny_data))


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_run_directory_gives_data_and_task(tiny_data: Path, tmp_path: Path) -> None:
    from fedmarket.config import RunConfig
    from fedmarket.rundir import RunDir

    run = tmp_path / "run"
    cfg = RunConfig.from_mapping({"data-dir": str(tiny_data), "task": "churn"})
    RunDir(run).write_config(cfg)
    out = ok(
        cli("synth-private", run, "--rounds", "1", "--local-epochs", "1", "--epsilon", "8",
            "--customers", "100", "--threads", "1")
    )  # fmt: skip
    assert "ROC-AUC" in out and "ε per retailer" in out
    assert (run / "synthetic" / "synthetic_customers.parquet").is_file()
    assert "the churn label" in (run / "synthetic" / "synth_report.md").read_text()
