"""fedmarket: federated, differentially private consumer-behaviour prediction.

``import fedmarket`` gives the Python API (``fedmarket.api``: ``synth``, ``prepare``,
``simulate``, ``train_centralised``, ``compare_baselines``, ``compare``, ``tradeoff``,
``ray_session`` and their result types) and ``__version__``. The API loads on first use of
one of its names (PEP 562), so importing the package costs no torch, Flower or Ray: the CLI
and every library module import it first, and `fedmarket --help` must stay fast. The lookup is
by name at run time, not an import statement, so the floors' contracts see no edge from the
package to the API.
"""

from __future__ import annotations

import importlib
from typing import Any

# What ``fedmarket.api`` exports; a test keeps this equal to its ``__all__``.
_API_NAMES = frozenset(
    {
        "BaselinesResult",
        "CentralisedRun",
        "Comparison",
        "PreparedData",
        "RunResult",
        "SyntheticData",
        "TradeoffResult",
        "compare",
        "compare_baselines",
        "prepare",
        "ray_session",
        "simulate",
        "synth",
        "tradeoff",
        "train_centralised",
    }
)


def _version() -> str:
    """The installed distribution's version; in a source tree that is not installed, the
    one pyproject.toml declares (the same number, read from where it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fedmarket")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__ = _version()
__all__ = ["__version__", *sorted(_API_NAMES)]


def __getattr__(name: str) -> Any:
    if name in _API_NAMES:
        value = getattr(importlib.import_module("fedmarket.api"), name)
        globals()[name] = value  # found once; later lookups are plain attributes
        return value
    raise AttributeError(f"module 'fedmarket' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API_NAMES})
