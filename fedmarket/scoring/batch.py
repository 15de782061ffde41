"""Featurised customers -> one scored row each, and the calibration those scores rely on.

``score_inputs`` is the one place a run's model output becomes the columns a targeting list,
the export's checks and the service report: ``propensity`` (the purchase probability) and, for a
run that trained purchase counts, ``expected_count``.

Purchase-count runs: the model predicts the expected number of purchases ``mu`` in the horizon;
``propensity`` is then ``P(count > 0) = 1 - exp(-mu)``, the Poisson probability of at least one
purchase. Under a negative-binomial model the counts are over-dispersed and the true
``P(count > 0)`` is lower (``1 - (1 + alpha mu)^(-1/alpha)``), so for those runs the propensity
is an upper bound and ranking and the profit rule use ``expected_count`` instead.

Calibration: a selection by expected profit, and the expected buyers and lift of the summary,
take the probabilities at their word. ``calibration_on_test`` measures how far that word holds on
the run's own test customers (its per-customer test predictions), before and after a retailer's
own ``--calibrate`` map fitted on its labelled customers (``fit_local_calibrator``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedmarket.calibration import Calibrator, Reliability, fit_calibrator, reliability
from fedmarket.errors import ConfigError
from fedmarket.predictions import read_predictions
from fedmarket.rundir import RunDir
from fedmarket.scoring.featurise import ScoringInputs
from fedmarket.scoring.run_model import RunModel
from fedmarket.scoring.targeting import SelectionRule, TargetSummary, select, summarise

COUNT_TASK = "purchase-count"
# Above this expected calibration error (on the run's test customers) the summary's expected
# buyers and profit are said to be unreliable, and --calibrate is advised.
ECE_WARNING = 0.05


def is_count(run: RunModel) -> bool:
    return run.task.name == COUNT_TASK


def propensities(
    run: RunModel,
    X: np.ndarray,
    calibrator: Calibrator | None = None,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(P(buy), expected count or None) of normalised inputs ``X``; ``calibrator`` (a
    retailer's own) is applied after the run's; ``predict``: another runtime's
    ``run.predict`` (the service's ONNX model)."""
    out = (predict or run.predict)(X)
    if is_count(run):
        count = np.clip(out, 0.0, None)
        return -np.expm1(-count), count
    p = calibrator.apply(out) if calibrator is not None else out
    return np.clip(p, 0.0, 1.0), None


def score_inputs(
    run: RunModel,
    inputs: ScoringInputs,
    calibrator: Calibrator | None = None,
    *,
    id_column: str = "customer_id",
) -> pd.DataFrame:
    """One row per customer of ``inputs``: retailer, id, propensity (and expected_count)."""
    p, count = propensities(run, inputs.X, calibrator)
    columns = {
        "retailer": np.full(len(inputs), inputs.retailer, dtype=object),
        id_column: np.asarray(inputs.customer).astype(str),
        "propensity": p,
    }
    if count is not None:
        columns["expected_count"] = count
    return pd.DataFrame(columns)


def target_lists(
    scored: pd.DataFrame,
    rule: SelectionRule,
    *,
    id_column: str = "customer_id",
    holdout_fraction: float = 0.0,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, TargetSummary]]:
    """``scored`` with decile, selected, holdout and rank added, each retailer its own
    campaign (its own ranks, selection and control group, seeded by ``seed`` and its name,
    so a retailer gets the same list whether its export is scored alone or with others),
    and each retailer's summary."""
    parts, summaries = [], {}
    for retailer, frame in scored.groupby("retailer", sort=True):
        name = zlib.crc32(str(retailer).encode())
        count = frame["expected_count"].to_numpy() if "expected_count" in frame else None
        picked = select(
            frame["propensity"].to_numpy(),
            frame[id_column].to_numpy(),
            rule,
            expected_count=count,
            holdout_fraction=holdout_fraction,
            seed=int(np.random.SeedSequence([seed, name]).generate_state(1)[0]),
        )
        picked.index = frame.index
        summaries[str(retailer)] = summarise(
            frame["propensity"].to_numpy(), picked, rule, expected_count=count
        )
        parts.append(frame.join(picked[["decile", "selected", "holdout", "rank"]]))
    out = pd.concat(parts).sort_values(["retailer", "rank"], kind="stable")
    return out.reset_index(drop=True), summaries


def fit_local_calibrator(
    run: RunModel, X: np.ndarray, y_purchase: np.ndarray, method: str
) -> Calibrator:
    """``method`` fitted on the retailer's own labelled customers (their purchase in the
    horizon): they never leave the retailer; only the map is used, in this process."""
    if is_count(run):
        raise ConfigError(
            "--calibrate: the run trained purchase counts; calibration maps probabilities "
            "(runs of task purchase)"
        )
    return fit_calibrator((np.asarray(y_purchase) > 0).astype(float), run.predict(X), method)


@dataclass(frozen=True)
class CalibrationCheck:
    """Reliability of the scores on the run's test customers (pooled, all retailers)."""

    n_test: int
    before: Reliability  # the run's own probabilities
    after: Reliability | None  # with the retailer's --calibrate map

    @property
    def ece(self) -> float:
        return (self.after or self.before).ece

    @property
    def high(self) -> bool:
        return self.ece > ECE_WARNING

    def curves(self) -> dict[str, tuple[Sequence[float], Sequence[float]]]:
        out = {"model": (list(self.before.mean_predicted), list(self.before.observed))}
        if self.after is not None:
            out["calibrated here"] = (list(self.after.mean_predicted), list(self.after.observed))
        return out


def calibration_on_test(
    run: RunModel, calibrator: Calibrator | None = None
) -> CalibrationCheck | None:
    """Reliability on the run's test customers, from its per-customer test predictions
    (None when the run kept none). Count runs: P(count > 0) against a purchase."""
    files = RunDir(run.run_dir)
    path = files.test_scores if run.source == "federated" else files.centralised_scores
    if not path.is_file():
        return None
    (pred, *_) = read_predictions(path).values()
    y = (np.asarray(pred.label) > 0).astype(float)
    score = np.asarray(pred.score, dtype=np.float64)
    p = -np.expm1(-np.clip(score, 0, None)) if is_count(run) else np.clip(score, 0, 1)
    after = reliability(y, calibrator.apply(p)) if calibrator is not None else None
    return CalibrationCheck(n_test=len(y), before=reliability(y, p), after=after)
