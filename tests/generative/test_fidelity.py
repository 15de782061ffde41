"""Fidelity statistics (fedmarket/generative/fidelity.py) against values worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.errors import DataError
from fedmarket.generative.fidelity import (
    correlation_difference,
    correlations,
    fidelity,
    fidelity_figure,
    marginal_distances,
)


def test_ks_and_wasserstein_by_hand() -> None:
    real = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0]])
    synthetic = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    ks, w = marginal_distances(real, synthetic)
    # column 0: the CDFs differ by 1/3 on [0, 3); each point moves by 1. Column 1: identical
    np.testing.assert_allclose(ks, [1 / 3, 0.0])
    np.testing.assert_allclose(w, [1.0, 0.0])


def test_correlation_difference_by_hand() -> None:
    real = np.array([[1.0, 2.0, 7.0], [2.0, 4.0, 7.0], [3.0, 6.0, 7.0]])  # r01 = +1
    synthetic = np.array([[1.0, 6.0, 7.0], [2.0, 4.0, 7.0], [3.0, 2.0, 7.0]])  # r01 = -1
    # the constant third column correlates with nothing (0), its diagonal stays 1
    np.testing.assert_allclose(correlations(real), [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    mean, largest = correlation_difference(real, synthetic)
    assert largest == pytest.approx(2.0)
    assert mean == pytest.approx(2 * 2.0 / 6)  # two of six off-diagonal entries differ by 2


def test_fidelity_summary_and_per_feature(tmp_path) -> None:
    rng = np.random.default_rng(0)
    real, synthetic = rng.normal(size=(200, 6)), rng.normal(size=(150, 6)) + 0.5
    report = fidelity(real, synthetic, [f"f{i}" for i in range(6)]).to_dict()
    assert set(report["per_feature"]) == {f"f{i}" for i in range(6)}
    assert 0.1 < report["ks_mean"] < 0.4 and 0.3 < report["wasserstein_mean"] < 0.7
    path = fidelity_figure(real, synthetic, ["a", "b", "c"], 2, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mismatched_or_tiny_inputs_are_refused() -> None:
    with pytest.raises(DataError, match="same columns"):
        marginal_distances(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(DataError, match="two real and two synthetic"):
        correlation_difference(np.zeros((1, 2)), np.zeros((3, 2)))
    with pytest.raises(DataError, match="column names"):
        fidelity(np.zeros((3, 2)), np.ones((3, 2)), ["only-one"])
