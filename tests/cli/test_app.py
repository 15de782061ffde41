"""The `fedmarket` app itself: its options before any command."""

from __future__ import annotations

import fedmarket
from tests.cli.output import cli, ok


def test_version_prints_the_package_version_and_exits():
    assert ok(cli("--version")) == f"fedmarket {fedmarket.__version__}\n"


def test_version_comes_before_the_missing_command_check():
    """Eager, as --help is: no command is needed, and a command after it does not run."""
    assert ok(cli("--version", "simulate", "--run-config", "num-server-rounds=0")).startswith(
        "fedmarket "
    )
