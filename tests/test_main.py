"""``python -m fedmarket`` is the ``fedmarket`` console script's app (pyproject's
[project.scripts]): the same commands, the same exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import fedmarket
from fedmarket.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "fedmarket", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )  # fmt: skip


def test_the_console_script_is_the_app_main_runs() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"fedmarket": "fedmarket.cli:app"}


def test_python_m_fedmarket_lists_every_command() -> None:
    result = _module("--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m fedmarket [OPTIONS] COMMAND [ARGS]..." in result.stdout
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert names and all(f" {name} " in result.stdout for name in names)


def test_python_m_fedmarket_version_and_usage_errors() -> None:
    assert _module("--version").stdout == f"fedmarket {fedmarket.__version__}\n"
    wrong = _module("simulat")
    assert wrong.returncode == 2 and "Did you mean 'simulate'?" in wrong.stderr
