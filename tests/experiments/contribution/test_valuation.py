"""A valuation over a finished run built without Flower, each coalition's run injected: the
arithmetic, the records (resume, failures, the run cap), the outputs and the privacy cost."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fedmarket.config import RunConfig
from fedmarket.contribution.records import read_records
from fedmarket.data import store, subset
from fedmarket.errors import ConfigError
from fedmarket.experiments.contribution import ContributionConfig, make_plan, run_contribution
from fedmarket.federated.client_state import save_accountant
from fedmarket.models import build_model
from fedmarket.privacy.accounting import AccountantState, epsilon
from fedmarket.rundir import RunDir

# v(S) of the coalitions the fake runs return (ROC-AUC on the pooled test customers)
VALUES = {(0,): 0.55, (1,): 0.6, (2,): 0.52, (0, 1): 0.65, (0, 2): 0.6, (1, 2): 0.62}
STEP = (1.0, 0.05, 40)  # one history entry: noise, sample rate, steps
DELTA = 1e-5


def finished_run(out: Path, data: Path, dp: str = "none") -> Path:
    settings = {"data-dir": str(data), "out-dir": str(out), "dp": dp, "num-server-rounds": 2}
    if dp == "client":
        settings["target-epsilon"] = 8.0
    cfg = RunConfig.from_mapping(settings | {"state-dir": str(RunDir(out).client_state)})
    files = RunDir(out)
    out.mkdir(parents=True)
    files.write_config(cfg)
    n_features = store.n_features(store.read_manifest(data))
    files.save_checkpoint(2, build_model("cnn-lstm", n_features, seed=1).state_dict())
    files.latest_marker.write_text('{"round": 2, "path": "round-0002.pt"}')
    n = len(store.read_manifest(data)["partitions"])
    eps = {"per_client": {str(p): 1.5 for p in range(n)}, "max": 1.5} if dp == "client" else {}
    files.federated.write_text(
        json.dumps({"wall_s": 30.0, "rounds": 2, "epsilon": eps, "delta": DELTA})
    )
    for p in range(n) if dp == "client" else ():
        save_accountant(AccountantState("rdp", (STEP,)), str(files.client_state), p)
    return out


class FakeRuns:
    """Return the table's value; write each member's accountant as a DP run would."""

    def __init__(self, fail: frozenset | None = None):
        self.trained: list[frozenset] = []
        self.fail = fail

    def __call__(self, coalition, out):
        self.trained.append(coalition)
        if coalition == self.fail:
            raise RuntimeError("the coalition's run died")
        members = sorted(coalition)
        for i, _ in enumerate(members):
            save_accountant(AccountantState("rdp", (STEP,)), str(RunDir(out).client_state), i)
        value = VALUES[tuple(members)]
        return {"value": value, "metric": value, "epsilon": {str(m): 1.5 for m in members}}


def test_leave_one_out_records_outputs_and_resume(tiny_data, tmp_path, monkeypatch):
    run = finished_run(tmp_path / "run", tiny_data)
    fake = FakeRuns()
    monkeypatch.chdir(tmp_path)  # a relative RUN_DIR: the records name absolute paths
    result = run_contribution(ContributionConfig(Path("run"), "loo"), runner=fake)
    grand = result["grand_metric"]
    for p, others in ((0, (1, 2)), (1, (0, 2)), (2, (0, 1))):
        assert result["retailers"][str(p)]["value"] == pytest.approx(grand - VALUES[others])
    assert sorted(map(sorted, fake.trained)) == [[0, 1], [0, 2], [1, 2]]
    files = RunDir(run)
    records = read_records(files.contribution_records)
    assert len(records) == 3
    assert all(Path(r["run_dir"]).is_absolute() for r in records.values())
    for path in (files.contribution_json, files.contribution_md, files.contribution_figure):
        assert path.is_file()
    text = files.contribution_md.read_text()
    assert "no DP" in text
    assert ("Caution" in text) == (result["grand_metric"] <= 0.5)
    again = FakeRuns()
    assert (
        run_contribution(ContributionConfig(run, "loo"), runner=again)["retailers"]
        == (result["retailers"])
    )
    assert again.trained == []  # every coalition was recorded: nothing is trained twice
    assert make_plan(ContributionConfig(run, "shapley", permutations=50)).needed == 3
    with pytest.raises(ConfigError, match="trained with 2 rounds, this call would train 1"):
        make_plan(ContributionConfig(run, "loo", rounds=1))


def test_a_failed_coalition_is_recorded_and_tried_again(tiny_data, tmp_path):
    run = finished_run(tmp_path / "run", tiny_data)
    result = run_contribution(
        ContributionConfig(run, "loo"), runner=FakeRuns(fail=frozenset({0, 1}))
    )
    assert math.isnan(result["retailers"]["2"]["value"])
    assert not math.isnan(result["retailers"]["0"]["value"])
    assert result["failed"][0]["members"] == [0, 1]
    retry = FakeRuns()
    run_contribution(ContributionConfig(run, "loo"), runner=retry)
    assert retry.trained == [frozenset({0, 1})]


def test_max_runs_stops_with_what_it_has(tiny_data, tmp_path):
    run = finished_run(tmp_path / "run", tiny_data)
    fake = FakeRuns()
    result = run_contribution(ContributionConfig(run, "shapley", max_runs=1), runner=fake)
    assert len(fake.trained) == 1 and result["stopped_at_max_runs"]
    assert "Incomplete" in RunDir(run).contribution_md.read_text()


def test_privacy_is_composed_over_every_run(tiny_data, tmp_path):
    run = finished_run(tmp_path / "run", tiny_data, dp="client")
    result = run_contribution(ContributionConfig(run, "loo"), runner=FakeRuns())
    spent = result["privacy"]["retailers"]["0"]
    assert spent["coalition_runs"] == 2 and spent["run_epsilon"] == 1.5
    assert spent["valuation_epsilon_sum"] == pytest.approx(3.0)
    exact = epsilon(AccountantState("rdp", (STEP, STEP, STEP)), DELTA)
    assert spent["total_epsilon"] == pytest.approx(exact) and exact < 4.5
    assert spent["composition"].startswith("exact")
    assert "DP runs only" in result["privacy"]["statement"]


def test_bad_input_is_refused_before_anything_trains(tiny_data, tmp_path):
    run = finished_run(tmp_path / "run", tiny_data)
    with pytest.raises(ConfigError, match="did you mean 'shapley'"):
        make_plan(ContributionConfig(run, "shaply"))
    with pytest.raises(ConfigError, match="at least 1 permutation"):
        make_plan(ContributionConfig(run, "shapley", permutations=0))
    with pytest.raises(ConfigError, match="not a fedmarket run directory"):
        make_plan(ContributionConfig(tmp_path, "loo"))
    RunDir(run).federated.unlink()
    with pytest.raises(ConfigError, match="has not finished"):
        make_plan(ContributionConfig(run, "loo"))
    one = subset.coalition_view(tiny_data, [0], tmp_path / "one")
    with pytest.raises(ConfigError, match="at least 2"):
        make_plan(ContributionConfig(finished_run(tmp_path / "run1", one), "loo"))
