"""`fedmarket contribution`: bad input is one error line, before anything trains."""

from __future__ import annotations

from pathlib import Path

from tests.cli.output import cli, one_error_line
from tests.experiments.contribution.test_valuation import finished_run


def test_bad_input_is_one_error_line(tiny_data, tmp_path: Path):
    run = finished_run(tmp_path / "run", tiny_data)
    line = one_error_line(cli("contribution", run, "--method", "shaply"))
    assert "did you mean 'shapley'" in line and "choose one of loo, shapley" in line
    line = one_error_line(cli("contribution", run, "--method", "shapley", "--permutations", "0"))
    assert line == "error: --permutations 0: need at least 1 permutation"
    assert "not a fedmarket run directory" in one_error_line(cli("contribution", tmp_path))
    assert not (run / "contribution").exists()
