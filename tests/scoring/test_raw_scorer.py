from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedmarket.calibration import Calibrator
from fedmarket.data import store
from fedmarket.data.features import FEATURE_NAMES
from fedmarket.data.normalise import NormStats
from fedmarket.errors import ConfigError, DataError
from fedmarket.scoring.raw_scorer import (
    RawScorer,
    calibration_module,
    check_exportable_features,
    raw_features,
)
from fedmarket.scoring.run_model import load_run_model


@pytest.fixture(scope="module")
def raw(tiny_data: Path) -> np.ndarray:
    norm = NormStats.from_dict(store.read_manifest(tiny_data)["normalisation"])
    return raw_features(norm, np.asarray(store.load_split(tiny_data, 0, "test").X))


def test_raw_features_invert_the_stored_normalisation(tiny_data: Path, raw: np.ndarray) -> None:
    norm = NormStats.from_dict(store.read_manifest(tiny_data)["normalisation"])
    X = np.asarray(store.load_split(tiny_data, 0, "test").X)
    assert raw.dtype == np.float32 and raw.min() >= 0
    np.testing.assert_allclose(norm.apply(raw), X, atol=2e-5)
    # counts come back as whole numbers (views in column 0 are counts of events)
    views = raw[..., FEATURE_NAMES.index("views")]
    np.testing.assert_allclose(views, np.round(views), atol=1e-3)


def test_folded_normalisation_is_normstats_apply(scoring_run: Path, raw: np.ndarray) -> None:
    run = load_run_model(scoring_run)
    scorer = RawScorer.from_run(run)
    folded = scorer.normalise(torch.from_numpy(raw)).numpy()
    np.testing.assert_allclose(folded, run.norm.apply(raw), rtol=0, atol=1e-6)
    assert scorer.mean.dtype == torch.float32 and scorer.log1p_mask.sum() == 9


def test_scorer_is_normalisation_model_and_link(scoring_run: Path, raw: np.ndarray) -> None:
    run = load_run_model(scoring_run)
    with torch.no_grad():
        got = RawScorer.from_run(run)(torch.from_numpy(raw)).numpy()
    assert got.dtype == np.float32 and got.shape == (len(raw),)
    np.testing.assert_allclose(got, run.predict(run.norm.apply(raw)), rtol=0, atol=1e-7)


def test_platt_is_folded_as_calibrator_apply() -> None:
    cal = Calibrator("platt", {"slope": 0.6, "intercept": -0.4}, 50)
    p = np.array([0.0, 1e-9, 0.02, 0.3, 0.5, 0.97, 1 - 1e-9, 1.0])
    got = calibration_module(cal)(torch.tensor(p)).numpy()
    np.testing.assert_allclose(got, cal.apply(p), rtol=0, atol=1e-12)
    # by hand at 0.5: logit 0 -> sigmoid(-0.4)
    assert got[4] == pytest.approx(1 / (1 + np.exp(0.4)))


def test_isotonic_is_folded_as_the_interpolation_sklearn_applies() -> None:
    cal = Calibrator("isotonic", {"x": [0.1, 0.2, 0.6, 0.9], "y": [0.0, 0.25, 0.25, 0.8]}, 50)
    p = np.array([0.0, 0.1, 0.15, 0.2, 0.4, 0.6, 0.75, 0.9, 0.95, 1.0])
    got = calibration_module(cal)(torch.tensor(p)).numpy()
    # by hand: below 0.1 -> 0, halfway 0.1..0.2 -> 0.125, flat to 0.6, 0.75 -> 0.525, above -> 0.8
    expected = [0.0, 0.0, 0.125, 0.25, 0.25, 0.25, 0.525, 0.8, 0.8, 0.8]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got, cal.apply(p), atol=1e-12)
    one = Calibrator("isotonic", {"x": [0.3], "y": [0.4]}, 5)
    assert calibration_module(one)(torch.tensor([0.1, 0.9])).tolist() == [0.4, 0.4]


def test_broken_isotonic_thresholds_are_refused() -> None:
    cal = Calibrator("isotonic", {"x": [0.2, 0.2], "y": [0.1, 0.3]}, 5)
    with pytest.raises(DataError, match="strictly increasing"):
        calibration_module(cal)


def test_attribute_columns_are_refused(scoring_run: Path) -> None:
    run = load_run_model(scoring_run)
    manifest = {**run.manifest, "feature_names": [*run.feature_names, "age_band"]}
    with pytest.raises(ConfigError, match="1 attribute column"):
        check_exportable_features(type(run)(**{**run.__dict__, "manifest": manifest}))
