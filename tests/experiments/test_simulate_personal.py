"""Personalisation through Flower's Ray simulation (slow: Ray's start-up)."""

import json

import pytest

from fedmarket.experiments.simulate import ClientResources, simulate
from fedmarket.predictions import read_predictions
from fedmarket.rundir import RunDir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_fedper_under_ray_writes_each_retailers_personalised_scores(tiny_data, tmp_path):
    out = tmp_path / "run"
    simulate(
        data=tiny_data,
        run_config="num-server-rounds=2 batch-size=256 personalisation='fedper'",
        out=out,
        centralised=False,
        resources=ClientResources(num_cpus=1.0),
    )
    files = RunDir(out)
    assert json.loads(files.federated.read_text())["personal"]["status"] == "scored"
    [mine] = read_predictions(files.personal_scores).values()
    assert sorted(set(mine.partition.tolist())) == [0, 1, 2]
    # each client kept its head in its own state directory, and its epsilon is cumulative
    for pid in range(3):
        assert (files.client_state / f"client-{pid}" / "personal-head.pt").is_file()
    clients = json.loads(files.personal_metrics.read_text())["clients"]
    assert all(0 < c["epsilon"] <= 8.0 for c in clients)
    summary = json.loads(files.summary.read_text())
    assert summary["retailers"]["personal"] == "fedper"
    assert all(r["personal"] is not None for r in summary["retailers"]["rows"])
