"""Calibrated purchase propensities: how far a probability is from the rate it claims, and a
post-hoc correction fitted on validation customers.

Targeting by expected profit multiplies a probability by a margin, so a model that ranks well
(ROC-AUC) but says 0.3 where 15% buy sends the wrong number of offers. The expected
calibration error (ECE) measures that: customers are binned by predicted probability (ten
equal-width bins) and ECE is the customers' share-weighted gap between each bin's mean
probability and its observed buy rate (Naeini et al. 2015; Guo et al. 2017).

A ``Calibrator`` maps raw probabilities to calibrated ones: Platt scaling (a logistic
regression on the logit, two numbers) or isotonic regression (a monotone step function,
scikit-learn's ``IsotonicRegression``). It is fitted on validation customers only, never on
the test customers it is judged on, and saved as JSON next to the model it corrects
(``rundir.CALIBRATION``), so scoring applies the same map.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedmarket.errors import ConfigError, DataError
from fedmarket.names import did_you_mean

CALIBRATION_METHODS: tuple[str, ...] = ("platt", "isotonic")
N_BINS = 10
# probabilities are kept inside (EPS, 1 - EPS) before the logit, so 0 and 1 stay finite
EPS = 1e-6


def _checked(y: object, p: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if len(y_arr) != len(p_arr) or len(y_arr) == 0:
        raise DataError(
            f"{where}: {len(y_arr)} labels and {len(p_arr)} probabilities; "
            "give one probability per customer, at least one customer"
        )
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise DataError(f"{where}: labels must be 0 or 1 (buys in the horizon or not)")
    if not (np.isfinite(p_arr) & (p_arr >= 0) & (p_arr <= 1)).all():
        raise DataError(
            f"{where}: probabilities must lie in [0, 1]; pass probabilities, not logits or counts"
        )
    return y_arr, p_arr


@dataclass(frozen=True)
class Reliability:
    """Per bin of predicted probability: customers, mean probability, observed buy rate
    (NaN in an empty bin). The data of a reliability diagram."""

    edges: np.ndarray
    count: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists (JSON: an empty bin's NaN as null through ``rundir.json_safe``)."""
        return {
            "edges": self.edges.tolist(),
            "count": self.count.tolist(),
            "mean_predicted": self.mean_predicted.tolist(),
            "observed": self.observed.tolist(),
        }

    @property
    def ece(self) -> float:
        full = self.count > 0
        gap = np.abs(self.observed[full] - self.mean_predicted[full])
        return float(np.sum(self.count[full] * gap) / self.count.sum())


def reliability(y_true: object, y_prob: object, *, n_bins: int = N_BINS) -> Reliability:
    """``n_bins`` equal-width bins over [0, 1], as sklearn's
    ``calibration_curve(strategy="uniform")`` bins them (a value on an edge in the lower bin)."""
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigError(f"reliability: n_bins must be an integer >= 1, got {n_bins!r}")
    y, p = _checked(y_true, y_prob, "reliability")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], p)  # as sklearn: an edge belongs to the bin below
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=n_bins) / count
        observed = np.bincount(which, weights=y, minlength=n_bins) / count
    return Reliability(edges, count.astype(np.int64), mean_p, observed)


def expected_calibration_error(y_true: object, y_prob: object, *, n_bins: int = N_BINS) -> float:
    """ECE: sum over bins of (customers in bin / customers) x |buy rate - mean probability|."""
    return reliability(y_true, y_prob, n_bins=n_bins).ece


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw to calibrated probabilities; build with ``fit_calibrator``."""

    method: str
    params: dict[str, Any] = field(repr=False)
    n_fitted: int = 0  # validation customers it was fitted on

    def apply(self, y_prob: object) -> np.ndarray:
        """Calibrated probabilities, float64, one per input probability."""
        p = np.clip(np.asarray(y_prob, dtype=np.float64), 0.0, 1.0)
        if self.method == "platt":
            from scipy.special import expit, logit  # not in every client actor's start

            z = logit(np.clip(p, EPS, 1 - EPS))
            return expit(self.params["slope"] * z + self.params["intercept"])
        # isotonic with out_of_bounds="clip" is linear interpolation between its thresholds
        return np.interp(p, self.params["x"], self.params["y"])

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "n_fitted": self.n_fitted, "params": self.params}

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Calibrator:
        try:
            data = json.loads(path.read_text())
            return cls(_method(data["method"]), dict(data["params"]), int(data["n_fitted"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path}: not a calibration file ({exc}); fit one again with --calibrate"
            ) from None


def _method(method: object) -> str:
    if method not in CALIBRATION_METHODS:
        raise ConfigError(
            f"unknown calibration method {method!r}; {did_you_mean(method, CALIBRATION_METHODS)}"
            f"known: {', '.join(CALIBRATION_METHODS)}"
        )
    return str(method)


def fit_calibrator(y_val: object, p_val: object, method: str = "platt") -> Calibrator:
    """Fit ``method`` on validation customers' labels and raw probabilities.

    Both classes must be present. Platt's logistic regression is unpenalised (two numbers,
    nothing to regularise); isotonic is clipped to [0, 1] and outside the fitted range.
    """
    method = _method(method)
    y, p = _checked(y_val, p_val, "calibration")
    if np.unique(y).size < 2:
        raise DataError(
            f"calibration: the {len(y)} validation customers are all "
            f"{'buyers' if y[0] else 'non-buyers'}; calibration needs both"
        )
    if method == "platt":
        from scipy.special import logit  # fitting only: not at start-up
        from sklearn.linear_model import LogisticRegression

        z = logit(np.clip(p, EPS, 1 - EPS)).reshape(-1, 1)

        lr = LogisticRegression(C=np.inf).fit(z, y)  # unpenalised
        params = {"slope": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])}
    else:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        params = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    return Calibrator(method, params, len(y))
