"""Customer attributes -> model features, fitted on training customers and kept in the manifest
so test, validation and deployment data encode identically.

Columns, in this order (``feature_names``):

* each numeric attribute ``c``, then ``c:missing`` (1.0 where the value is missing) when the
  prepared table has missing values in it (any customer, train or test: whether a column has
  gaps is a fact of the export, and a split must not decide the columns);
* each categorical attribute ``c``: one column ``c=<level>`` per level seen in training data
  (sorted), then ``c:missing`` when the prepared table has missing values in it. A level
  never seen in training encodes as all zeros (counted in the manifest as ``unseen_levels``).

``X`` (what the neural models see, one time step): numeric attributes z-scored with the
training mean and standard deviation (a constant column is only centred), a missing value is 0
(the mean); indicators and one-hot columns are 0/1. ``agg`` (what the classical baselines see):
the same columns unscaled, a missing numeric value imputed with the training mean.
The statistics are pooled over every retailer's training customers, the same aggregates
(means, variances, the set of levels) events' normalisation shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from fedmarket.data.ingest import table as table_io
from fedmarket.errors import DataError

MISSING_SUFFIX: Final[str] = ":missing"


@dataclass(frozen=True)
class TableEncoding:
    """Everything needed to encode a table the way the training data was encoded."""

    numeric: dict[str, tuple[float, float]]  # column -> (train mean, train std)
    categorical: dict[str, tuple[str, ...]]  # column -> training levels, sorted
    missing: tuple[str, ...]  # columns with a ``:missing`` indicator

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for column in self.numeric:
            names += [column] + ([column + MISSING_SUFFIX] if column in self.missing else [])
        for column, levels in self.categorical.items():
            names += [f"{column}={level}" for level in levels]
            names += [column + MISSING_SUFFIX] if column in self.missing else []
        return names

    @classmethod
    def fit(
        cls, train: pd.DataFrame, plan: table_io.ColumnPlan, everyone: pd.DataFrame | None = None
    ) -> TableEncoding:
        """Statistics and levels of the training customers (all retailers' pooled); missing
        indicators for the columns with gaps in ``everyone`` (default: ``train``)."""
        everyone = train if everyone is None else everyone
        if not len(train):
            raise DataError("no training customers to fit the table encoding on")
        numeric: dict[str, tuple[float, float]] = {}
        missing: list[str] = []
        for column in plan.numeric:
            values = table_io.numbers(train[column], column, train)
            present = values[~np.isnan(values)]
            if not len(present):
                raise DataError(
                    f"numeric column {column!r} is empty for every training customer; exclude it"
                )
            numeric[column] = (float(present.mean()), float(present.std()))
            if np.isnan(table_io.numbers(everyone[column], column, everyone)).any():
                missing.append(column)
        categorical: dict[str, tuple[str, ...]] = {}
        for column in plan.categorical:
            text = table_io.levels(train[column])
            categorical[column] = tuple(sorted(str(v) for v in text.dropna().unique()))
            if table_io.levels(everyone[column]).isna().any():
                missing.append(column)
        return cls(numeric, categorical, tuple(missing))

    def encode(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """(X [n, 1, F] float32, agg [n, F] float32, unseen levels per categorical column)."""
        x_cols: list[np.ndarray] = []
        agg_cols: list[np.ndarray] = []
        unseen: dict[str, int] = {}
        for column, (mean, std) in self.numeric.items():
            values = table_io.numbers(rows[column], column, rows)
            gone = np.isnan(values)
            raw = np.where(gone, mean, values)
            x_cols.append((raw - mean) / (std if std > 0 else 1.0))
            agg_cols.append(raw)
            if column in self.missing:
                x_cols.append(gone.astype(float))
                agg_cols.append(gone.astype(float))
        for column, levels in self.categorical.items():
            text = table_io.levels(rows[column])
            hot = np.zeros((len(rows), len(levels)), dtype=bool)
            for j, level in enumerate(levels):
                hot[:, j] = (text == level).to_numpy(dtype=bool)
            gone = text.isna().to_numpy()
            unseen[column] = int((~gone & ~hot.any(axis=1)).sum())
            block = [hot.astype(float)] + ([gone[:, None] * 1.0] if column in self.missing else [])
            columns = [c for b in block for c in b.T]
            x_cols += columns
            agg_cols += columns
        X = np.stack(x_cols, axis=1).astype(np.float32)[:, None, :]
        agg = np.stack(agg_cols, axis=1).astype(np.float32)
        return X, agg, unseen

    def to_manifest(self) -> dict[str, Any]:
        return {
            "numeric": {c: {"mean": m, "std": s} for c, (m, s) in self.numeric.items()},
            "categorical": {c: list(levels) for c, levels in self.categorical.items()},
            "missing_indicators": list(self.missing),
        }

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> TableEncoding:
        """The encoding a prepared table was made with (``manifest["table"]["encoding"]``)."""
        try:
            return cls(
                {c: (float(v["mean"]), float(v["std"])) for c, v in entry["numeric"].items()},
                {c: tuple(map(str, levels)) for c, levels in entry["categorical"].items()},
                tuple(entry["missing_indicators"]),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise DataError(
                f"manifest table encoding is damaged ({exc!r}); re-run `fedmarket data prepare`"
            ) from None
