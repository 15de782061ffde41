"""How closely synthetic customers resemble real ones, feature by feature and jointly.

* Per feature (each flattened column): the two-sample Kolmogorov-Smirnov statistic (the
  largest gap between the empirical CDFs, 0 = identical, 1 = disjoint) and the 1-Wasserstein
  distance (the mean shift needed to move one distribution onto the other, in the feature's
  unit: here standard deviations of the prepared, normalised scale). scipy's ``ks_2samp``
  and ``wasserstein_distance``.
* Jointly: the Pearson correlation matrices of real and synthetic rows, and the mean and
  largest absolute difference of their off-diagonal entries. A constant column has no
  correlation; it counts as 0 (what a table consumer would see as "unrelated").

A reference makes the numbers readable: the same statistics between two samples of real
customers (training against held-out) show how far apart two real samples already are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import ks_2samp, wasserstein_distance

from fedmarket.errors import DataError


def _pair(real: np.ndarray, synthetic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise DataError(
            f"fidelity: real {real.shape} and synthetic {synthetic.shape} rows must be 2-D "
            "with the same columns"
        )
    if len(real) < 2 or len(synthetic) < 2:
        raise DataError("fidelity: need at least two real and two synthetic rows")
    return real, synthetic


def marginal_distances(real: np.ndarray, synthetic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(KS statistic, Wasserstein distance) per column."""
    real, synthetic = _pair(real, synthetic)
    ks = np.array([ks_2samp(real[:, j], synthetic[:, j]).statistic for j in range(real.shape[1])])
    w = np.array([wasserstein_distance(real[:, j], synthetic[:, j]) for j in range(real.shape[1])])
    return ks, w


def correlations(x: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of the columns; a constant column's entries are 0 (its
    diagonal 1)."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=0)
    norm = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (centred.T @ centred) / np.outer(norm, norm)
    corr = np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def correlation_difference(real: np.ndarray, synthetic: np.ndarray) -> tuple[float, float]:
    """(mean, max) absolute difference of the off-diagonal correlations."""
    real, synthetic = _pair(real, synthetic)
    diff = np.abs(correlations(real) - correlations(synthetic))
    off = diff[~np.eye(len(diff), dtype=bool)]
    return (float(off.mean()), float(off.max())) if off.size else (0.0, 0.0)


@dataclass(frozen=True)
class Fidelity:
    """The statistics of one real/synthetic comparison."""

    columns: tuple[str, ...]
    ks: np.ndarray
    wasserstein: np.ndarray
    corr_mean_abs_diff: float
    corr_max_abs_diff: float

    def summary(self) -> dict[str, float]:
        return {
            "ks_mean": float(self.ks.mean()),
            "ks_median": float(np.median(self.ks)),
            "ks_max": float(self.ks.max()),
            "wasserstein_mean": float(self.wasserstein.mean()),
            "wasserstein_max": float(self.wasserstein.max()),
            "corr_mean_abs_diff": self.corr_mean_abs_diff,
            "corr_max_abs_diff": self.corr_max_abs_diff,
        }

    def to_dict(self) -> dict[str, Any]:
        per = {
            c: {"ks": float(k), "wasserstein": float(w)}
            for c, k, w in zip(self.columns, self.ks, self.wasserstein, strict=True)
        }
        return {**self.summary(), "per_feature": per}


def fidelity(real: np.ndarray, synthetic: np.ndarray, columns: Sequence[str]) -> Fidelity:
    """Every statistic of the module docstring, real against synthetic rows."""
    real, synthetic = _pair(real, synthetic)
    if len(columns) != real.shape[1]:
        raise DataError(f"fidelity: {len(columns)} column names for {real.shape[1]} columns")
    ks, w = marginal_distances(real, synthetic)
    mean_diff, max_diff = correlation_difference(real, synthetic)
    return Fidelity(tuple(columns), ks, w, mean_diff, max_diff)


def fidelity_figure(
    real: np.ndarray,
    synthetic: np.ndarray,
    feature_names: Sequence[str],
    n_steps: int,
    path: Path,
) -> Path:
    """One PNG: each base feature's marginal (all time steps pooled), real against
    synthetic, above the correlation matrices of the flattened columns (real, synthetic,
    absolute difference). matplotlib loads here only."""
    from fedmarket.plots import save_figure, style

    real, synthetic = _pair(real, synthetic)
    n_feat = len(feature_names)
    pooled_r = real.reshape(len(real), n_steps, n_feat).reshape(-1, n_feat)
    pooled_s = synthetic.reshape(len(synthetic), n_steps, n_feat).reshape(-1, n_feat)
    cols = min(n_feat, 6)
    rows = -(-n_feat // cols)
    with style():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(2.2 * cols, 2.0 * rows + 3.6), layout="constrained")
        FigureCanvasAgg(figure)
        top, bottom = figure.subfigures(2, 1, height_ratios=[2.0 * rows, 3.6])
        axes = top.subplots(rows, cols, squeeze=False).ravel()
        for j, name in enumerate(feature_names):
            lo, hi = np.percentile(np.concatenate([pooled_r[:, j], pooled_s[:, j]]), [0.5, 99.5])
            bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40)
            axes[j].hist(pooled_r[:, j], bins, density=True, alpha=0.5, label="real")
            axes[j].hist(pooled_s[:, j], bins, density=True, alpha=0.5, label="synthetic")
            axes[j].set_title(name, fontsize=8)
            axes[j].tick_params(labelsize=6)
        for ax in axes[n_feat:]:
            ax.set_visible(False)
        axes[0].legend(fontsize=6)
        top.suptitle("marginals (every time step pooled; normalised scale)", fontsize=9)
        corr_r, corr_s = correlations(real), correlations(synthetic)
        panels = bottom.subplots(1, 3)
        for ax, matrix, title, cmap, vmin in (
            (panels[0], corr_r, "real", "RdBu_r", -1.0),
            (panels[1], corr_s, "synthetic", "RdBu_r", -1.0),
            (panels[2], np.abs(corr_r - corr_s), "|real - synthetic|", "viridis", 0.0),
        ):
            image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=1.0)
            ax.set_title(f"correlations: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            bottom.colorbar(image, ax=ax, shrink=0.8)
        return save_figure(figure, path)
