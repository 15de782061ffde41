from __future__ import annotations

import numpy as np
import pytest
import torch

from fedmarket.errors import ConfigError
from fedmarket.models import build_model
from fedmarket.privacy.config import PrivacySettings
from fedmarket.recommend.data import RecSplit
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = {
    "items": ["a.x", "a.y", "b.z", "b.new"],  # b.new: a new item (only its prefix b is known)
    "n_known_items": 3,
    "tokens": ["<unk>", "a", "a.x", "a.y", "b", "b.z", "brand:q"],
}


def toy_split(n: int = 40, seed: int = 0) -> RecSplit:
    """Customers whose last event's item is the one they buy next: order matters."""
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 3, (n, 5))
    X = np.stack([items, rng.integers(0, 4, (n, 5)), np.full((n, 5), 6)], axis=-1)
    X[:3, :2] = [-1, -1, 0]  # padding at the front
    y = np.zeros((n, 4), np.float32)
    y[np.arange(n), items[:, -1]] = 1
    return RecSplit(X.astype(np.float32), y, np.full(n, 5, np.int32), np.zeros(n, np.int32))


@pytest.mark.parametrize("mode", ["gru-ncf", "gru", "ncf"])
def test_scores_every_item_new_ones_too(mode):
    net = build_model("gru-ncf", 3, task="next-categories", seed=0, vocabulary=VOCAB, mode=mode)
    out = net(torch.from_numpy(toy_split().X[:6]))
    assert out.shape == (6, 4) and torch.isfinite(out).all()


def test_training_is_deterministic_given_the_seed_and_learns_the_order():
    task, cfg = get_task("next-categories"), TrainConfig(epochs=30, batch_size=16, lr=0.01, seed=3)
    states = []
    for _ in range(2):
        net = build_model("gru-ncf", 3, task="next-categories", seed=0, vocabulary=VOCAB)
        result = fit(net, toy_split(), task, cfg)
        states.append(result.state_dict)
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)
    assert result.history[-1]["val_ndcg@10"] > 0.8  # the last item predicts the next


def test_dp_form_trains_a_step_and_loads_into_the_fast_form():
    task, cfg = get_task("next-categories"), TrainConfig(epochs=1, batch_size=8, val_fraction=0)
    net = build_model("gru-ncf", 3, task="next-categories", seed=0, vocabulary=VOCAB, dp=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = fit(
        net, toy_split(16), task, cfg, privacy=PrivacySettings(noise_multiplier=1.0, delta=1e-3)
    )
    assert result.steps == 2 and result.epsilon > 0
    assert any(not torch.equal(before[k], result.state_dict[k]) for k in before)
    assert any("tokens" in k and not torch.equal(before[k], result.state_dict[k]) for k in before)
    fast = build_model("gru-ncf", 3, task="next-categories", vocabulary=VOCAB)
    fast.load_state_dict(result.state_dict, strict=True)


def test_bad_settings():
    with pytest.raises(ConfigError, match="vocabulary"):
        build_model("gru-ncf", 3, task="next-categories")
    with pytest.raises(ConfigError, match="next-categories"):
        build_model("gru-ncf", 3, task="purchase", vocabulary=VOCAB)
    with pytest.raises(ConfigError, match="mode"):
        build_model("gru-ncf", 3, task="next-categories", vocabulary=VOCAB, mode="sasrec")
    with pytest.raises(ConfigError, match="3 values"):
        build_model("gru-ncf", 11, task="next-categories", vocabulary=VOCAB)


def test_the_item_content_is_not_a_weight():
    net = build_model("gru-ncf", 3, task="next-categories", seed=0, vocabulary=VOCAB)
    assert "content" not in net.state_dict()  # never shipped nor averaged by FedAvg
    assert all(v.is_floating_point() for v in net.state_dict().values())
