"""Running the `fedmarket` typer app in-process and reading what it printed."""

from __future__ import annotations

import re

from click.testing import Result
from typer.testing import CliRunner

from fedmarket.cli import app

runner = CliRunner()


def cli(*args: object, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def plain(result: Result) -> str:
    """Output without colour codes (rich adds them where FORCE_COLOR is set, e.g. on CI)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.output)


def ok(result: Result) -> str:
    out = plain(result)
    assert result.exit_code == 0, out
    assert "Traceback" not in out and "error:" not in out
    return out


def one_error_line(result: Result) -> str:
    """Exit 2, no traceback, and the message as the single, last line starting with error:."""
    out = plain(result)
    assert result.exit_code == 2, out
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], out
    return errors[0]


def usage_error(result: Result) -> str:
    """Exit 2, no traceback, and click's usage error: the text of typer's "Error" panel,
    its wrapped lines joined into one."""
    out = plain(result)
    assert result.exit_code == 2, out
    assert "Traceback" not in out and "Usage:" in out, out
    panel = out[out.index("Error") :].splitlines()[1:]
    text = " ".join(line.strip("│╰─╯ ") for line in panel)
    return re.sub(r"\s+", " ", text).strip()
