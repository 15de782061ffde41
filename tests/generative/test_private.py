"""The GAN classifier under DP-SGD on its discriminator (fedmarket/generative/private.py):
epsilon within the target and reported, deterministic by seed, still better than chance.
Slow: Opacus' per-sample gradients make each step several times dearer (about 30 s here on
a loaded 2-core machine)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedmarket.errors import ConfigError
from fedmarket.generative.rows import run_generative_baselines
from fedmarket.generative.ssgan import GANConfig, SSGANClassifier
from fedmarket.privacy.config import PrivacySettings
from tests.generative.test_rows import split
from tests.generative.test_ssgan import separable

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

QUICK = GANConfig(epochs=3, batch_size=100, lr=1e-2)


def test_epsilon_spent_within_target_and_deterministic() -> None:
    x, y = separable(500, 0)
    x_test, y_test = separable(300, 1)
    privacy = PrivacySettings(target_epsilon=8.0)
    a = SSGANClassifier(QUICK, seed=2, privacy=privacy).fit(x, y)
    b = SSGANClassifier(QUICK, seed=2, privacy=privacy).fit(x, y)
    assert 6.0 < a.epsilon <= 8.0 and a.delta == pytest.approx(1 / (10 * 500))
    np.testing.assert_array_equal(a.predict_proba(x_test), b.predict_proba(x_test))
    assert roc_auc_score(y_test, a.predict_proba(x_test)[:, 1]) > 0.7


def test_private_row_reports_epsilon() -> None:
    rows = run_generative_baselines(
        split(300, 0), split(150, 1), task="churn", seed=0, models=["ssgan"], cfg=QUICK, epsilon=4.0
    )
    assert [r.model for r in rows] == ["ssgan", "ssgan-dp"]
    private = rows[1].metrics
    assert 0 < private["epsilon"] <= 4.0 and private["delta"] == pytest.approx(1 / 3000)
    assert "epsilon" in rows[1].notes and "epsilon" not in rows[0].metrics
    with pytest.raises(ConfigError, match="target_epsilon"):
        run_generative_baselines(split(50, 2), split(20, 3), task="churn", seed=0, epsilon=-1.0)
