"""`fedmarket tradeoff`: its --run-config is checked before the sweep, and its help lists the
run settings, saying which ones the sweep sets itself."""

from __future__ import annotations

from pathlib import Path

from fedmarket.cli.tradeoff import SET_BY_THE_SWEEP
from fedmarket.config import DEFAULTS, format_overrides
from fedmarket.experiments.tradeoff import RESERVED_KEYS
from tests.cli.output import cli, ok, one_error_line, usage_error


def test_the_help_names_what_the_sweep_sets():
    """The CLI keeps its own copy (the experiment imports torch); it must stay the same."""
    assert set(SET_BY_THE_SWEEP) == set(RESERVED_KEYS)


def test_help_lists_every_run_setting_with_its_default():
    text = ok(cli("tradeoff", "--help", env={"COLUMNS": "200"}))
    entries = dict([*line.split(maxsplit=1), ""][:2] for line in text.splitlines() if line.strip())
    for key, value in DEFAULTS.items():
        assert entries.get(format_overrides({key: value}), "").strip(), key
    assert entries[format_overrides({"seed": 0})].strip() == SET_BY_THE_SWEEP["seed"]


def test_a_bare_word_is_one_error_line_before_the_sweep(tmp_path: Path):
    line = one_error_line(cli("tradeoff", "--out", tmp_path / "o", "--run-config", "model=gru"))
    assert line == (
        "error: tradeoff --run-config: model=gru: a string must be quoted, as flwr reads "
        "TOML: model='gru'"
    )
    assert not (tmp_path / "o").exists()


def test_an_option_the_sweep_sets_is_not_pointed_to_run_config():
    assert usage_error(cli("tradeoff", "--out", "o", "--seed", "1")) == (
        "No such option '--seed'. Did you mean '--seeds'?"
    )
    assert usage_error(cli("tradeoff", "--out", "o", "--local-epoch", "2")) == (
        "No such option '--local-epoch'. Run settings are set with --run-config, e.g. "
        '--run-config "local-epochs=2" or "personal-epochs=2".'
    )
