"""`fedmarket contribution` through real federated runs: a 1-round client-DP run of the tiny
3-retailer data valued by leave-one-out (3 coalition runs on one Ray runtime)."""

from __future__ import annotations

import json

import pytest

from fedmarket.contribution.records import read_records
from fedmarket.data import store
from fedmarket.experiments.contribution import ContributionConfig, make_plan, run_contribution
from fedmarket.experiments.ray_session import ray_session
from fedmarket.experiments.simulate import simulate
from fedmarket.rundir import RunDir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_leave_one_out_through_federated_runs(tiny_data, tmp_path):
    run = tmp_path / "run"
    with ray_session():
        simulate(
            data=tiny_data,
            run_config="num-server-rounds=1 dp='client' target-epsilon=8.0",
            out=run,
            centralised=False,
        )
        plan = make_plan(ContributionConfig(run, "loo"))
        assert plan.needed == 3 and plan.seconds_per_run is not None
        result = run_contribution(ContributionConfig(run, "loo"), plan=plan)
    files = RunDir(run)
    records = read_records(files.contribution_records)
    assert sorted(map(sorted, records)) == [[0, 1], [0, 2], [1, 2]]
    assert all(r["status"] == "ok" for r in records.values()), records
    for coalition, record in records.items():
        # each coalition run trained only its members, with the run's DP settings
        view = store.read_manifest(files.coalition_view(record["key"]))
        assert view["coalition"]["partitions"] == sorted(coalition)
        config = json.loads((files.coalition_run(record["key"]) / "config.json").read_text())
        assert config["dp"] == "client" and config["target-epsilon"] == 8.0
        assert set(record["epsilon"]) == {str(m) for m in coalition}
        assert 0 < max(record["epsilon"].values()) <= 8.0
    for pid, entry in result["retailers"].items():
        others = frozenset({0, 1, 2} - {int(pid)})
        expected = result["grand_metric"] - records[others]["value"]
        assert entry["value"] == pytest.approx(expected)
        spent = result["privacy"]["retailers"][pid]
        assert spent["coalition_runs"] == 2
        assert (
            spent["run_epsilon"]
            < spent["total_epsilon"]
            <= spent["run_epsilon"] + spent["valuation_epsilon_sum"] + 1e-9
        )
    assert files.contribution_figure.is_file()
