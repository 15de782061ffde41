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


def test_calibration_is_fitted_on_validation_customers_and_saved(tiny_data, tmp_path):
    import numpy as np

    from fedmarket.calibration import Calibrator, expected_calibration_error, fit_calibrator
    from fedmarket.rundir import CALIBRATION
    from fedmarket.training import predict, validation_customers

    cfg = TrainConfig(epochs=1, batch_size=64, val_fraction=0.3, device="cpu")
    raw = run_centralised(tiny_data, model="lstm", task="purchase", train_cfg=cfg)
    result = run_centralised(
        tiny_data, model="lstm", task="purchase", train_cfg=cfg, calibrate="platt"
    )
    # the same model; the map is the one the validation customers give
    train = store.load_pooled(tiny_data, "train")
    val = validation_customers(train, cfg)
    assert len(val) == round(0.3 * len(train))
    net = build_model("lstm", train.X.shape[2], task="purchase")
    net.load_state_dict(result.state_dict)
    expected = fit_calibrator(val.y_purchase, predict(net, val.X, get_task("purchase")))
    assert result.calibrator == expected
    y_test, p_raw = raw.test_scores
    np.testing.assert_allclose(result.test_scores[1], expected.apply(p_raw), rtol=1e-9)
    cal = result.calibration
    assert cal["test_ece_before"] == pytest.approx(expected_calibration_error(y_test, p_raw))
    assert cal["test_ece_after"] == pytest.approx(result.test["ece"])
    assert result.to_dict()["calibration"]["method"] == "platt"
    paths = write_centralised(result, tmp_path)
    assert paths["calibration"] == tmp_path / CALIBRATION
    assert Calibrator.load(paths["calibration"]) == expected
    assert paths["reliability"].stat().st_size > 0
    table = cal["test_reliability"]["after"]
    assert sum(table["count"]) == result.n_test


@pytest.mark.parametrize(
    ("task", "val_fraction", "method", "message"),
    [
        ("purchase-count", 0.2, "platt", "task 'purchase-count' predicts counts"),
        ("purchase", 0.0, "platt", "needs validation customers"),
        ("purchase", 0.2, "isotonc", "unknown calibration method 'isotonc'; did you mean"),
    ],
)
def test_calibration_settings_are_checked_before_training(
    tiny_data, task, val_fraction, method, message
):
    from fedmarket.errors import ConfigError

    cfg = TrainConfig(epochs=1, batch_size=64, val_fraction=val_fraction, device="cpu")
    with pytest.raises(ConfigError, match=message):
        run_centralised(tiny_data, model="lstm", task=task, train_cfg=cfg, calibrate=method)
