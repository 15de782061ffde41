"""Tracking targets: a URI checked before any heavy work, without importing MLflow."""

from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path

import pytest

from fedmarket.errors import ConfigError
from fedmarket.tracking import (
    NullTracker,
    open_tracker,
    tracking_target,
)


def test_tracking_is_off_without_a_uri():
    assert tracking_target(None) is None and tracking_target("") is None
    assert isinstance(open_tracker(None), NullTracker)


def test_a_plain_path_is_an_sqlite_store_with_its_artefacts_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    target = tracking_target("mlruns", "mine")
    assert target is not None and target.experiment == "mine"
    assert target.uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert target.artifacts == (tmp_path / "mlruns" / "artifacts").as_uri()
    db = tracking_target("sqlite:///other/x.db")
    assert db is not None and db.uri == f"sqlite:///{tmp_path / 'other' / 'x.db'}"
    server = tracking_target("http://localhost:5000")
    assert server is not None and server.uri == "http://localhost:5000" and not server.artifacts


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("http://", "no host"),
        ("sqlite://", "sqlite:///path/to/mlflow.db"),
        ("file:///tmp/mlruns", "MLflow's file store is deprecated"),
    ],
)
def test_a_bad_uri_is_a_clear_error(uri: str, message: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ConfigError, match="--tracking-uri") as raised:
        tracking_target(uri)
    assert message in str(raised.value)


def test_a_store_under_a_file_is_refused(tmp_path: Path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        tracking_target(tmp_path / "f" / "mlruns")


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(ConfigError) as raised:
        tracking_target("mlruns")
    assert "needs the tracking extra" in str(raised.value)
    assert "pip install -e '.[tracking]'" in str(raised.value)
    real_import = builtins.__import__

    def no_mlflow(name: str, *args: object, **kwargs: object) -> object:
        if name == "mlflow" or name.startswith("mlflow."):
            raise ModuleNotFoundError("No module named 'mlflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    assert tracking_target(None) is None  # off needs no MLflow
