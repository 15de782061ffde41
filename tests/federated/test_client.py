import json
import math
import os

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from sklearn.metrics import log_loss, roc_auc_score

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import BudgetExhaustedError, DataError
from fedmarket.federated import client as client_mod
from fedmarket.federated.client import RetailerClient, round_seed
from fedmarket.federated.client_state import PrivacyJournal
from fedmarket.metrics import ONE_TEST_SET_KEYS
from fedmarket.models import build_model
from fedmarket.training import predict
from tests.conftest import TRAIN_METRIC_KEYS, copy_prepared

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(data_dir, **overrides) -> RunConfig:
    return RunConfig.from_mapping({"data-dir": str(data_dir), **overrides})


def manifest(data_dir) -> dict:
    return json.loads((data_dir / "manifest.json").read_text())


def global_weights(cfg: RunConfig, n_features: int) -> dict[str, torch.Tensor]:
    return build_model(cfg.model, n_features, task=cfg.task, seed=cfg.seed).state_dict()


def opacus_epsilon(history, delta: float) -> float:
    """Epsilon recomputed step by step with a fresh Opacus accountant."""
    accountant = RDPAccountant()
    for noise, rate, steps in history:
        for _ in range(steps):
            accountant.step(noise_multiplier=noise, sample_rate=rate)
    return accountant.get_epsilon(delta=delta)


def test_train_returns_the_model_keys_and_partition_size(tiny_data):
    cfg = settings(tiny_data, dp="none")
    client = RetailerClient(cfg, tiny_data, 1)
    start = global_weights(cfg, client.n_features)
    outcome = client.train(start, server_round=1, privacy_state=None)
    assert list(outcome.state_dict) == list(start)  # same keys, same (canonical) order
    for key, tensor in start.items():
        assert outcome.state_dict[key].shape == tensor.shape
        assert outcome.state_dict[key].dtype == torch.float32
    assert any(not torch.equal(outcome.state_dict[k], start[k]) for k in start)  # it trained
    n_train = manifest(tiny_data)["partitions"][1]["train"]["n"]
    assert n_train == len(np.load(tiny_data / "partitions/1/train/customer.npy"))
    assert outcome.metrics["num-examples"] == float(n_train)
    assert outcome.metrics["partition-id"] == 1.0 and outcome.metrics["unit-weight"] == 1.0
    assert outcome.metrics["steps"] == math.ceil(n_train / cfg.batch_size)
    assert outcome.privacy_state is None and "epsilon" not in outcome.metrics
    assert all(type(v) is float for v in outcome.metrics.values())


def test_epsilon_accumulates_over_rounds_and_matches_opacus(tiny_data):
    cfg = settings(tiny_data, **{"num-server-rounds": 3})
    client = RetailerClient(cfg, tiny_data, 0)
    parts = manifest(tiny_data)["partitions"]
    n_train, n_total = parts[0]["train"]["n"], sum(p["train"]["n"] for p in parts)
    weights, state, epsilons = global_weights(cfg, client.n_features), None, []
    for rnd in (1, 2, 3):
        outcome = client.train(weights, rnd, state)
        weights, state = outcome.state_dict, outcome.privacy_state
        epsilons.append(outcome.metrics["epsilon"])
        assert set(outcome.metrics) == TRAIN_METRIC_KEYS
    assert epsilons[0] < epsilons[1] < epsilons[2] <= cfg.target_epsilon
    # the history is Opacus' own: (noise, q, steps), merged over the three rounds
    steps_per_round = math.ceil(n_train / cfg.batch_size)
    delta = 1 / (10 * n_total)  # delta = 0 in the config means 1 / (10 * all training customers)
    noise = get_noise_multiplier(
        target_epsilon=cfg.target_epsilon,
        target_delta=delta,
        sample_rate=1 / steps_per_round,
        steps=3 * steps_per_round,
        accountant="rdp",
    )
    assert state.history == ((pytest.approx(noise), 1 / steps_per_round, 3 * steps_per_round),)
    assert outcome.metrics["delta"] == pytest.approx(delta, rel=1e-12)
    assert outcome.metrics["noise-multiplier"] == pytest.approx(noise)
    assert epsilons[-1] == pytest.approx(opacus_epsilon(state.history, delta), rel=1e-9)
    one_round = ((state.history[0][0], state.history[0][1], steps_per_round),)
    assert epsilons[0] == pytest.approx(opacus_epsilon(one_round, delta), rel=1e-9)


def test_over_budget_round_is_refused_and_changes_nothing(tiny_data):
    # batch-size above the partition size: q = 1, closed-form RDP, no slow calibration
    cfg = settings(tiny_data, **{"num-server-rounds": 2, "batch-size": 256})
    client = RetailerClient(cfg, tiny_data, 2)
    weights, state = global_weights(cfg, client.n_features), None
    for rnd in (1, 2):
        outcome = client.train(weights, rnd, state)
        weights, state = outcome.state_dict, outcome.privacy_state
    before_state = state.to_dict()
    before_weights = {k: v.clone() for k, v in weights.items()}
    with pytest.raises(BudgetExhaustedError, match="budget exhausted"):
        client.train(weights, 3, state)
    assert state.to_dict() == before_state
    assert all(torch.equal(weights[k], before_weights[k]) for k in weights)
    with pytest.raises(BudgetExhaustedError):  # and it stays refused: nothing moved on
        client.train(weights, 3, state)


def test_round_seed_differs_per_client_and_round_and_is_stable():
    seeds = {round_seed(0, p, r) for p in range(3) for r in range(1, 4)}
    assert len(seeds) == 9
    assert round_seed(0, 1, 2) == round_seed(0, 1, 2) and round_seed(0, 1, 2) >= 0
    assert round_seed(1, 1, 2) != round_seed(0, 1, 2)


def without_buyers(tiny_data, tmp_path, partition: int):
    data = copy_prepared(tiny_data, tmp_path / "nobuyers")
    split = store.load_split(data, partition, "test", mmap=False)
    zeros = np.zeros_like(split.y_purchase)
    store.write_split(
        store.split_dir(data, partition, "test"),
        store.SplitArrays(split.X, split.agg, zeros, zeros.copy(), split.customer),
    )
    return data


@pytest.mark.parametrize("task", ["purchase", "purchase-count"])
def test_evaluate_keys_are_identical_across_partitions(tiny_data, tmp_path, task):
    # Flower refuses replies whose metric keys differ, so a retailer without a single
    # buyer among its test customers must still send every key
    data = without_buyers(tiny_data, tmp_path, partition=1)
    cfg = settings(data, dp="none", task=task)
    weights = None
    results = []
    for pid in range(3):
        client = RetailerClient(cfg, data, pid)
        weights = weights or global_weights(cfg, client.n_features)
        results.append(client.evaluate(weights))
    keys = [sorted(r) for r in results]
    assert keys[0] == keys[1] == keys[2]
    assert {"num-examples", "unit-weight", "partition-id"} <= set(keys[0])
    # intervals and counts describe one retailer's test set: they stay at the retailer,
    # where no server averages them into numbers of no test set
    assert set(keys[0]).isdisjoint(ONE_TEST_SET_KEYS)
    assert "roc_auc" in keys[0] if task == "purchase" else "spearman" in keys[0]
    for pid, metrics in enumerate(results):
        assert all(type(v) is float for v in metrics.values())
        assert metrics["num-examples"] == manifest(data)["partitions"][pid]["test"]["n"]
        assert metrics["partition-id"] == pid
    if task == "purchase":
        assert math.isnan(results[1]["roc_auc"])  # undefined without buyers, key still there


def test_evaluate_metrics_match_sklearn(tiny_data):
    cfg = settings(tiny_data, dp="none")
    client = RetailerClient(cfg, tiny_data, 1)
    weights = global_weights(cfg, client.n_features)
    metrics = client.evaluate(weights)
    test = store.load_split(tiny_data, 1, "test", mmap=False)
    model = build_model(cfg.model, client.n_features, task=cfg.task)
    model.load_state_dict(weights)
    prob = predict(model, test.X, client.task)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(test.y_purchase, prob), abs=1e-12)
    assert metrics["log_loss"] == pytest.approx(log_loss(test.y_purchase, prob), rel=1e-6)


def test_partition_is_read_once_per_process(tiny_data, tmp_path, monkeypatch):
    data = copy_prepared(tiny_data, tmp_path / "cache")
    monkeypatch.setattr(client_mod, "_PARTITIONS", {})
    calls = []
    real = store.load_split

    def counting(data_dir, partition, split, *args, **kwargs):
        calls.append((partition, split))
        return real(data_dir, partition, split, *args, **kwargs)

    monkeypatch.setattr(store, "load_split", counting)
    cfg = settings(data, dp="none")
    first = RetailerClient(cfg, data, 0)
    assert sorted(calls) == [(0, "test"), (0, "train")]
    second = RetailerClient(cfg, data, 0)
    assert len(calls) == 2
    assert second.train_split is first.train_split and second.test_split is first.test_split
    RetailerClient(cfg, data, 2)
    assert sorted(calls[2:]) == [(2, "test"), (2, "train")]


def test_data_prepared_again_in_place_is_read_again(tiny_data, tmp_path, monkeypatch):
    """A Ray actor kept for the next run of a session keeps its partitions: the cache is
    keyed by the manifest's version too, so data prepared again at the same path is new."""
    data = copy_prepared(tiny_data, tmp_path / "again")
    monkeypatch.setattr(client_mod, "_PARTITIONS", {})
    cfg = settings(data, dp="none")
    first = RetailerClient(cfg, data, 0)
    manifest = data / store.MANIFEST_NAME
    assert RetailerClient(cfg, data, 0).train_split is first.train_split
    stat = manifest.stat()
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = RetailerClient(cfg, data, 0)
    assert again.train_split is not first.train_split
    np.testing.assert_array_equal(again.train_split.X, first.train_split.X)


def test_missing_partition_files_raise_data_error(tiny_data, tmp_path):
    data = copy_prepared(tiny_data, tmp_path / "broken")
    for path in (data / "partitions/2/train").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"missing X\.npy"):
        RetailerClient(settings(data), data, 2)


def test_the_process_model_is_reused_and_keeps_no_state_between_rounds(tiny_data):
    """The cached model holds exactly the weights it is given: a round trained on the
    reused model equals the same round on a fresh one, with and without DP."""
    for dp in ("none", "client"):
        cfg = settings(tiny_data, dp=dp)
        client = RetailerClient(cfg, tiny_data, 0)
        start = global_weights(cfg, client.n_features)
        first = client.train(start, server_round=1, privacy_state=None)
        other = {k: v + 0.01 for k, v in start.items()}  # a different global model between
        client.train(other, server_round=1, privacy_state=None)
        again = client.train(start, server_round=1, privacy_state=None)
        model = client.model_with(start, dp=dp == "client")
        assert model is client.model_with(start, dp=dp == "client")
        for key, value in first.state_dict.items():
            torch.testing.assert_close(again.state_dict[key], value, rtol=0, atol=0)
        client_mod._MODELS.clear()
        fresh = RetailerClient(cfg, tiny_data, 0).train(start, server_round=1, privacy_state=None)
        for key, value in first.state_dict.items():
            torch.testing.assert_close(fresh.state_dict[key], value, rtol=0, atol=0)


def test_a_failed_round_drops_the_process_model(tiny_data, monkeypatch):
    cfg = settings(tiny_data, dp="client")
    client = RetailerClient(cfg, tiny_data, 0)
    start = global_weights(cfg, client.n_features)
    client.model_with(start, dp=True)
    assert client._model_key(True) in client_mod._MODELS

    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(RetailerClient, "_fit", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        client.train(start, server_round=1, privacy_state=None)
    assert client._model_key(True) not in client_mod._MODELS


def test_a_round_trained_again_after_a_crash_is_bit_identical_and_charged_once(tiny_data):
    """A resumed server asks for the uncommitted round again: on CPU the client releases the
    very same update, so its journal charges the round once and epsilon is the uninterrupted
    run's; a different global model for that round is charged on top."""
    cfg = settings(tiny_data, **{"num-server-rounds": 3})
    client = RetailerClient(cfg, tiny_data, 0)
    journal = PrivacyJournal()
    start = global_weights(cfg, client.n_features)
    one = client.train_round(start, 1, journal)
    two = client.train_round(one.state_dict, 2, journal)
    replay = client.train_round(one.state_dict, 2, journal)  # the crash lost round 2's commit
    assert all(torch.equal(replay.state_dict[k], two.state_dict[k]) for k in start)
    assert replay.metrics["epsilon"] == two.metrics["epsilon"]
    assert journal.latest() == two.privacy_state
    other = client.train_round(start, 2, journal)  # round 2 again from another model
    assert other.privacy_state.steps == two.privacy_state.steps + one.privacy_state.steps
    assert other.metrics["epsilon"] > two.metrics["epsilon"]


def test_a_negative_binomial_round_trains_the_dispersion_under_dp(tiny_data):
    cfg = settings(tiny_data, task="purchase-count", **{"count-loss": "negative-binomial"})
    client = RetailerClient(cfg, tiny_data, 0)
    start = build_model(
        cfg.model, client.n_features, task=cfg.task, seed=cfg.seed, **cfg.model_options()
    ).state_dict()
    outcome = client.train(start, server_round=1, privacy_state=None)
    key = "dispersion.log_alpha.weight"
    assert list(outcome.state_dict) == list(start)
    assert not torch.equal(outcome.state_dict[key], start[key])
    assert outcome.metrics["epsilon"] > 0
    metrics = client.evaluate(outcome.state_dict)
    assert metrics["rmse"] >= 0 and math.isfinite(metrics["mae"])
