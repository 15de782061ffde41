"""The floors of DESIGN.md, checked on the import graph (import-linter's contracts in
pyproject.toml), and shown to fail on the imports they forbid."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fedmarket", "clients", "server", "strategies")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Drivers and adapters read like Flower's examples: no function longer than a screen.
THIN_FLOORS = (
    "clients",
    "server",
    "strategies",
    "fedmarket/experiments",
    "fedmarket/cli",
    "fedmarket/api",
)
MAX_FUNCTION_LINES = 60


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _floor(layer: str) -> set[str]:
    """The modules of one layer: ``a : b`` (may import each other) or ``a | b`` (may not)."""
    return {name.strip() for part in layer.split("|") for name in part.split(":")}


def _library_floor() -> set[str]:
    bottom = _contracts()["fedmarket-floors"]["layers"][-1]
    return {f"fedmarket.{name}" for name in _floor(bottom)}


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_every_library_module_is_forbidden_flower():
    """The flwr contract names exactly the modules of the library floor."""
    assert set(_contracts()["library-knows-no-flower"]["source_modules"]) == _library_floor()


def test_every_fedmarket_module_is_on_a_floor():
    children = {
        p.stem if p.suffix == ".py" else p.name
        for p in (ROOT / "fedmarket").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    placed = set().union(*map(_floor, _contracts()["fedmarket-floors"]["layers"]))
    assert children == placed
    assert {"cli", "api", "experiments"} <= placed


def _copy_tree(dest: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(
    ("file", "line", "contract"),
    [
        ("fedmarket/metrics.py", "import flwr  # noqa", "The library imports no Flower"),
        ("fedmarket/tasks.py", "import strategies  # noqa", "The library imports no Flower"),
        (
            "fedmarket/training.py",
            "import fedmarket.experiments.simulate  # noqa",
            "fedmarket: CLI | API > experiments > library",
        ),
        (
            "fedmarket/experiments/simulate.py",
            "import fedmarket.cli  # noqa",
            "fedmarket: CLI | API > experiments > library",
        ),
        (
            "fedmarket/experiments/tradeoff/sweep.py",
            "import fedmarket.api  # noqa",
            "fedmarket: CLI | API > experiments > library",
        ),
        # the CLI and the Python API are siblings: each calls the floors below, not the other
        (
            "fedmarket/api/runs.py",
            "import fedmarket.cli.simulate  # noqa",
            "fedmarket: CLI | API > experiments > library",
        ),
        (
            "fedmarket/cli/simulate.py",
            "import fedmarket.api  # noqa",
            "fedmarket: CLI | API > experiments > library",
        ),
        # the package finds the API by name at run time: an import would tie every floor to it
        (
            "fedmarket/__init__.py",
            "from fedmarket.api import simulate  # noqa",
            "fedmarket: CLI | API > experiments > library",
        ),
        ("strategies/registry.py", "import server.app  # noqa", "Flower adapters"),
        ("clients/app.py", "import server.app  # noqa", "Flower adapters"),
    ],
)
def test_an_upward_import_breaks_a_contract(tmp_path, file, line, contract):
    _copy_tree(tmp_path)
    _append(tmp_path / file, line)
    result = _lint(tmp_path)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout


def test_a_module_off_every_floor_breaks_the_exhaustive_contract(tmp_path):
    _copy_tree(tmp_path)
    (tmp_path / "fedmarket" / "stray.py").write_text('"""A module on no floor."""\n')
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "fedmarket.stray" in result.stdout


def _function_lengths(path: Path) -> list[tuple[str, int]]:
    """(name, lines) of each function's body, from its first statement after the docstring:
    a typer command's signature is its options table, and nested functions count apart."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if len(body) > 1 and isinstance(body[0], ast.Expr):
                body = body[1:]  # the docstring
            nested = sum(
                child.end_lineno - child.lineno + 1
                for child in body
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            )
            out.append((node.name, node.end_lineno - body[0].lineno + 1 - nested))
    return out


def test_apps_and_drivers_have_no_function_longer_than_a_screen():
    too_long = [
        f"{path.relative_to(ROOT)}:{name} ({lines} lines)"
        for floor in THIN_FLOORS
        for path in sorted((ROOT / floor).rglob("*.py"))
        for name, lines in _function_lengths(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not too_long, too_long
