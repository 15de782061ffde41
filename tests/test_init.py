"""The package itself: ``import fedmarket`` stays light, the API's names load on first use,
and ``__version__`` is the distribution's."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import fedmarket
import fedmarket.api

ROOT = Path(__file__).resolve().parents[1]


def test_importing_fedmarket_loads_no_torch_flower_or_ray():
    code = (
        "import fedmarket, sys; "
        "print('torch' in sys.modules, 'flwr' in sys.modules, 'ray' in sys.modules, "
        "'fedmarket.api' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False", "False"]


def test_the_lazy_names_are_the_apis_and_resolve_to_it():
    assert set(fedmarket.api.__all__) == fedmarket._API_NAMES
    for name in fedmarket.api.__all__:
        assert getattr(fedmarket, name) is getattr(fedmarket.api, name)
    assert set(fedmarket.api.__all__) <= set(dir(fedmarket))


def test_no_api_name_is_a_fedmarket_module():
    """Importing a submodule sets the package attribute of its name, so an API function
    called like a module (``centralised``, ``baselines``) would be replaced by the module
    as soon as anything imported it."""
    import fedmarket.baselines
    import fedmarket.centralised

    modules = {p.stem if p.suffix == ".py" else p.name for p in (ROOT / "fedmarket").iterdir()}
    assert not fedmarket._API_NAMES & modules
    assert callable(fedmarket.train_centralised) and callable(fedmarket.compare_baselines)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'simulte'"):
        fedmarket.simulte  # noqa: B018


def test_version_is_the_installed_distributions():
    assert fedmarket.__version__ == importlib.metadata.version("fedmarket")


def test_version_outside_an_install_is_pyprojects(monkeypatch):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert fedmarket._version() == declared
