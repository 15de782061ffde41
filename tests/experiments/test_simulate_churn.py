"""Task churn end to end through the Flower simulation, with client DP and without (slow:
Ray start-up per run)."""

import json

import numpy as np
import pytest

from fedmarket.data import store
from fedmarket.experiments.simulate import ClientResources, simulate

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ONE_CPU = ClientResources(num_cpus=1.0)


def test_churn_with_client_dp_end_to_end(tiny_data, tmp_path):
    out = tmp_path / "run"
    result = simulate(
        data=tiny_data,
        run_config="task='churn' num-server-rounds=1",
        out=out,
        centralised=True,
        resources=ONE_CPU,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result["summary"] and summary["config"]["task"] == "churn"
    assert summary["config"]["dp"] == "client"
    fed, cen = summary["federated"], summary["centralised"]
    test = store.load_pooled(tiny_data, "test")
    churners = float(np.mean(1 - test.y_purchase))
    for model in (fed, cen):
        assert model["test"]["base_rate"] == pytest.approx(churners)
        assert model["test"]["n_positive"] == round(churners * len(test))
        assert 0 <= model["test"]["roc_auc"] <= 1
    assert 0 < fed["epsilon"]["max"] <= 8.0 and 0 < cen["epsilon"] <= 8.0
    report = (out / "report.md").read_text()
    assert "churners" in report and "for predicting 'churns' for everyone" in report
    assert "the label is 1 if active in the" in report


def test_churn_inactive_without_dp(tiny_data, tmp_path):
    out = tmp_path / "run"
    simulate(
        data=tiny_data,
        run_config="task='churn-inactive' num-server-rounds=1 dp='none'",
        out=out,
        centralised=False,
        resources=ONE_CPU,
    )
    summary = json.loads((out / "summary.json").read_text())
    test = store.load_pooled(tiny_data, "test")
    inactive = float(np.mean(1 - test.y_active))
    assert summary["federated"]["test"]["base_rate"] == pytest.approx(inactive)
    assert inactive < float(np.mean(1 - test.y_purchase))  # browsing is not buying
