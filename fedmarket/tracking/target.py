"""Where tracking goes: a tracking URI checked before any heavy work, without importing
MLflow, so a missing extra or a malformed URI is one error line, not a failure after training.

A plain path (``--tracking-uri mlruns``) is a directory holding an SQLite store
(``mlruns/mlflow.db``) and the artefacts (``mlruns/artifacts``). Not MLflow's file store
(``./mlruns`` as files): MLflow deprecated it in 3.x and since 3.13 refuses it unless
$MLFLOW_ALLOW_FILE_STORE is set; SQLite is its default now. The SQLite store needs
SQLAlchemy and Alembic, which mlflow-skinny does not declare: the tracking extra names
them (Flower already installs both), so the full ``mlflow`` package, which would downgrade
pyarrow here, is only needed for ``mlflow ui``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fedmarket.checks import check_writable
from fedmarket.errors import ConfigError

DEFAULT_EXPERIMENT = "fedmarket"
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
INSTALL_HINT = "pip install -e '.[tracking]' (or pip install 'fedmarket[tracking]')"
# Servers and databases MLflow talks to as they are (database URIs may name a driver).
PASSED_ON = ("http", "https", "databricks", "postgresql", "mysql", "mssql")


@dataclass(frozen=True)
class TrackingTarget:
    """A checked tracking URI: ``artifacts`` is where a new experiment keeps its files
    (None: the server's or MLflow's choice)."""

    uri: str
    experiment: str = DEFAULT_EXPERIMENT
    artifacts: str | None = None


def tracking_target(
    uri: str | os.PathLike[str] | None,
    experiment: str = DEFAULT_EXPERIMENT,
    *,
    option: str = "--tracking-uri",
) -> TrackingTarget | None:
    """The tracking URI checked and made absolute, or None (tracking off) for None or "".

    Cheap (MLflow is not imported): commands call it before their heavy work, so a missing
    extra or a malformed URI is one error line, not a failure after training.
    """
    if uri is None or str(uri).strip() == "":
        return None
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(f"{option}: MLflow tracking needs the tracking extra: {INSTALL_HINT}")
    if not experiment or not experiment.strip():
        where = "--experiment" if option.startswith("--") else "experiment"
        raise ConfigError(f"{where}: give an MLflow experiment name, e.g. 'fedmarket'")
    text = os.fspath(uri).strip()
    scheme = urlparse(text).scheme.lower()
    if len(scheme) <= 1:  # a path (or a Windows drive letter)
        return _local_store(Path(text), experiment, option)
    if scheme == "sqlite":
        return _sqlite(text, experiment, option)
    if scheme == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise ConfigError(
                f"{option} {text}: MLflow's file store is deprecated and refused by MLflow "
                "3.13+; give a directory (e.g. --tracking-uri mlruns: an SQLite store in it) "
                "or sqlite:///path/mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true to keep it"
            )
        return TrackingTarget(text, experiment)
    if scheme.split("+")[0] in PASSED_ON:
        if scheme in ("http", "https") and not urlparse(text).netloc:
            raise ConfigError(f"{option} {text}: no host; e.g. http://localhost:5000")
        return TrackingTarget(text, experiment)
    raise ConfigError(
        f"{option} {text}: unknown scheme {scheme!r}; give a directory (mlruns), "
        "sqlite:///path/mlflow.db or a tracking server's http(s)://host:port"
    )


def _local_store(path: Path, experiment: str, option: str) -> TrackingTarget:
    root = path.expanduser().resolve()
    if root.suffix == ".db" or root.is_file():
        return _sqlite(f"sqlite:///{root}", experiment, option)
    if any(root.glob("[0-9]*/meta.yaml")):
        raise ConfigError(
            f"{option} {path}: {root} holds an MLflow file store (deprecated, refused by MLflow "
            f"3.13+); move it to SQLite with `mlflow migrate-filestore --source {root} --target "
            f"sqlite:///{root}.db` and pass sqlite:///{root}.db, or give another directory"
        )
    check_writable(root, option)
    return TrackingTarget(
        f"sqlite:///{root / STORE_FILE}", experiment, (root / ARTIFACTS_DIR).as_uri()
    )


def _sqlite(text: str, experiment: str, option: str) -> TrackingTarget:
    rest = text[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(f"{option} {text}: an SQLite URI is sqlite:///path/to/mlflow.db")
    db = Path(rest[1:]).expanduser().resolve()  # sqlite:///rel.db or sqlite:////abs.db
    check_writable(db.parent, option)
    return TrackingTarget(f"sqlite:///{db}", experiment, (db.parent / ARTIFACTS_DIR).as_uri())
