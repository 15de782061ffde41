"""Flower strategies for fedmarket's aggregation rules, plus per-round reply records.

The adapter floor: this package knows Flower's strategy classes and messages; the rules
themselves and their checks are ``fedmarket.aggregation``.
"""

from strategies.recording import DECLINED_CODE, RecordingStrategy, ReplySummary, RoundRecorder
from strategies.registry import (
    NUM_EXAMPLES_KEY,
    STRATEGIES,
    UNIT_WEIGHT_KEY,
    aggregate_client_metrics,
    build_strategy,
)

__all__ = [
    "DECLINED_CODE",
    "NUM_EXAMPLES_KEY",
    "STRATEGIES",
    "UNIT_WEIGHT_KEY",
    "RecordingStrategy",
    "ReplySummary",
    "RoundRecorder",
    "aggregate_client_metrics",
    "build_strategy",
]
