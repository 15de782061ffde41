"""The recommender end to end on the tiny fixture: prepared data -> centralised comparison
through the one training loop, a federated client's round, and (slow) `simulate`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import DataError
from fedmarket.federated.client import RetailerClient
from fedmarket.models import build_model
from fedmarket.recommend.data import load_task_split, model_inputs
from fedmarket.recommend.experiment import compare
from fedmarket.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_model_inputs_and_task_splits(tiny_data):
    manifest = store.read_manifest(tiny_data)
    n, extra = model_inputs(manifest, "next-categories")
    assert n == 3 and extra["vocabulary"]["items"] == manifest["recommend"]["items"]
    assert model_inputs(manifest, "purchase") == (store.n_features(manifest), {})
    train = load_task_split(tiny_data, 0, "train", "next-categories")
    assert len(train) and train.y_categories.any(axis=1).all()  # trains on customers with a target
    test = load_task_split(tiny_data, 0, "test", "next-categories")
    assert len(test) == manifest["partitions"][0]["test"]["n"]
    with pytest.raises(DataError, match="recommender vocabulary"):
        model_inputs({"partitions": []}, "next-categories")


def test_centralised_comparison_with_the_baselines_warm_and_cold(tiny_data):
    result = compare(
        tiny_data, TrainConfig(epochs=1, batch_size=64, val_fraction=0), modes=("gru-ncf",)
    )
    models = {r["model"] for r in result.rows}
    assert models == {
        "GRU+NCF (centralised)",
        "popularity (global)",
        "popularity (retailer)",
        "co-occurrence kNN",
        "ALS (implicit)",
    }
    assert {r["customers"] for r in result.rows} == {"all", "warm", "cold"}
    full = [r for r in result.rows if r["customers"] == "all"]
    assert all(0 <= r["hr@10"] <= 1 and r["n_customers"] > 0 for r in full)
    summary = result.to_dict()
    assert summary["cold_threshold_events"] == 3 and "popularity" in summary["cold_start"]
    assert "| GRU+NCF (centralised) |" in result.markdown()


def test_a_federated_client_trains_and_evaluates_a_round(tiny_data):
    cfg = RunConfig.from_mapping(
        {"data-dir": str(tiny_data), "task": "next-categories", "model": "gru-ncf", "dp": "none"}
    )
    client = RetailerClient(cfg, tiny_data, 1)
    start = build_model(
        "gru-ncf",
        3,
        task="next-categories",
        seed=0,
        **model_inputs(store.read_manifest(tiny_data), cfg.task)[1],
    ).state_dict()
    outcome = client.train(start, server_round=1, privacy_state=None)
    assert list(outcome.state_dict) == list(start)
    assert any(not torch.equal(outcome.state_dict[k], start[k]) for k in start)
    metrics = client.evaluate(outcome.state_dict)
    assert 0 <= metrics["ndcg@10"] <= 1 and metrics["num-examples"] == len(client.test_split)


@pytest.mark.slow
@pytest.mark.parametrize("dp", ["none", "client"])
def test_simulate_writes_the_comparison(tiny_data, tmp_path, dp):
    from fedmarket.experiments.ray_runtime import ClientResources
    from fedmarket.experiments.simulate import simulate

    out = tmp_path / "run"
    result = simulate(
        data=tiny_data,
        run_config=f"task='next-categories' model='gru-ncf' dp='{dp}' num-server-rounds=2",
        out=out,
        resources=ClientResources(num_cpus=1.0),
    )
    summary = json.loads((out / "summary.json").read_text())
    assert result["problems"] == [] and summary["task"] == "next-categories"
    models = {r["model"] for r in summary["recommend"]["table"]}
    assert {"GRU+NCF (federated)", "GRU+NCF (centralised)", "GRU-only (centralised)"} <= models
    assert {"NCF-only (centralised)", "ALS (implicit)", "popularity (retailer)"} <= models
    eps = summary["federated"]["epsilon"]["max"]
    assert (eps is None) if dp == "none" else (0 < eps <= 8.0 + 1e-6)
    if dp == "client":
        assert math.isfinite(summary["recommend"]["centralised_epsilon"])
    assert "## Recommendation metrics" in (out / "report.md").read_text()


def test_the_propensity_baselines_command_points_the_recommender_elsewhere():
    from fedmarket.cli.baselines import check_names
    from fedmarket.errors import ConfigError

    with pytest.raises(ConfigError, match="fedmarket centralised --task next-categories"):
        check_names("next-categories", "")


def test_the_console_shows_the_comparison(tmp_path):
    from fedmarket.cli.simulate import print_outcome
    from fedmarket.progress import console

    row = {"hr@10": 0.5, "ndcg@10": 0.25, "mrr": 0.2, "coverage@10": 1.0, "n_customers": 2.0}
    table = [
        {"model": "GRU+NCF (federated)", "customers": c, **row} for c in ("all", "warm", "cold")
    ]
    with console.capture() as captured:
        print_outcome({"recommend": {"table": table}, "problems": []}, tmp_path)
    out = captured.get()
    assert "GRU+NCF" in out and "0.2500" in out


def test_preflight_checks_the_recommenders_files(tiny_data, tmp_path):
    from fedmarket.experiments.simulate import preflight
    from tests.conftest import copy_prepared

    data = copy_prepared(tiny_data, tmp_path / "data")
    cfg = RunConfig.from_mapping(
        {"data-dir": str(data), "task": "next-categories", "model": "gru-ncf", "dp": "none"}
    )
    assert preflight(cfg) == 3
    (data / "partitions" / "2" / "test" / "recs.npz").unlink()
    with pytest.raises(DataError, match=r"recs\.npz: missing"):
        preflight(cfg)
