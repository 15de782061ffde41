"""The semi-supervised GAN classifier (fedmarket/generative/ssgan.py): deterministic by seed,
better than chance on a separable set, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fedmarket.errors import ConfigError, DataError
from fedmarket.generative.ssgan import GANConfig, SSGANClassifier, unsupervised_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = GANConfig(epochs=8, batch_size=64)


def separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Column 0 decides the class (with a little noise); the other columns are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0.5).astype(np.float64)
    return x, y


def test_beats_chance_on_a_separable_set() -> None:
    x, y = separable(400, 0)
    x_test, y_test = separable(300, 1)
    model = SSGANClassifier(QUICK, seed=0).fit(x, y)
    proba = model.predict_proba(x_test)
    assert proba.shape == (300, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert roc_auc_score(y_test, proba[:, 1]) > 0.85
    assert list(model.classes_) == [0.0, 1.0]


def test_same_seed_same_probabilities_other_seed_other() -> None:
    x, y = separable(200, 2)
    torch.manual_seed(123)  # the global state must not matter
    a = SSGANClassifier(QUICK, seed=3).fit(x, y).predict_proba(x)
    torch.manual_seed(999)
    b = SSGANClassifier(QUICK, seed=3).fit(x, y).predict_proba(x)
    c = SSGANClassifier(QUICK, seed=4).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def testunsupervised_loss_hand_computed() -> None:
    # logits 0, 0: Z = 2, D = 2/3: -log D = log 1.5; fake logits log 1, log 1 -> Z = 2,
    # -log(1 - D) = log 3
    real = torch.zeros(1, 2)
    fake = torch.zeros(1, 2)
    expected = np.log(1.5) + np.log(3.0)
    assert float(unsupervised_loss(real, fake)) == pytest.approx(expected, rel=1e-6)


def test_bad_input_is_refused() -> None:
    x, y = separable(50, 3)
    with pytest.raises(DataError, match="single class"):
        SSGANClassifier(QUICK).fit(x, np.zeros(50))
    with pytest.raises(DataError, match="0/1 label"):
        SSGANClassifier(QUICK).fit(x, y * 2)
    with pytest.raises(DataError, match="NaN or infinite"):
        SSGANClassifier(QUICK).fit(np.where(x > 2, np.nan, x), y)
    with pytest.raises(DataError, match="2-D"):
        SSGANClassifier(QUICK).fit(x[:, 0], y)
    with pytest.raises(DataError, match="call fit"):
        SSGANClassifier(QUICK).predict_proba(x)
    with pytest.raises(ConfigError, match="epochs"):
        GANConfig(epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        GANConfig(lr=-1.0)
