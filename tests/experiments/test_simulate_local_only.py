"""simulate's local-only stage without Flower: its run setting, --no-centralised, a failure
that keeps the run, and what it writes (the whole run: tests/experiments/test_simulate.py)."""

from __future__ import annotations

import pytest

import fedmarket.value.local_only as local_only_module
from fedmarket.config import RunConfig
from fedmarket.errors import ConfigError, DataError
from fedmarket.experiments.simulate import RunPlan, _local_only
from fedmarket.predictions import read_predictions
from fedmarket.rundir import RunDir

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def plan(tiny_data, tmp_path, **settings) -> RunPlan:
    cfg = RunConfig.from_mapping(
        {"data-dir": str(tiny_data), "out-dir": str(tmp_path), "model": "gru", **settings}
    )
    return RunPlan(cfg, tmp_path)


def test_on_by_default_and_written_to_run_local(tiny_data, tmp_path):
    p = plan(tiny_data, tmp_path, dp="none", **{"num-server-rounds": 1})
    assert RunConfig.from_mapping({}).local_only_models is True
    assert _local_only(p, RunDir(tmp_path), None, True) == "trained"
    [scores] = read_predictions(RunDir(tmp_path).local_only_scores).values()
    assert sorted(set(scores.partition.tolist())) == [0, 1, 2]


def test_off_by_the_run_setting_or_without_references(tiny_data, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("trained although switched off")

    monkeypatch.setattr(local_only_module, "run_local_only", never)
    off = plan(tiny_data, tmp_path, **{"local-only-models": False})
    assert _local_only(off, RunDir(tmp_path), None, True) == (
        "off: the run setting local-only-models = false"
    )
    on = plan(tiny_data, tmp_path)
    assert _local_only(on, RunDir(tmp_path), None, False) == (
        "off: --no-centralised trains neither reference"
    )
    assert not RunDir(tmp_path).local_only.exists()


def test_a_failure_is_reported_and_the_run_goes_on(tiny_data, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise DataError("partition 2: damaged")

    monkeypatch.setattr(local_only_module, "run_local_only", broken)
    assert _local_only(plan(tiny_data, tmp_path), RunDir(tmp_path), None, True) == (
        "failed: partition 2: damaged"
    )


def test_the_setting_is_a_bool():
    with pytest.raises(ConfigError, match="local-only-models must be bool"):
        RunConfig.from_mapping({"local-only-models": 1})
