"""The shareable synthetic customer table: one row per synthetic customer, the flattened
event-feature sequence (T steps x F features, the prepared data's normalised scale) and
the task's 0/1 label. No ids of any kind: a synthetic customer is nobody, and a row
number is the only key.

Columns are ``<feature>_t<step>`` in the order of ``X.reshape(n, T * F)`` (step outer,
feature inner), so ``frame.to_numpy().reshape(n, T, F)`` gives the model's input back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


def feature_bounds(manifest: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Each base feature's possible range on the normalised scale, from the manifest alone:
    every feature is a count, an amount, a price, a ratio or a number of days, so never
    below 0 (``(transform(0) - mean) / std``), and a ``days_since_*`` feature never above
    ``window_days + step_days`` (its "never in the window" value). None where the manifest
    does not describe the transform (a customer table): then nothing is clipped.

    Clipping synthetic rows to these bounds is post-processing with public metadata: it
    costs no privacy, and it puts the mass a Gaussian decoder spreads below "none" back at
    "none", where most real customers are in most time steps.
    """
    norm, window = manifest.get("normalisation"), manifest.get("window")
    if not norm or not window or manifest.get("kind") == "table":
        return None
    features, log1p = list(norm["features"]), set(norm.get("log1p", ()))
    # float32 arithmetic in prepare's order (fedmarket.data.normalise), so a clipped value
    # equals a real customer's "none" exactly, not to the last bit only
    mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
    never = np.float32(window["window_days"] + window["step_days"])
    low = (np.float32(0.0) - mean) / std  # log1p(0) = 0 too
    high = np.full(len(features), np.inf, dtype=np.float32)
    for j, name in enumerate(features):
        if name.startswith("days_since"):
            top = np.log1p(never) if name in log1p else never
            high[j] = (top - mean[j]) / std[j]
    return low, high


def clip_to_bounds(
    x: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], n_steps: int
) -> np.ndarray:
    """Flattened rows [n, T * F] clipped to each base feature's (low, high), every step,
    rounded to float32 as the table stores them."""
    low, high = (np.tile(np.asarray(b, np.float32), n_steps) for b in bounds)
    if np.asarray(x).shape[1] != len(low):
        raise DataError(f"rows of {np.asarray(x).shape[1]} columns, bounds for {len(low)}")
    # in float32, the table's (and the prepared data's) precision
    return np.clip(np.asarray(x, np.float32), low, high).astype(np.float64)
