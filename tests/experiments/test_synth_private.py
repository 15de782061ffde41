"""`synth-private`'s experiment (fedmarket/experiments/synth_private.py): settings and inputs
are checked before any data is read; a small run writes the table and every figure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fedmarket.errors import ConfigError
from fedmarket.experiments.synth_private import (
    FIGURE,
    REPORT_JSON,
    REPORT_MD,
    TABLE,
    SynthSettings,
    resolve_inputs,
    synth_private,
)
from fedmarket.generative.dpvae import GeneratorConfig


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"task": "purchase-count"}, "not a 0/1 task"),
        ({"customers": 1}, "customers"),
    ],
)
def test_bad_settings_are_refused(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        SynthSettings(**kwargs)


def test_inputs_come_from_a_run_directory_or_data_and_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a fedmarket run directory"):
        resolve_inputs(tmp_path / "nowhere", None, None)
    with pytest.raises(ConfigError, match="one of them"):
        resolve_inputs(tmp_path, tmp_path, None)
    with pytest.raises(ConfigError, match="one of them"):
        resolve_inputs(None, None, None)
    with pytest.raises(ConfigError, match="--out"):
        resolve_inputs(None, tmp_path, None)
    assert resolve_inputs(None, tmp_path / "d", tmp_path / "o") == (
        tmp_path / "d",
        tmp_path / "o",
        None,
    )


def test_an_earlier_table_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("not a table")  # other files do not count
    assert resolve_inputs(None, tmp_path, out)[1] == out
    (out / "synthetic_customers.parquet").write_bytes(b"earlier")
    with pytest.raises(
        ConfigError, match=r"already holds synthetic_customers\.parquet.*--overwrite"
    ):
        resolve_inputs(None, tmp_path, out)
    assert resolve_inputs(None, tmp_path, out, overwrite=True)[1] == out
    with pytest.raises(ConfigError, match="is a file"):
        resolve_inputs(None, tmp_path, out / "notes.txt")


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_small_run_writes_table_and_measures_it(tiny_data: Path, tmp_path: Path) -> None:
    cfg = GeneratorConfig(latent_dim=2, hidden=16, rounds=1, local_epochs=1, batch_size=64)
    settings = SynthSettings(task="churn", epsilon=2.0, customers=120, seed=3, generator=cfg)
    report = synth_private(tiny_data, tmp_path, settings)
    table = pd.read_parquet(tmp_path / TABLE)
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    n_feat = len(manifest["feature_names"])
    assert table.shape == (120, 8 * n_feat + 1) and table.columns[-1] == "y_churn"
    assert not [c for c in table.columns if "customer" in c]
    assert json.loads((tmp_path / REPORT_JSON).read_text())["n_synthetic"] == 120
    for name in ("logistic-regression", "gradient-boosting"):
        entry = report["utility"][name]
        if "skipped" not in entry:
            assert 0 <= entry["real"]["roc_auc"] <= 1 and 0 <= entry["synthetic"]["roc_auc"] <= 1
    priv = report["privacy"]
    assert len(priv["retailers"]) == 3
    assert all(0 < r["epsilon"] <= 2.0 for r in priv["retailers"])
    assert priv["audit"]["attack"] == "distance-to-closest-record"
    assert 0 <= priv["audit"]["roc_auc"] <= 1
    fid = report["fidelity"]["synthetic_vs_real_train"]
    assert len(fid["per_feature"]) == 8 * n_feat and 0 <= fid["ks_mean"] <= 1
    text = (tmp_path / REPORT_MD).read_text()
    assert "## Utility" in text and "## Fidelity" in text and "## Privacy" in text
    assert (tmp_path / FIGURE).stat().st_size > 0
