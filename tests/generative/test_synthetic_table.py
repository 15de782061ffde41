"""The shareable table (fedmarket/generative/synthetic_table.py): its columns, their order,
no ids, and a Parquet round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedmarket.errors import DataError
from fedmarket.generative.synthetic_table import (
    clip_to_bounds,
    column_names,
    feature_bounds,
    flatten,
    label_column,
    synthetic_frame,
    write_table,
)


def test_columns_follow_the_flattened_order(tmp_path) -> None:
    seq = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # 2 customers, 3 steps, 2 f
    names = column_names(["views", "spend"], 3)
    assert names == ["views_t00", "spend_t00", "views_t01", "spend_t01", "views_t02", "spend_t02"]
    frame = synthetic_frame(flatten(seq), np.array([1.0, 0.0]), ["views", "spend"], 3, "churn")
    assert list(frame.columns) == [*names, "y_churn"]
    np.testing.assert_array_equal(frame[names].to_numpy().reshape(2, 3, 2), seq)
    back = pd.read_parquet(write_table(frame, tmp_path / "t.parquet"))
    assert back.shape == (2, 7) and list(back.columns) == list(frame.columns)
    assert not any("customer" in c or "id" in c.split("_") for c in back.columns)
    assert back["y_churn"].tolist() == [1, 0]
    assert label_column("churn-inactive") == "y_churn_inactive"


def test_shapes_that_do_not_fit_are_refused() -> None:
    with pytest.raises(DataError, match="do not fit"):
        synthetic_frame(np.zeros((2, 5)), np.zeros(2), ["a", "b"], 3, "purchase")
    with pytest.raises(DataError, match=r"\[customers, steps, features\]"):
        flatten(np.zeros((2, 3)))


def test_bounds_come_from_the_manifest_transform() -> None:
    manifest = {
        "normalisation": {
            "features": ["views", "days_since_last_event"],
            "log1p": ["views"],
            "mean": [1.0, 20.0],
            "std": [2.0, 10.0],
        },
        "window": {"window_days": 56, "step_days": 7},
    }
    low, high = feature_bounds(manifest)
    # views: (log1p(0) - 1) / 2 = -0.5, unbounded above; days: (0 - 20) / 10 and (63 - 20) / 10
    np.testing.assert_allclose(low, [-0.5, -2.0])
    assert high[0] == np.inf and high[1] == pytest.approx(4.3)
    rows = np.array([[-3.0, 9.0, 5.0, -1.0], [0.0, 0.0, 0.0, 0.0]])  # 2 steps x 2 features
    np.testing.assert_allclose(
        clip_to_bounds(rows, (low, high), 2), [[-0.5, 4.3, 5.0, -1.0], [0.0, 0.0, 0.0, 0.0]]
    )
    assert feature_bounds({"kind": "table", **manifest}) is None
    with pytest.raises(DataError, match="bounds for 4"):
        clip_to_bounds(np.zeros((1, 3)), (low, high), 2)
