"""The bench's stages for issue #20's other goals: their arithmetic on hand-made runs, the
skipping, and (slow) a real quick run of each."""

import json
from pathlib import Path

import pytest

from fedmarket.experiments.bench import BenchConfig, stages
from fedmarket.experiments.bench.contention import alternate
from fedmarket.experiments.bench.harness import ratios
from fedmarket.experiments.bench.overhead import client_counts, fit_overhead
from fedmarket.experiments.bench.startup import startup_from_run
from fedmarket.experiments.bench.sweep import sweep_rounds

ROUNDS_HEADER = "round,elapsed_s,train_wait_s,aggregate_s,server_eval_s,client_train_s_sum\n"


def test_startup_is_the_time_to_round_one_plus_its_wait_less_training(tmp_path: Path):
    (tmp_path / "log.txt").write_text(
        "2026-12-02 01:00:03,000 | INFO | starting\n2026-12-02 01:00:09,500 | INFO | [ROUND 1/2]\n"
    )
    (tmp_path / "rounds.csv").write_text(ROUNDS_HEADER + "1,10.0,3.0,0.1,0.2,4.0\n2,12.5,2,0,0,3\n")
    from datetime import datetime

    started = datetime(2026, 12, 2, 1, 0, 2).timestamp()
    got = startup_from_run(tmp_path, slots=2, started=started, wall=20.0)
    assert got["to_round_s"] == pytest.approx(7.5)
    assert got["startup_s"] == pytest.approx(7.5 + 3.0 - 4.0 / 2)
    assert got["round2_s"] == pytest.approx(2.5) and got["wall_s"] == 20.0


def test_a_sweeps_rounds_and_training_sum_over_its_points(tmp_path: Path):
    for name, rows in (
        ("a", ["1,1,2.0,0.1,0.4,3.0", "2,2,1.0,0.1,0.4,2.0"]),
        ("b", ["1,1,1,0,0,1"]),
    ):
        run = tmp_path / f"run-{name}"
        run.mkdir()
        (run / "rounds.csv").write_text(ROUNDS_HEADER + "\n".join(rows) + "\n")
        (tmp_path / "records").mkdir(exist_ok=True)
        (tmp_path / "records" / f"{name}.json").write_text(json.dumps({"run_dir": str(run)}))
    got = sweep_rounds(tmp_path, slots=2)
    assert got["points"] == 2
    assert got["rounds_s"] == pytest.approx(2.5 + 1.5 + 1.0)
    assert got["training_s"] == pytest.approx((3.0 + 2.0 + 1.0) / 2)


def test_contention_alternates_load_and_order_and_takes_medians():
    calls = []
    walls = iter([1.0, 2.0, 3.0, 6.0, 3.0, 4.0, 1.0, 2.0])  # rep 0 idle, busy; rep 1 busy, idle

    def run(case):
        calls.append(case)
        return 1, next(walls)

    got = alternate(["fast", "dp"], reps=2, busy=0, run=run)
    assert calls == ["fast", "dp", "fast", "dp", "dp", "fast", "dp", "fast"]
    assert got["fast"]["idle_s"] == 1.5 and got["fast"]["contended_s"] == 3.5
    assert got["dp"]["contended_over_idle"] == pytest.approx(((6.0 + 3.0) / 2) / ((2.0 + 1.0) / 2))


def test_overhead_per_client_is_the_slope_of_a_least_squares_line():
    assert client_counts(16) == [4, 8, 16] and client_counts(2) == [1, 2]
    assert client_counts(1) == [1]
    got = fit_overhead([(4, 0.10), (8, 0.12), (16, 0.16)])  # 0.08 s + 5 ms per client
    assert got["per_client_round_ms"] == pytest.approx(5.0)
    assert got["intercept_s"] == pytest.approx(0.08)


def test_ratios_of_the_goal_stages_that_ran():
    report = {
        "startup": {"startup_s": 9.5},
        "sweep": {"wall_over_training": 3.0},
        "contention": {"worst_contended_over_idle": 2.5},
        "prepare": {"over_raw_read": {"prepare": 7.0}},
        "overhead": {"per_client_round_ms": 4.0},
    }
    assert ratios(report) == {
        "startup_s": 9.5,
        "sweep_wall_over_training": 3.0,
        "contended_over_idle": 2.5,
        "prepare_over_raw_read": 7.0,
        "overhead_per_client_round_ms": 4.0,
    }
    assert ratios({}) == {}


def test_stages_can_be_skipped_and_the_scale_point_skips_the_goal_stages(tmp_path: Path):
    every = BenchConfig(out=tmp_path)
    assert stages(every) == [
        "floor",
        "federated",
        "floor-dp",
        "federated-dp",
        "throughput",
        "startup",
        "sweep",
        "contention",
        "prepare",
        "overhead",
        "quickstart",
        "pfl",
    ]
    some = BenchConfig(out=tmp_path, skip=("federated", "sweep", "pfl"), dp=False)
    assert stages(some) == [
        "throughput",
        "startup",
        "contention",
        "prepare",
        "overhead",
        "quickstart",
    ]
    scale = BenchConfig.scale_point(tmp_path, skip=("throughput",))
    assert stages(scale) == ["floor", "federated", "floor-dp", "federated-dp"]


@pytest.mark.slow
def test_cli_bench_measures_the_goal_stages(tmp_path: Path):
    """A real quick run of the start-up, contention, prepare and overhead stages (the sweep's
    is the same child-process pattern, four federated runs longer): each goal gets a figure
    and a verdict, and the table says so."""
    from typer.testing import CliRunner

    from fedmarket.cli import app

    args = ["bench", "--quick", "--out", str(tmp_path), "--clients", "2", "--customers", "256"]
    result = CliRunner().invoke(app, [*args, "--skip", "federated,throughput,sweep,quickstart,pfl"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    goals = {g["key"]: g for g in report["goals"]}
    for key in ("startup_s", "contended_over_idle", "prepare_over_raw_read"):
        assert goals[key]["value"] > 0 and goals[key]["met"] in (True, False)
    assert goals["overhead_per_client_round_ms"]["met"] in (True, False)
    assert goals["sweep_wall_over_training"]["met"] is None
    assert [p["clients_per_round"] for p in report["overhead"]["points"]] == [2, 4, 8]
    assert set(report["contention"]["paths"]) == {"fast", "dp"}
    assert report["startup"]["to_round_s"] < report["startup"]["wall_s"]
    assert "issue #20's goals" in result.output and "skipped" in result.output
