"""The local-only models: exactly a retailer's own training customers, the run's training
settings, and under client DP the budget a client of the run spends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.federated.client import RetailerClient
from fedmarket.federated.client_state import PrivacyJournal, save_accountant
from fedmarket.predictions import read_predictions
from fedmarket.privacy.accounting import (
    AccountantState,
    calibrate_noise,
    epsilon_after,
    sample_rate,
    steps_per_epoch,
)
from fedmarket.rundir import RunDir
from fedmarket.value.local_only import (
    clients_noise,
    local_seed,
    run_local_only,
    train_local_model,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"model": "gru", "num-server-rounds": 2, "local-epochs": 1, "batch-size": 32}


def config(data, **changes) -> RunConfig:
    return RunConfig.from_mapping({**FAST, "data-dir": str(data), **changes})


def test_each_model_trains_on_its_partitions_customers_alone(tiny_data):
    cfg = config(tiny_data, dp="none")
    manifest = store.read_manifest(tiny_data)
    part = manifest["partitions"][1]
    model, scored = train_local_model(cfg, tiny_data, 1)
    assert (model.partition, model.n_train, model.n_test) == (
        1,
        part["train"]["n"],
        part["test"]["n"],
    )
    assert model.epochs == cfg.total_epochs == 2
    assert model.steps == 2 * steps_per_epoch(part["train"]["n"], 32)
    assert model.epsilon is None and model.noise_multiplier is None
    test = store.load_split(tiny_data, 1, "test")
    assert scored.partition.tolist() == [1] * part["test"]["n"]
    assert scored.customer.tolist() == np.asarray(test.customer).astype(str).tolist()
    assert scored.label.tolist() == test.y_purchase.astype(float).tolist()
    assert ((scored.score > 0) & (scored.score < 1)).all()


def test_under_client_dp_the_budget_is_a_clients(tiny_data):
    """The noise calibrated for the run's steps at this retailer's sampling rate, and the
    epsilon the accountant gives for that many steps at that noise: the target, spent, not
    exceeded."""
    cfg = config(tiny_data)
    manifest = store.read_manifest(tiny_data)
    n, n_all = manifest["partitions"][0]["train"]["n"], store.n_train_total(manifest)
    delta = cfg.client_delta(n_all)
    steps = 2 * steps_per_epoch(n, 32)
    noise = calibrate_noise(8.0, delta, sample_rate(n, 32), steps)
    model, _ = train_local_model(cfg, tiny_data, 0)
    assert model.steps == steps and model.delta == delta
    assert model.noise_multiplier == noise
    spent = epsilon_after(AccountantState("rdp"), noise, sample_rate(n, 32), steps, delta)
    assert model.epsilon == pytest.approx(spent, rel=1e-12)
    assert 7.9 < model.epsilon <= 8.0


def test_the_budget_equals_what_the_runs_client_spends(tiny_data):
    """Client 0 of the run over its two rounds: the same noise and the same epsilon."""
    cfg = config(tiny_data)
    model, _ = train_local_model(cfg, tiny_data, 0)
    client = RetailerClient(cfg, tiny_data, 0)
    journal, weights = PrivacyJournal(), client.new_model(dp=True).state_dict()
    for rnd in (1, 2):
        outcome = client.train_round(weights, rnd, journal)
        weights = outcome.state_dict
    assert outcome.metrics["noise-multiplier"] == model.noise_multiplier
    assert outcome.metrics["epsilon"] == pytest.approx(model.epsilon, rel=1e-12)


def test_a_fixed_noise_multiplier_is_kept(tiny_data):
    cfg = config(tiny_data, **{"target-epsilon": 0.0, "noise-multiplier": 1.5})
    model, _ = train_local_model(cfg, tiny_data, 2)
    assert model.noise_multiplier == 1.5
    n = store.read_manifest(tiny_data)["partitions"][2]["train"]["n"]
    rate, delta = (
        sample_rate(n, 32),
        cfg.client_delta(store.n_train_total(store.read_manifest(tiny_data))),
    )
    assert model.epsilon == pytest.approx(
        epsilon_after(AccountantState("rdp"), 1.5, rate, model.steps, delta), rel=1e-12
    )


def test_every_retailer_in_turn_written_for_compare(tiny_data, tmp_path):
    cfg = config(tiny_data, dp="none", **{"num-server-rounds": 1})
    seen = []
    out = RunDir(tmp_path).local_only
    result = run_local_only(cfg, tiny_data, out, progress=lambda n=1, **_: seen.append(n))
    assert [m.partition for m in result.models] == [0, 1, 2]
    assert seen == [1, 1, 1]  # one epoch each
    [written] = read_predictions(RunDir(tmp_path).local_only_scores).values()
    test = store.load_pooled(tiny_data, "test")
    assert written.customer.tolist() == np.asarray(test.customer).astype(str).tolist()
    assert sorted(set(written.partition.tolist())) == [0, 1, 2]
    metrics = json.loads(RunDir(tmp_path).local_only_metrics.read_text())
    assert [m["n_train"] for m in metrics["models"]] == [
        p["train"]["n"] for p in store.read_manifest(tiny_data)["partitions"]
    ]
    assert metrics["threads"] == 1


def test_seeds_differ_by_retailer_and_are_reproducible():
    assert local_seed(0, 1) == local_seed(0, 1) != local_seed(0, 2)
    assert local_seed(0, 1) != local_seed(1, 1)


def test_the_noise_its_client_calibrated_is_reused(tiny_data, tmp_path, monkeypatch):
    """With the client's journal in the state-dir, no second search for the same noise; a
    journal of another sampling rate (or none) is calibrated again."""
    import fedmarket.privacy.engine as engine

    manifest = store.read_manifest(tiny_data)
    n, n_all = manifest["partitions"][0]["train"]["n"], store.n_train_total(manifest)
    cfg = config(tiny_data, **{"state-dir": str(tmp_path)})
    delta, rate, steps = cfg.client_delta(n_all), sample_rate(n, 32), 2 * steps_per_epoch(n, 32)
    noise = calibrate_noise(8.0, delta, rate, steps)
    assert clients_noise(cfg, 0, n) is None  # no journal yet
    save_accountant(AccountantState("rdp", ((noise, rate, steps),), noise), str(tmp_path), 0)
    assert clients_noise(cfg, 0, n) == AccountantState("rdp", (), noise)
    assert clients_noise(cfg, 0, n + 1000) is None  # another retailer's sampling rate

    def searched(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(engine, "calibrate_noise", searched)
    model, _ = train_local_model(cfg, tiny_data, 0)
    assert model.noise_multiplier == noise and model.steps == steps
    assert model.epsilon == pytest.approx(
        epsilon_after(AccountantState("rdp"), noise, rate, steps, delta), rel=1e-12
    )
