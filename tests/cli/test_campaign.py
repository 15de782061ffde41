"""`fedmarket campaign-report` on a constructed later export with a known effect."""

from __future__ import annotations

from pathlib import Path

from tests.cli.output import cli, ok, one_error_line
from tests.experiments.test_campaign import export, targets  # noqa: F401  (fixture)


def test_report_prints_rates_interval_and_p_value(tmp_path: Path, export: Path) -> None:  # noqa: F811
    text = ok(cli("campaign-report", targets(tmp_path / "t.csv"), "--raw", export))
    for piece in ("30.0% bought", "10.0% bought", "+20.0 points", "3.00x", "Newcombe", "Fisher"):
        assert piece in text, piece
    assert "u000" not in text  # no customer id is printed


def test_refusals(tmp_path: Path, export: Path) -> None:  # noqa: F811
    bare = targets(tmp_path / "t.csv", holdout=False)
    assert "no control group" in one_error_line(cli("campaign-report", bare, "--raw", export))
    result = cli("campaign-report", tmp_path / "none.csv", "--raw", export)
    assert "no such targeting list" in one_error_line(result)
