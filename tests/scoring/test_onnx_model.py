"""ONNX Runtime scores as PyTorch does, alone and through batch scoring's ``propensities``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmarket.scoring.batch import propensities
from fedmarket.scoring.run_model import load_run_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.mark.slow  # the in-memory export takes ~30 s on a loaded 2-core machine
def test_onnx_scores_equal_pytorch_scores(scoring_run: Path) -> None:
    from fedmarket.scoring.onnx_model import OnnxModel

    run = load_run_model(scoring_run)
    model = OnnxModel(run)
    assert model.max_abs_diff <= 1e-5
    rng = np.random.default_rng(3)
    for n in (1, 5, 300):
        X = rng.normal(size=(n, *run.input_shape)).astype(np.float32)
        np.testing.assert_allclose(model.predict(X), run.predict(X), rtol=0, atol=1e-5)
        raw = model.predict(X, calibrated=False)
        np.testing.assert_allclose(raw, run.predict(X, calibrated=False), rtol=0, atol=1e-5)
        p, count = propensities(run, X, predict=model.predict)
        p_torch, count_torch = propensities(run, X)
        np.testing.assert_allclose(p, p_torch, rtol=0, atol=1e-5)
        assert count is None and count_torch is None
