"""The negative-binomial count model: its dispersion is a weight, learned with and without DP."""

import math

import numpy as np
import pytest
import torch

from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError
from fedmarket.models import build_model
from fedmarket.models.dispersion import Dispersion
from fedmarket.privacy import PrivacySettings
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit, predict

COUNT = get_task("purchase-count")
NB = {"count_loss": "negative-binomial"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def nb_customers(n: int, alpha: float, seed: int = 0) -> SplitArrays:
    """Counts drawn from NB2 with log-mean 0.2 + 0.6 x0 - 0.4 x1 and dispersion ``alpha``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1, 3)).astype(np.float32)
    mu = np.exp(0.2 + 0.6 * X[:, 0, 0] - 0.4 * X[:, 0, 1])
    y = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu)).astype(np.float32)
    ids = np.array([f"c{i}" for i in range(n)])
    return SplitArrays(X, np.zeros((n, 2), np.float32), (y > 0).astype(np.float32), y, ids)


def glm(dp: bool = False) -> torch.nn.Module:
    """The mlp with no hidden layer: a negative-binomial regression on the features."""
    return build_model("mlp", 3, task="purchase-count", num_layers=0, dp=dp, seed=0, **NB)


def test_dispersion_is_one_weight_starting_at_alpha_one():
    head = Dispersion()
    assert head.alpha == pytest.approx(1.0)
    assert [n for n, _ in head.named_parameters()] == ["log_alpha.weight"]
    np.testing.assert_array_equal(head(torch.zeros(3)).detach().numpy(), [0.0, 0.0, 0.0])
    assert Dispersion(alpha=2.0)(torch.zeros(1)).item() == pytest.approx(math.log(2.0))


@pytest.mark.parametrize("name", ["lstm", "cnn-lstm", "gru", "mlp"])
def test_negative_binomial_models_score_log_mean_and_log_alpha(name):
    hp = {"n_steps": 4} if name == "mlp" else {"hidden_size": 8}
    model = build_model(name, 3, task="purchase-count", seed=1, **hp, **NB)
    assert "dispersion.log_alpha.weight" in model.state_dict()
    score = model(torch.randn(5, 4, 3))
    assert score.shape == (5, 2)
    np.testing.assert_allclose(score[:, 1].detach().numpy(), 0.0)
    poisson = build_model(name, 3, task="purchase-count", seed=1, **hp)
    assert poisson(torch.randn(5, 4, 3)).shape == (5,)
    assert "dispersion.log_alpha.weight" not in poisson.state_dict()


def test_bad_count_loss_is_refused():
    with pytest.raises(ConfigError, match=r"'negative-binomal' is unknown; did you mean"):
        build_model("lstm", 3, task="purchase-count", count_loss="negative-binomal")
    with pytest.raises(ConfigError, match="loss of task 'purchase-count', not of 'purchase'"):
        build_model("lstm", 3, task="purchase", **NB)


@pytest.mark.parametrize("alpha", [0.4, 2.0])
def test_training_recovers_the_dispersion(alpha):
    data = nb_customers(4000, alpha)
    model = glm()
    cfg = TrainConfig(epochs=20, batch_size=100, lr=0.05, lr_schedule="cosine", val_fraction=0)
    fit(model, data, COUNT, cfg)
    assert model.dispersion.alpha == pytest.approx(alpha, rel=0.2)
    weights = model.head.weight.detach().numpy().ravel()
    np.testing.assert_allclose(weights, [0.6, -0.4, 0.0], atol=0.1)
    pred = predict(model, data.X, COUNT, device="cpu")
    assert pred.mean() == pytest.approx(data.y_count.mean(), rel=0.1)


def test_dp_training_trains_the_dispersion_and_loads_into_the_fast_model():
    data = nb_customers(2000, 1.5)
    cfg = TrainConfig(epochs=3, batch_size=100, lr=0.05, lr_schedule="none", val_fraction=0)
    model = glm(dp=True)
    result = fit(model, data, COUNT, cfg, privacy=PrivacySettings(noise_multiplier=1.0))
    assert result.epsilon is not None and result.epsilon > 0
    log_alpha = result.state_dict["dispersion.log_alpha.weight"].item()
    assert log_alpha != 0.0  # clipped, noised and stepped like every other weight
    fast = build_model("lstm", 3, task="purchase-count", hidden_size=4, **NB)
    assert "dispersion.log_alpha.weight" in fast.state_dict()
    plain = glm(dp=False)
    plain.load_state_dict(result.state_dict, strict=True)
    assert plain.dispersion.alpha == pytest.approx(math.exp(log_alpha))
