"""The README's Python API example runs as printed (in a temporary directory)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

import fedmarket
from fedmarket.data.protect.keys import PSEUDONYM_KEY_ENV

ROOT = Path(__file__).resolve().parents[1]


def python_api_example() -> str:
    """The first python block of the README's "## Python API" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "README.md: no python block under '## Python API'"
    return blocks[0]


def test_the_example_is_short_and_uses_the_api():
    lines = [line for line in python_api_example().splitlines() if line.strip()]
    assert len(lines) <= 7
    assert any(line.startswith("run = simulate(") for line in lines)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_the_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # mkdtemp() lands under tmp_path
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the per-user key
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    namespace: dict = {}
    exec(compile(python_api_example(), "README.md (Python API)", "exec"), namespace)
    run = namespace["run"]
    assert isinstance(run, fedmarket.RunResult) and run.run_dir.is_relative_to(tmp_path)
    assert run.problems == [] and run.summary["config"]["num-server-rounds"] == 1
    assert (run.run_dir / "report.md").is_file() and (run.run_dir / "report.html").is_file()
    assert f"{run.gap['roc_auc']}" in capsys.readouterr().out
