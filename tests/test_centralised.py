"""The centralised reference's learning curve: per-epoch loss on the test customers where
nothing is selected on them, and the same trained model as without it."""

from __future__ import annotations

import pytest
import torch

from fedmarket.centralised import run_centralised, write_centralised
from fedmarket.data import store
from fedmarket.models import build_model
from fedmarket.rundir import read_scores
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_without_validation_the_test_loss_is_recorded_and_changes_nothing(tiny_data, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, val_fraction=0.0, device="cpu")
    result = run_centralised(tiny_data, model="lstm", task="purchase", train_cfg=cfg)
    assert [sorted(k for k in row if "loss" in k) for row in result.history] == [
        ["test_loss", "train_loss"]
    ] * 2
    # the loss on the test customers after the last epoch is the reported log loss
    assert result.history[-1]["test_loss"] == pytest.approx(result.test["log_loss"], rel=1e-4)
    paths = write_centralised(result, tmp_path)
    y, score = read_scores(paths["test_scores"])
    assert len(y) == result.n_test and paths["learning_curve"].stat().st_size > 0
    assert score == pytest.approx(result.test_scores[1], rel=1e-6)
    # watching the test loss trains the same model as not watching it
    manifest = store.read_manifest(tiny_data)
    net = build_model("lstm", store.n_features(manifest), task="purchase", seed=cfg.seed)
    unwatched = fit(net, store.load_pooled(tiny_data, "train"), get_task("purchase"), cfg)
    for key, value in result.state_dict.items():
        assert torch.equal(unwatched.state_dict[key], value), key


def test_with_a_validation_split_the_test_customers_stay_unseen(tiny_data):
    cfg = TrainConfig(epochs=2, batch_size=64, val_fraction=0.2, patience=1, device="cpu")
    result = run_centralised(tiny_data, model="lstm", task="purchase", train_cfg=cfg)
    assert all("val_loss" in row and "test_loss" not in row for row in result.history)
