import json

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression

from fedmarket.calibration import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
    reliability,
)
from fedmarket.errors import ConfigError, DataError


def test_ece_by_hand():
    # one customer in each of bins 0, 1, 8 and 9: gaps 0.05, 0.85, 0.85, 0.05
    y, p = [0, 1, 0, 1], [0.05, 0.15, 0.85, 0.95]
    assert expected_calibration_error(y, p) == pytest.approx(0.45)
    # one bin holding all four: |0.5 - 0.5| = 0
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(0.0)


def test_reliability_matches_sklearn_calibration_curve():
    rng = np.random.default_rng(0)
    p = rng.beta(1, 4, size=3000)
    p[:3] = [0.0, 1.0, 0.5]  # the edges fall where sklearn puts them
    y = rng.binomial(1, p)
    table = reliability(y, p)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    full = table.count > 0
    np.testing.assert_allclose(table.observed[full], prob_true, rtol=1e-12)
    np.testing.assert_allclose(table.mean_predicted[full], prob_pred, rtol=1e-12)
    assert table.count.sum() == len(y)
    expected = np.sum(table.count[full] * np.abs(prob_true - prob_pred)) / len(y)
    assert table.ece == pytest.approx(expected)


def miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw probabilities whose truth is expit(2 logit(p) + 0.5): too timid, too low."""
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(-1.5, 0.7, size=n))
    return rng.binomial(1, expit(2 * logit(p) + 0.5)).astype(float), p


def test_platt_recovers_the_distortion_and_lowers_ece_on_fresh_customers():
    calib = fit_calibrator(*miscalibrated(20_000, seed=1), method="platt")
    assert calib.params["slope"] == pytest.approx(2.0, abs=0.1)
    assert calib.params["intercept"] == pytest.approx(0.5, abs=0.1)
    y, p = miscalibrated(20_000, seed=2)
    before, after = expected_calibration_error(y, p), expected_calibration_error(y, calib.apply(p))
    assert before > 0.05 and after < 0.01


def test_isotonic_applies_as_sklearn_predicts_and_survives_a_round_trip(tmp_path):
    y, p = miscalibrated(5000, seed=3)
    calib = fit_calibrator(y, p, method="isotonic")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    fresh = np.concatenate([miscalibrated(1000, seed=4)[1], [0.0, 1.0]])
    np.testing.assert_allclose(calib.apply(fresh), iso.predict(fresh), atol=1e-12)
    loaded = Calibrator.load(calib.save(tmp_path / "calibration.json"))
    assert loaded == calib and loaded.n_fitted == 5000
    np.testing.assert_array_equal(loaded.apply(fresh), calib.apply(fresh))


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="unknown calibration method 'plat'; did you mean"):
        fit_calibrator([0, 1], [0.2, 0.8], method="plat")
    with pytest.raises(DataError, match="all non-buyers; calibration needs both"):
        fit_calibrator([0, 0], [0.2, 0.8])
    with pytest.raises(DataError, match=r"probabilities must lie in \[0, 1\]"):
        expected_calibration_error([0, 1], [-0.5, 2.0])
    with pytest.raises(DataError, match="labels must be 0 or 1"):
        expected_calibration_error([0, 3], [0.1, 0.2])
    with pytest.raises(DataError, match="2 labels and 1 probabilities"):
        expected_calibration_error([0, 1], [0.1])


def test_a_file_that_is_not_a_calibration_is_a_data_error(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"method": "platt"}))
    with pytest.raises(DataError, match="not a calibration file"):
        Calibrator.load(path)
