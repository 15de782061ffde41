import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedmarket.cli import app
from fedmarket.data import store
from fedmarket.errors import ConfigError
from fedmarket.experiments.bench import BenchConfig
from fedmarket.experiments.bench.harness import ratios
from fedmarket.experiments.bench.memory import PeakMemory
from fedmarket.experiments.bench.stages import round_split, slots, steady, with_round_time
from fedmarket.experiments.bench.workload import TEST_CUSTOMERS, ensure_workload


# --- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "transformer"}, "unknown model"),
        ({"clients": 0}, "--clients"),
        ({"rounds": 1}, "--rounds"),
        ({"customers": True}, "--customers"),
        ({"clients": 4, "clients_per_round": 5}, "--clients-per-round"),
        ({"noise_multiplier": 0.0}, "noise multiplier"),
        ({"client_cpus": 0}, "--client-cpus"),
        ({"device": "tpu"}, "--device"),
        ({"device": "cpu", "client_gpus": 0.5}, "same device"),
        ({"skip": ("sweeps",)}, "did you mean 'sweep'"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, changes, message):
    with pytest.raises(ConfigError, match=message):
        BenchConfig(out=tmp_path, **changes)


def test_modes_and_derived_values(tmp_path: Path):
    quick = BenchConfig.quick_mode(tmp_path)
    assert (quick.clients, quick.customers, quick.quick) == (4, 1024, True)
    scale = BenchConfig.scale_point(tmp_path)
    assert scale.clients * scale.customers == 1_000_000
    assert (scale.per_round, scale.fraction_train()) == (10, 0.01)
    assert BenchConfig(out=tmp_path, device="cpu").gpus_per_client == 0.0
    assert BenchConfig(out=tmp_path, device="auto", client_gpus=0.5).gpus_per_client == 0.5
    assert slots(BenchConfig(out=tmp_path, device="cpu", clients=1)) == 1


# --- the workload ------------------------------------------------------------------------------
def test_workload_is_prepared_data_and_is_reused(tmp_path: Path):
    root = ensure_workload(
        tmp_path / "w", clients=3, customers=50, seq_len=6, n_features=11, seed=1
    )
    manifest = store.read_manifest(root)
    assert [p["train"]["n"] for p in manifest["partitions"]] == [50, 50, 50]
    assert len(manifest["feature_names"]) == 11
    split = store.load_split(root, 2, "train")
    assert split.X.shape == (50, 6, 11) and split.X.dtype == np.float32
    assert len(store.load_split(root, 0, "test")) == TEST_CUSTOMERS
    # the label is a function of the last two steps, so the models have something to learn
    expected = (split.X[:, -1, 0] + split.X[:, -2, 1] > 1.0).astype(np.float32)
    np.testing.assert_array_equal(split.y_purchase, expected)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    again = ensure_workload(
        tmp_path / "w", clients=3, customers=50, seq_len=6, n_features=11, seed=1
    )
    assert again == root and (root / "manifest.json").stat().st_mtime_ns == stamp
    ensure_workload(tmp_path / "w", clients=2, customers=50, seq_len=6, n_features=11, seed=1)
    assert len(store.read_manifest(root)["partitions"]) == 2  # another shape: rewritten


# --- the round split and the ratios, by hand ----------------------------------------------
def test_round_time_is_the_difference_of_elapsed_times():
    rows = [
        {"round": 1, "elapsed_s": 8.0},
        {"round": 2, "elapsed_s": 9.5},
        {"round": 3, "elapsed_s": 11.25},
    ]
    assert [r["round_s"] for r in with_round_time(rows)] == [8.0, 1.5, 1.75]


def test_round_split_by_hand():
    row = {
        "round": 2,
        "round_s": 10.0,
        "ok": 6,
        "client_train_s_sum": 12.0,
        "client_train_s_max": 5.0,
        "aggregate_s": 0.5,
        "server_eval_s": 0.25,
    }
    split = round_split(row, parallel=4)  # 2 waves x mean 2 = 4 < the slowest client's 5
    assert split["client_compute_s"] == 5.0
    assert split["overhead_s"] == pytest.approx(10.0 - 5.0 - 0.5 - 0.25)
    assert split["train_round_s"] == 9.75
    assert round_split({**row, "client_train_s_max": 2.0}, parallel=4)["client_compute_s"] == 4.0
    assert round_split({**row, "client_train_s_max": 2.0}, parallel=6)["client_compute_s"] == 2.0


def test_ratios_use_rounds_after_the_first():
    per_round = [
        {"round_s": 9.0, "train_round_s": 8.5, "overhead_s": 8.0},
        {"round_s": 2.0, "train_round_s": 1.5, "overhead_s": 0.5},
        {"round_s": 4.0, "train_round_s": 3.5, "overhead_s": 1.0},
    ]
    assert steady(per_round, "round_s") == 3.0
    report = {
        "floor": {"nodp": {"epoch_s": 2.0}},
        "federated": {"nodp": {"per_round": per_round}},
        "dp_throughput": {"fast": {"samples_per_s": 1000.0}, "dp": {"samples_per_s": 250.0}},
    }
    out = ratios(report)
    assert out["federated_over_floor_nodp"] == 1.25  # (1.5 + 3.5) / 2 / 2
    assert out["federated_with_eval_over_floor_nodp"] == 1.5
    assert out["federated_overhead_share_nodp"] == pytest.approx(0.75 / 3.0)
    assert out["dp_over_fast_throughput"] == 0.25


def test_peak_memory_sees_an_allocation():
    with PeakMemory(interval=0.01) as before:
        pass
    with PeakMemory(interval=0.01) as during:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, alive until the block ends
    assert during.peak_host - before.peak_host > 32 * 2**20
    del block


# --- end to end ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_bench_writes_the_report(tmp_path: Path):
    args = ["bench", "--quick", "--out", str(tmp_path), "--clients", "2", "--customers", "256"]
    args += ["--skip", "startup,sweep,contention,prepare,overhead"]  # tests/.../test_goal_stages.py
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    assert set(report["floor"]) == set(report["federated"]) == {"nodp", "dp"}
    for label in ("nodp", "dp"):
        fed, floor = report["federated"][label], report["floor"][label]
        assert fed["rounds"] == 3 and len(fed["per_round"]) == 3
        assert floor["customers"] == 2 * 256 and floor["epochs"] == 3
        expected = steady(fed["per_round"], "train_round_s") / floor["epoch_s"]
        assert report["ratios"][f"federated_over_floor_{label}"] == pytest.approx(expected)
        for r in fed["per_round"]:
            parts = r["client_compute_s"] + r["aggregate_s"] + r["server_eval_s"] + r["overhead_s"]
            assert parts == pytest.approx(r["round_s"])
            assert r["client_compute_s"] > 0
    assert report["floor"]["dp"]["epsilon"] > 0 and report["floor"]["nodp"]["epsilon"] is None
    # the ratio is the two measured throughputs' (which is faster is a benchmark's question,
    # and on a busy machine a timed assertion would flip)
    tp = report["dp_throughput"]
    assert report["ratios"]["dp_over_fast_throughput"] == pytest.approx(
        tp["dp"]["samples_per_s"] / tp["fast"]["samples_per_s"]
    )
    assert report["ratios"]["dp_over_fast_throughput"] > 0
    assert "federated / floor" in result.output


def test_cli_bench_rejects_quick_with_scale(tmp_path: Path):
    result = CliRunner().invoke(app, ["bench", "--quick", "--scale", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "choose one" in result.output
