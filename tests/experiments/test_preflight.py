"""What `fedmarket simulate` checks before Ray starts: each a clear error, nothing written.

None of these cases reaches Flower: they fail in well under a second, and the output
directory stays as it was, so the same command works once the cause is fixed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedmarket.errors import ConfigError, DataError
from fedmarket.experiments import simulate as simulate_module
from fedmarket.experiments.simulate import simulate
from tests.conftest import copy_prepared


@pytest.fixture(autouse=True)
def no_flower(monkeypatch):
    """Every case here must be refused before the simulation is started."""

    def started(*args, **kwargs):
        pytest.fail("the Flower simulation was started; the check came too late")

    monkeypatch.setattr(simulate_module, "_run_flower", started)


def run(data: Path, out: Path, run_config: str = "") -> None:
    try:
        simulate(data=data, run_config=run_config, out=out, centralised=False)
    finally:
        assert not out.exists() or not any(out.iterdir())  # nothing written


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        ("min-train-replies=4", r"min-train-replies=4 but only 3 of 3 retailers"),
        ("strategy='krum' num-malicious-nodes=1", r"'krum' .* needs at least 5 clients"),
        ("dp='central' strategy='fedmedian'", r"dp='central' with strategy 'fedmedian'"),
        ("model='transformer'", r"model 'transformer' is unknown"),
    ],
)
def test_settings_against_the_clients(tiny_data, tmp_path, run_config, message):
    with pytest.raises(ConfigError, match=message):
        run(tiny_data, tmp_path / "run", run_config)


def test_a_partition_the_manifest_names_but_that_is_not_there(tiny_data, tmp_path):
    data = copy_prepared(tiny_data, tmp_path / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["partitions"].append({**manifest["partitions"][0], "id": 7})
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"partitions/7/train/X\.npy: missing; partition 7"):
        run(data, tmp_path / "run")


def test_an_edited_customer_count_is_caught(tiny_data, tmp_path):
    data = copy_prepared(tiny_data, tmp_path / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    real = manifest["partitions"][1]["train"]["n"]
    manifest["partitions"][1]["train"]["n"] = 5000  # would silently change delta
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=f"{real:,} customers, but manifest.json says 5,000"):
        run(data, tmp_path / "run")


def test_feature_names_that_disagree_with_the_arrays(tiny_data, tmp_path):
    data = copy_prepared(tiny_data, tmp_path / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["feature_names"] = manifest["feature_names"][:-1]
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"X\.npy: shape .* names 10 features"):
        run(data, tmp_path / "run")


def test_a_truncated_partition_file_is_named(tiny_data, tmp_path):
    data = copy_prepared(tiny_data, tmp_path / "data")
    path = data / "partitions/1/test/X.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"partitions/1/test/X\.npy: damaged array file"):
        run(data, tmp_path / "run")


def test_out_under_a_file_or_unwritable(tiny_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"a-file is a file, not a directory"):
        simulate(data=tiny_data, out=blocker / "run", centralised=False)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        import os

        if os.geteuid() == 0:
            pytest.skip("root may write anywhere; the permission check cannot be shown")
        with pytest.raises(ConfigError, match="is not writable"):
            simulate(data=tiny_data, out=locked / "run", centralised=False)
    finally:
        locked.chmod(0o700)


def test_damaged_commit_marker_and_missing_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "config.json").write_text(
        json.dumps({"data-dir": str(tiny_data), "out-dir": str(out), "num-server-rounds": 3})
    )
    marker = out / "checkpoints" / "latest.json"
    marker.write_text('{"round": 2, "pa')
    with pytest.raises(ConfigError, match=r"latest\.json: damaged commit marker"):
        simulate(data=None, resume=out, centralised=False)
    marker.write_text(json.dumps({"round": 2, "path": "round-0002.pt"}))
    with pytest.raises(ConfigError, match=r"round-0002\.pt: the checkpoint of committed round 2"):
        simulate(data=None, resume=out, centralised=False)
    assert np.array_equal(
        sorted(p.name for p in out.rglob("*")), ["checkpoints", "config.json", "latest.json"]
    )
