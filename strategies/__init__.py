"""Flower's strategies chosen by name, plus what Flower lacks: per-round reply records.

Import-light on purpose: ``fedmarket.config`` imports ``check_strategy_name`` from here,
and importing flwr's strategies costs about 0.4 s, so the names that need flwr
(``RecordingStrategy``, ``ReplySummary``, ``RoundRecorder``, ``DECLINED_CODE``) load on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from strategies.registry import (
    NUM_EXAMPLES_KEY,
    STRATEGY_NAMES,
    UNIT_WEIGHT_KEY,
    build_strategy,
    check_strategy_name,
    nodes_per_round,
)

if TYPE_CHECKING:
    from strategies.recording import (
        DECLINED_CODE,
        RecordingStrategy,
        ReplySummary,
        RoundRecorder,
    )

_LAZY = {"DECLINED_CODE", "RecordingStrategy", "ReplySummary", "RoundRecorder"}

__all__ = [
    "DECLINED_CODE",
    "NUM_EXAMPLES_KEY",
    "STRATEGY_NAMES",
    "UNIT_WEIGHT_KEY",
    "RecordingStrategy",
    "ReplySummary",
    "RoundRecorder",
    "build_strategy",
    "check_strategy_name",
    "nodes_per_round",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("strategies.recording"), name)
    raise AttributeError(f"module 'strategies' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
