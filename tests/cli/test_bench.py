"""`fedmarket bench`'s goals table (the stages' own tests: tests/experiments/bench/)."""

from rich.console import Console

from fedmarket.cli.bench import _goals_table
from fedmarket.experiments.bench.goal_stages import PFL_SKIPPED, goal_notes
from fedmarket.experiments.bench.goals import judge


def test_a_skipped_pfl_stage_shows_the_extra_to_install_not_markup():
    report = {
        "pfl": {"skipped": PFL_SKIPPED},
        "load_at_start": "1.0 1.0 1.0",
        "load_at_end": "2.0 1.0 1.0",
    }
    report["goals"] = judge({"fedmarket_over_quickstart_wall": 0.9}, goal_notes(report))
    console = Console(record=True, width=200)
    console.print(_goals_table(report))
    text = console.export_text()
    assert "skipped: install fedmarket[compare]" in text
    assert "0.90x" in text and "not met" in text
