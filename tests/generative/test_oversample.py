"""GAN minority oversampling (fedmarket/generative/oversample.py): the asked number of finite
minority rows, within the real rows' ranges, deterministic by seed."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.errors import ConfigError, DataError
from fedmarket.generative.oversample import MinorityGAN, gan_oversample
from fedmarket.generative.ssgan import GANConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = GANConfig(epochs=10, batch_size=32)


def imbalanced(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """300 rows, 40 of class 1 around (3, 3, 3), the rest around 0."""
    rng = np.random.default_rng(seed)
    y = np.zeros(300)
    y[:40] = 1.0
    x = rng.normal(size=(300, 3)) + 3.0 * y[:, None]
    return x, y


def test_balances_the_classes_by_default() -> None:
    x, y = imbalanced(0)
    grown = gan_oversample(x, y, cfg=QUICK, seed=0)
    assert grown.minority == 1.0 and grown.n_synthetic == 260 - 40
    assert grown.x.shape == (300 + 220, 3) and grown.y.shape == (520,)
    np.testing.assert_array_equal(grown.x[:300], x)  # the real rows first, unchanged
    np.testing.assert_array_equal(grown.y[300:], 1.0)
    assert (grown.y == 1).sum() == (grown.y == 0).sum() == 260
    synthetic = grown.x[300:]
    assert np.isfinite(synthetic).all()
    low, high = x[y == 1].min(axis=0), x[y == 1].max(axis=0)
    assert ((synthetic >= low - 1e-9) & (synthetic <= high + 1e-9)).all()
    # the generator learned where the minority lies: nearer its mean than the majority's
    assert np.linalg.norm(synthetic.mean(0) - x[y == 1].mean(0)) < 1.5


def test_asked_number_and_determinism() -> None:
    x, y = imbalanced(1)
    a = gan_oversample(x, y, n_synthetic=17, cfg=QUICK, seed=5)
    b = gan_oversample(x, y, n_synthetic=17, cfg=QUICK, seed=5)
    c = gan_oversample(x, y, n_synthetic=17, cfg=QUICK, seed=6)
    assert a.n_synthetic == 17 and len(a.x) == 317
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x[300:], c.x[300:])
    assert gan_oversample(x, y, n_synthetic=0, cfg=QUICK).x.shape == x.shape


def test_minority_gan_sample_sizes() -> None:
    x, _ = imbalanced(2)
    gan = MinorityGAN(QUICK, seed=0).fit(x[:40])
    assert gan.sample(0).shape == (0, 3)
    np.testing.assert_array_equal(gan.sample(5, seed=1), gan.sample(5, seed=1))


def test_bad_input_is_refused() -> None:
    x, y = imbalanced(3)
    with pytest.raises(DataError, match=r"minority class .* 1 training"):
        gan_oversample(x, np.r_[1.0, np.zeros(299)], cfg=QUICK)
    with pytest.raises(DataError, match="0/1 label"):
        gan_oversample(x, y + 0.5, cfg=QUICK)
    with pytest.raises(ConfigError, match="n_synthetic"):
        gan_oversample(x, y, n_synthetic=-1, cfg=QUICK)
    with pytest.raises(DataError, match="call fit"):
        MinorityGAN(QUICK).sample(3)
