"""The mlp model: shapes, parameter count, one form for fast and DP training, DP-SGD steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.validators import ModuleValidator
from sklearn.metrics import roc_auc_score

from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.models import build_model, model_hparams
from fedmarket.privacy.config import PrivacySettings
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit

F = 9


def test_defaults_and_parameter_count() -> None:
    assert model_hparams("mlp") == {
        "n_steps": 1,
        "hidden_size": 64,
        "num_layers": 2,
        "dropout": 0.1,
        "base_rate": None,
        "count_loss": "poisson",
    }
    model = build_model("mlp", F)
    # Linear(9 -> 64), Linear(64 -> 64), head Linear(64 -> 1)
    assert sum(p.numel() for p in model.parameters()) == (9 * 64 + 64) + (64 * 64 + 64) + 65


def test_hidden_sizes_are_tunable_and_flatten_all_steps() -> None:
    model = build_model("mlp", F, n_steps=3, hidden_size=5, num_layers=1, seed=0).eval()
    assert model.body[0].in_features == 3 * F
    assert model.body[0].out_features == 5
    x = torch.randn(4, 3, F, generator=torch.Generator().manual_seed(0))
    assert model(x).shape == (4,)
    linear = build_model("mlp", F, num_layers=0)  # logistic regression on the attributes
    assert [type(m) for m in linear.modules()][1:] == [torch.nn.Sequential, torch.nn.Linear]


def test_seeded_forms_are_identical_and_opacus_ready() -> None:
    fast = build_model("mlp", F, seed=3)
    dp = build_model("mlp", F, seed=3, dp=True)
    for key, value in fast.state_dict().items():
        assert torch.equal(value, dp.state_dict()[key])
    assert ModuleValidator.validate(dp, strict=True) == []


def test_head_starts_at_base_rate() -> None:
    model = build_model("mlp", F, base_rate=0.2)
    assert model.head.bias.item() == pytest.approx(np.log(0.2 / 0.8))


def test_wrong_input_shape_says_how_to_fix() -> None:
    model = build_model("mlp", F)
    with pytest.raises(DataError, match=r"\[batch, 1 step\(s\), 9 features\].*n_steps"):
        model(torch.zeros(2, 28, F))


def test_bad_hyper_parameters_are_named() -> None:
    with pytest.raises(ConfigError, match="hidden_size"):
        build_model("mlp", F, hidden_size=0)
    with pytest.raises(ConfigError, match=r"'conv_layers'.*model 'mlp'"):
        build_model("mlp", F, conv_layers=1)


def _table_split(n: int, seed: int) -> SplitArrays:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1, F)).astype(np.float32)
    y = (X[:, 0, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return SplitArrays(X, X[:, 0, :], y, y, np.array([f"c{i}" for i in range(n)]))


def test_trains_under_dp_sgd_and_learns_a_separable_signal() -> None:
    torch.set_num_threads(1)
    train = _table_split(400, 0)
    model = build_model("mlp", F, dp=True, seed=0, hidden_size=16)
    cfg = TrainConfig(epochs=3, batch_size=50, lr=0.01, val_fraction=0.0, device="cpu")
    privacy = PrivacySettings(target_epsilon=8.0, max_grad_norm=1.0, delta=1e-3)
    result = fit(model, train, get_task("purchase"), cfg, privacy=privacy)
    assert 0 < result.epsilon <= 8.0
    test = _table_split(400, 1)
    fast = build_model("mlp", F, hidden_size=16).eval()
    fast.load_state_dict(result.state_dict, strict=True)
    with torch.no_grad():
        scores = fast(torch.from_numpy(test.X)).numpy()
    assert roc_auc_score(test.y_purchase, scores) > 0.8
