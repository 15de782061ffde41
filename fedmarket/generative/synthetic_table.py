"""The shareable synthetic customer table: one row per synthetic customer, the flattened
event-feature sequence (T steps x F features, the prepared data's normalised scale) and
the task's 0/1 label. No ids of any kind: a synthetic customer is nobody, and a row
number is the only key.

Columns are ``<feature>_t<step>`` in the order of ``X.reshape(n, T * F)`` (step outer,
feature inner), so ``frame.to_numpy().reshape(n, T, F)`` gives the model's input back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fedmarket.errors import DataError


def label_column(task: str) -> str:
    """``y_purchase``, ``y_churn``, ``y_churn_inactive``: the store's spelling of labels."""
    return "y_" + task.replace("-", "_")


def column_names(feature_names: Sequence[str], n_steps: int) -> list[str]:
    """``views_t00, carts_t00, ..., views_t01, ...``: one per flattened feature."""
    if n_steps < 1 or not feature_names:
        raise DataError(f"need at least one step and one feature, got {n_steps}, {feature_names}")
    width = max(2, len(str(n_steps - 1)))
    return [f"{name}_t{t:0{width}d}" for t in range(n_steps) for name in feature_names]


def flatten(x: np.ndarray) -> np.ndarray:
    """[n, T, F] sequences -> [n, T * F] rows (float64), in ``column_names`` order."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise DataError(f"expected sequences [customers, steps, features], got shape {x.shape}")
    return x.reshape(len(x), -1)


def synthetic_frame(
    x: np.ndarray, y: np.ndarray, feature_names: Sequence[str], n_steps: int, task: str
) -> pd.DataFrame:
    """The table: flattened features (float32, as the prepared data stores them) and the
    label (int8 0/1), in that column order."""
    columns = column_names(feature_names, n_steps)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != len(columns) or y.shape != (len(x),):
        raise DataError(
            f"synthetic rows {x.shape} and labels {y.shape} do not fit {len(columns)} columns "
            f"({n_steps} steps x {len(feature_names)} features)"
        )
    frame = pd.DataFrame(x.astype(np.float32), columns=columns)
    frame[label_column(task)] = y.astype(np.int8)
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Parquet, without the pandas index (a row number would be the only id anyway)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path
